"""``fairledger compliance verdicts|import-nodes``: per-run verdicts of a grant, and a node
inventory from Slurm to paste into the policy.

``verdicts`` first brings the stored verdicts up to date with the active policy and the runs
(``refresh_verdicts``, the same step the server's recompute runs), then prints the grant's
current verdicts. ``import-nodes`` only converts text: it prints ``[[compliance.nodes]]`` TOML
and never opens the store or rewrites the policy file.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from api.commands.context import store_of


class InventoryFormat(StrEnum):
    auto = "auto"
    scontrol = "scontrol"
    slurm_conf = "slurm-conf"


class VerdictFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


COLUMNS = ("run_key", "verdict", "rule", "offending_node", "at", "batch_id", "policy_version")


def register(app: typer.Typer) -> None:
    """Add the ``compliance`` command group (``verdicts``, ``import-nodes``) to the app."""
    group = typer.Typer(no_args_is_help=True, help="Compliance verdicts and node inventory.")
    app.add_typer(group, name="compliance")

    @group.command("verdicts")
    def compliance_verdicts(
        ctx: typer.Context,
        grant: str,
        exceptions: Annotated[
            bool, typer.Option("--exceptions", help="only violations and unknowns")
        ] = False,
        format: Annotated[VerdictFormat, typer.Option(help="table, csv or json")] = (
            VerdictFormat.table
        ),
        refresh: Annotated[
            bool, typer.Option(help="bring the verdicts up to date with the policy and runs first")
        ] = True,
    ) -> None:
        """Print a grant's current verdicts (run, verdict, rule, offending node)."""
        from models.errors import FairledgerError
        from models.store import require_active_policy
        from models.store.verdicts import (
            read_grant_summary,
            read_grant_verdicts,
            read_latest_verdict_batch,
            refresh_verdicts,
        )

        with store_of(ctx) as con:
            active = require_active_policy(con)
            if grant not in {g.id for g in active.policy.grants}:
                raise FairledgerError(f"no grant {grant} in the active policy")
            if refresh:
                refresh_verdicts(
                    con,
                    policy_version=active.version_id,
                    policy=active.policy,
                    now=datetime.now(UTC),
                    actor="cli",
                )
            summary = read_grant_summary(con, grant)
            rows, total = read_grant_verdicts(con, grant, exceptions_only=exceptions)
            batch = read_latest_verdict_batch(con)
        if format is VerdictFormat.json:
            document = {
                "grant_id": grant,
                "policy_version": batch.policy_version if batch else None,
                "summary": summary,
                "data": [
                    {**r, "evidence": json.loads(r["evidence"])}
                    for r in rows.select(*COLUMNS, "evidence").iter_rows(named=True)
                ],
                "count": total,
            }
            typer.echo(json.dumps(document, default=str))
            return
        if format is VerdictFormat.csv:
            typer.echo(rows.select(*COLUMNS, "evidence").write_csv(), nl=False)
            return
        for row in rows.select(*COLUMNS).iter_rows():
            typer.echo("\t".join("" if v is None else str(v) for v in row))
        counts = ", ".join(f"{summary.get(v, 0)} {v}" for v in ("approved", "violation", "unknown"))
        typer.echo(f"grant {grant}: {counts}", err=True)

    @group.command("import-nodes")
    def compliance_import_nodes(
        file: Annotated[Path, typer.Argument(help="scontrol show node output, or slurm.conf")],
        cluster: Annotated[str, typer.Option(help="the cluster the nodes belong to")],
        valid_from: Annotated[
            str, typer.Option("--from", help="first day the entries are valid (YYYY-MM-DD)")
        ],
        format: Annotated[InventoryFormat, typer.Option(help="auto, scontrol or slurm-conf")] = (
            InventoryFormat.auto
        ),
    ) -> None:
        """Print the nodes in FILE as [[compliance.nodes]] TOML to paste into the policy."""
        from ingest.sources.node_inventory import (
            parse_node_inventory,
            parse_scontrol_nodes,
            parse_slurm_conf_nodes,
        )
        from models.errors import ParseError

        try:
            day = date.fromisoformat(valid_from)
        except ValueError as exc:
            raise typer.BadParameter(f"--from {valid_from!r} is not YYYY-MM-DD") from exc
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ParseError(f"cannot read {file}: {exc}") from exc
        if format is InventoryFormat.scontrol:
            inventory = parse_scontrol_nodes(text, cluster=cluster, valid_from=day)
        elif format is InventoryFormat.slurm_conf:
            inventory = parse_slurm_conf_nodes(
                text, cluster=cluster, valid_from=day, origin=str(file)
            )
        else:
            inventory = parse_node_inventory(text, cluster=cluster, valid_from=day)
        typer.echo(inventory.to_toml(), nl=False)
        for note in inventory.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"{inventory.nodes} node(s) in {len(inventory.entries)} entries", err=True)
