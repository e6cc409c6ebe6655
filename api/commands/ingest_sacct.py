"""``fairledger ingest sacct``: run configured sacct sources once, as the scheduler would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from api.commands.context import EXIT_QUARANTINED, settings_of, store_of
from models.errors import FairledgerError


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def register(ingest_app: typer.Typer) -> None:
    """Add the ``sacct`` command to the ``ingest`` command group."""

    @ingest_app.command("sacct")
    def ingest_sacct(
        ctx: typer.Context,
        source: Annotated[
            str | None, typer.Option(help="name of a [[sources]] entry [default: every one]")
        ] = None,
        force: Annotated[
            bool, typer.Option(help="pull even within min_interval_s of the last attempt")
        ] = False,
    ) -> None:
        """Pull configured sacct sources once, from their stored watermark.

        Exit status 1 if a pull failed, 3 if records were quarantined.
        """
        from ingest.jobs import run_sacct_source
        from models.store.handle import StoreHandle

        settings = settings_of(ctx)
        names = [s.name for s in settings.sources]
        if not names:
            raise FairledgerError("no [[sources]] in the settings: pass --config FILE")
        chosen = [s for s in settings.sources if source is None or s.name == source]
        if not chosen:
            raise FairledgerError(f"no source named {source!r}; configured: {', '.join(names)}")
        with store_of(ctx) as con:
            handle = StoreHandle(con, settings.db)
            outcomes = [run_sacct_source(s, handle, now=_now, force=force) for s in chosen]
        for outcome in outcomes:
            typer.echo(outcome.describe(), err=outcome.status == "failed")
        if any(o.status == "failed" for o in outcomes):
            raise typer.Exit(1)
        if any(o.summary is not None and o.summary.quarantined for o in outcomes):
            raise typer.Exit(EXIT_QUARANTINED)
