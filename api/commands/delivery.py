"""``fairledger export-factors`` and ``fairledger push-slurm``: factors to the scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.commands.context import current_factors, parse_as_of, settings_of


def register(app: typer.Typer) -> None:
    """Add ``export-factors`` and ``push-slurm`` to the app."""

    @app.command("export-factors")
    def export_factors_command(
        ctx: typer.Context,
        path: Annotated[Path, typer.Argument(help="the JSON file to (re)write atomically")],
        as_of: Annotated[str | None, typer.Option(help="ISO 8601 time [default: now]")] = None,
    ) -> None:
        """Write every association's factor to PATH for a site-factor script to read."""
        from api.usecases.delivery import export_factors

        when = parse_as_of(as_of)
        factors, algorithm = current_factors(ctx, when)
        meta = {
            "snapshot_id": None,  # computed by this command, not a published snapshot
            "as_of": when.isoformat(),
            "algorithm": algorithm,
            "generated_by": "fairledger export-factors",
        }
        export_factors(factors, path, meta=meta)
        typer.echo(f"wrote {path} ({factors.height} associations as of {when.isoformat()})")

    @app.command("push-slurm")
    def push_slurm(
        ctx: typer.Context,
        dry_run: Annotated[
            bool, typer.Option(help="list what would change; call no scontrol")
        ] = False,
        as_of: Annotated[str | None, typer.Option(help="ISO 8601 time [default: now]")] = None,
    ) -> None:
        """Set SiteFactor of pending Slurm jobs where it changed.

        Exit status 1 if some updates failed.
        """
        from api.usecases.delivery import push_site_factors

        factors, _ = current_factors(ctx, parse_as_of(as_of))
        report = push_site_factors(factors, delivery=settings_of(ctx).delivery, dry_run=dry_run)
        typer.echo(report.describe())
        for job_id, value in list(report.planned.items())[:50]:
            typer.echo(f"  would set JobId={job_id} SiteFactor={value}")
        if len(report.planned) > 50:
            typer.echo(f"  ... and {len(report.planned) - 50} more")
        if report.failed:
            raise typer.Exit(1)
