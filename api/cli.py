"""The ``fairledger`` command line (Typer). Exit status: 0 success, 1 error, 2 usage error,
3 loaded but some records were quarantined."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from api.commands import audit as audit_commands
from api.commands import compliance as compliance_commands
from api.commands import delivery as delivery_commands
from api.commands import drift as drift_command
from api.commands import explain as explain_commands
from api.commands import ingest_sacct
from api.commands import money as money_commands
from api.commands import quarantine as quarantine_commands
from api.commands import sreport as sreport_commands
from api.commands import tokens as token_commands
from api.commands.context import (
    EXIT_QUARANTINED,
    current_factors,
    parse_as_of,
    settings_of,
    store_of,
)
from ingest.load import CHUNK_LINES
from models.errors import FairledgerError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Accounting and fair-share.")
policy_app = typer.Typer(no_args_is_help=True, help="Load and import fair-share policies.")
ingest_app = typer.Typer(no_args_is_help=True, help="Load job records into the store.")
app.add_typer(policy_app, name="policy")
app.add_typer(ingest_app, name="ingest")


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(help="DuckDB file [default: $FAIRLEDGER_DB or ./fairledger.duckdb]"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(envvar="FAIRLEDGER_CONFIG", help="settings file (TOML)"),
    ] = None,
) -> None:
    from api.settings import load_settings

    ctx.obj = {"settings": load_settings(config, db=db)}


class Ties(StrEnum):
    slurm = "slurm"
    merge = "merge"


class TieOrder(StrEnum):
    name = "name"
    lft = "lft"


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@policy_app.command("load")
def policy_load(ctx: typer.Context, file: Path) -> None:
    """Validate a TOML policy file and record it as the active policy version."""
    from models.policy import load_policy
    from models.store import write_policy

    policy = load_policy(file)
    with store_of(ctx) as con:
        version, new = write_policy(con, policy, origin=str(file.resolve()))
    state = "recorded" if new else "unchanged, already active as"
    typer.echo(f"policy {state} version {version} ({policy.sha256()[:12]})")


@policy_app.command("import-slurm")
def policy_import_slurm(
    ctx: typer.Context,
    slurm_conf: Annotated[Path, typer.Option(help="the site's slurm.conf")],
    assoc: Annotated[Path, typer.Option(help="output of sacctmgr --parsable2 show associations")],
    qos: Annotated[
        Path | None, typer.Option(help="output of sacctmgr --parsable2 show qos")
    ] = None,
    ties: Annotated[Ties, typer.Option(help="slurm: as Slurm does; merge: as documented")] = (
        Ties.slurm
    ),
    tie_order: Annotated[TieOrder, typer.Option(help="order of tied accounts")] = TieOrder.name,
    cluster: Annotated[str | None, typer.Option(help="cluster [default: ClusterName]")] = None,
    out: Annotated[Path, typer.Option(help="where to write the policy TOML")] = Path("policy.toml"),
    load: Annotated[bool, typer.Option(help="also record it as the active policy")] = True,
    drop_partition_rows: Annotated[
        bool, typer.Option(help="leave out per-partition associations instead of refusing them")
    ] = False,
) -> None:
    """Write a policy from a real slurm.conf and sacctmgr output (and load it)."""
    from ingest.sources.sacctmgr_assoc import parse_sacctmgr_associations
    from ingest.sources.sacctmgr_qos import parse_sacctmgr_qos
    from ingest.sources.slurm_conf import read_slurm_conf
    from ingest.sources.slurm_policy import policy_from_slurm
    from models.store import write_policy

    def read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FairledgerError(f"cannot read {path}: {exc}") from exc

    conf = read_slurm_conf(slurm_conf)
    associations = parse_sacctmgr_associations(
        read(assoc), origin=str(assoc), partition_rows="drop" if drop_partition_rows else "error"
    )
    qos_list = parse_sacctmgr_qos(read(qos), origin=str(qos)) if qos else []
    policy = policy_from_slurm(
        conf, associations, qos_list, ties=ties.value, tie_order=tie_order.value, cluster=cluster
    )
    for note in conf.notes:
        typer.echo(f"note: {note}", err=True)
    out.write_text(policy.to_toml(), encoding="utf-8")
    typer.echo(f"wrote {out} ({len(policy.associations)} associations)")
    if load:
        with store_of(ctx) as con:
            version, _ = write_policy(con, policy, origin=str(out.resolve()))
        typer.echo(f"policy version {version} active")


@ingest_app.command("file")
def ingest_file(
    ctx: typer.Context,
    file: Path,
    cluster: Annotated[str | None, typer.Option(help="cluster of the records")] = None,
    fields: Annotated[
        str | None, typer.Option(help="comma-separated field order of a headerless file")
    ] = None,
    tz: Annotated[str, typer.Option(help="time zone of times without one")] = "UTC",
    chunk_lines: Annotated[
        int,
        typer.Option(
            min=1,
            help="land the file in batches of about this many lines (steps stay with their job)",
        ),
    ] = CHUNK_LINES,
    observed_at: Annotated[
        str | None,
        typer.Option(help="ISO 8601 time sacct wrote the file [default: the file's mtime]"),
    ] = None,
) -> None:
    """Load a sacct --parsable2 file; bad lines are quarantined, the rest land.

    A large file is read and landed in chunks, each its own atomic batch; a progress bar shows
    on stderr when it is a terminal.
    """
    from contextlib import ExitStack

    from ingest.load import LoadProgress, load_sacct_file

    field_list = [f.strip() for f in fields.split(",")] if fields else None
    on_progress = None
    with ExitStack() as stack:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            bar = stack.enter_context(
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TextColumn("{task.fields[lines]:,} lines, {task.fields[batches]} batches"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                    transient=False,
                )
            )
            task = bar.add_task(
                file.name, total=file.stat().st_size if file.exists() else None, lines=0, batches=0
            )

            def on_progress(p: LoadProgress) -> None:
                bar.update(task, completed=p.bytes_done, lines=p.lines_done, batches=p.batches)

        con = stack.enter_context(store_of(ctx))
        loaded = load_sacct_file(
            con,
            file,
            cluster=cluster,
            fields=field_list,
            tz=tz,
            chunk_lines=chunk_lines,
            on_progress=on_progress,
            observed_at=parse_as_of(observed_at) if observed_at else None,
        )
    typer.echo(loaded.describe())
    if loaded.quarantine.height:
        for row in loaded.quarantine.head(20).iter_rows(named=True):
            field = row["field"] or "(line)"
            typer.echo(
                f"  quarantined {row['source']}:{row['line_no']} "
                f"[{row['record_id'] or '?'}] {field}: {row['reason']}",
                err=True,
            )
        if loaded.quarantine.height > 20:
            typer.echo(f"  ... and {loaded.quarantine.height - 20} more", err=True)
        raise typer.Exit(EXIT_QUARANTINED)


@app.command()
def factors(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(help="ISO 8601 time [default: now]")] = None,
    format: Annotated[OutputFormat, typer.Option(help="output format")] = OutputFormat.table,
) -> None:
    """Print every association's fair-share factor at a time."""
    frame, _ = current_factors(ctx, parse_as_of(as_of))
    frame = frame.select(
        "cluster",
        "account",
        "user",
        "raw_shares",
        "norm_shares",
        "raw_usage",
        "effective_usage",
        "level_fs",
        "fairshare",
    )
    if format is OutputFormat.csv:
        typer.echo(frame.write_csv(), nl=False)
    elif format is OutputFormat.json:
        typer.echo(json.dumps({"data": frame.to_dicts(), "count": frame.height}, default=str))
    else:
        from reports.table import build_table

        for line in build_table(frame):
            typer.echo(line)


@app.command()
def sshare(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(help="ISO 8601 time [default: now]")] = None,
    clusters: Annotated[
        str | None,
        typer.Option("--clusters", "-M", help="comma-separated clusters [default: all]"),
    ] = None,
) -> None:
    """Print what `sshare -a -l -P` prints, for the same data.

    With several clusters each block is headed `CLUSTER: name`, as `sshare -M a,b` does.
    """
    from reports.sshare import build_sshare

    frame, algorithm = current_factors(ctx, parse_as_of(as_of))
    known = frame.get_column("cluster").unique(maintain_order=True).to_list()
    wanted = [c.strip() for c in clusters.split(",")] if clusters else known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise FairledgerError(f"unknown cluster(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for cluster in wanted:
        if len(wanted) > 1:
            typer.echo(f"CLUSTER: {cluster}")
        for line in build_sshare(frame.filter(pl.col("cluster") == cluster), algorithm=algorithm):
            typer.echo(line)


@app.command()
def demo(ctx: typer.Context) -> None:
    """Load the embedded demo site (policy and a month of sacct records)."""
    from api.demo import load_demo

    with store_of(ctx) as con:
        typer.echo(load_demo(con))


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="[default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="[default: 8000]")] = None,
) -> None:
    """Run the HTTP service."""
    import uvicorn

    from api.main import create_app

    settings = settings_of(ctx)
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


ingest_sacct.register(ingest_app)  # fairledger ingest sacct
delivery_commands.register(app)  # fairledger export-factors, push-slurm
token_commands.register(app)  # fairledger token create|list|revoke
drift_command.register(app)  # fairledger drift
quarantine_commands.register(app)  # fairledger quarantine list|retry
explain_commands.register(app)  # fairledger explain, simulate
sreport_commands.register(app)  # fairledger sreport cluster|user|job
audit_commands.register(app)  # fairledger audit verify|bundle|head
money_commands.register(app)  # fairledger statement, close-period, adjust, refund, grants, …
compliance_commands.register(app)  # fairledger compliance verdicts|import-nodes


def main() -> None:
    """Entry point of the console script: run the app, errors as one line on stderr.

    Typer handles usage errors (exit 2) and ``typer.Exit``; fairledger's own errors exit 1.
    """
    try:
        app()
    except FairledgerError as exc:
        typer.echo(f"fairledger: error: {exc}", err=True)
        sys.exit(1)
