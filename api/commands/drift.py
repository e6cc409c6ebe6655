"""``fairledger drift``: our factors next to Slurm's ``sshare``, per association.

A site runs it to see whether fairledger and slurmctld agree: against a saved
``sshare -a -l -P`` (``--sshare FILE``) or the live one (``--live``), with the usage decayed
continuously (the policy's model) or, given the times slurmctld's decay thread ran
(``--slurmctld-log`` or ``--ticks``), with Slurm's own per-tick discretisation
(``models.fairshare.decay_ticks``). Exit status 0 within tolerance, 4 outside it (1 error, 2 usage).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import polars as pl
import typer

from api.commands.context import current_factors, parse_as_of, store_of
from models.errors import FairledgerError

EXIT_DRIFT = 4


class DriftFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FairledgerError(f"cannot read {path}: {exc}") from exc


def _ticks_file(path: Path) -> list[datetime]:
    """Return the times in ``path``: one ISO 8601 time (UTC if no zone) or epoch second a line."""
    ticks = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if text.isdigit():
            ticks.append(datetime.fromtimestamp(int(text), tz=UTC))
            continue
        try:
            ticks.append(parse_as_of(text))
        except typer.BadParameter as exc:
            raise FairledgerError(f"{path}:{number}: {text!r} is not a time") from exc
    return ticks


def _usage_error(message: str) -> NoReturn:
    """Report a wrong command line and exit with status 2."""
    typer.echo(f"fairledger drift: usage error: {message}", err=True)
    raise typer.Exit(2)


def _jsonable(value: object) -> object:
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    return value


def register(app: typer.Typer) -> None:
    """Add the ``drift`` command to the app."""

    @app.command()
    def drift(
        ctx: typer.Context,
        sshare: Annotated[
            Path | None, typer.Option(help="a saved `sshare -a -l -P` output")
        ] = None,
        live: Annotated[
            bool, typer.Option(help="run `sshare -a -l -P` now and compare with it")
        ] = False,
        as_of: Annotated[
            str | None, typer.Option(help="ISO 8601 time of the sshare [default: now]")
        ] = None,
        cluster: Annotated[
            str | None, typer.Option(help="the cluster sshare shows [default: the only one]")
        ] = None,
        slurmctld_log: Annotated[
            Path | None,
            typer.Option(help="slurmctld log (DebugFlags=Priority, verbose): use its decay ticks"),
        ] = None,
        ticks: Annotated[
            Path | None,
            typer.Option(help="file of decay tick times (one a line): use Slurm's ticks"),
        ] = None,
        tolerance: Annotated[
            float, typer.Option(help="max |diff| of NormShares, EffectvUsage, FairShare, LevelFS")
        ] = 1e-6,
        usage_tolerance: Annotated[
            float, typer.Option(help="max relative RawUsage difference (0: equal integers)")
        ] = 1e-3,
        sshare_command: Annotated[str, typer.Option(help="sshare executable (--live)")] = "sshare",
        format: Annotated[DriftFormat, typer.Option(help="output format")] = DriftFormat.table,
    ) -> None:
        """Print, per association, our value, Slurm's and the difference.

        NormShares, RawUsage, EffectvUsage, FairShare and LevelFS, then the largest difference
        of each. Exit status 0 when every one is within tolerance, 4 when not.
        """
        from ingest.sources.sacct import subprocess_runner
        from ingest.sources.sshare import parse_sshare, shows_level_fs
        from models.fairshare.decay_ticks import (
            order_ends_after_ticks,
            parse_slurmctld_log,
            tick_factors,
        )
        from models.store import read_policy_and_runs
        from models.store.runs import USAGE_COLUMNS
        from reports.drift import (
            build_drift,
            format_drift,
            format_summary,
            summarize,
            within_tolerance,
        )

        if (sshare is None) == (not live):
            _usage_error("give exactly one of --sshare FILE and --live")
        if slurmctld_log is not None and ticks is not None:
            _usage_error("give at most one of --slurmctld-log and --ticks")
        when = parse_as_of(as_of)
        if sshare is not None:
            text = _read(sshare)
        else:
            argv = [sshare_command, "-a", "-l", "-P"]
            if cluster:
                argv.append(f"--clusters={cluster}")
            text = subprocess_runner(argv, timeout_s=60)
        lines = [line for line in text.splitlines() if line.strip()]

        if slurmctld_log is None and ticks is None:
            factors, _ = current_factors(ctx, when)
        else:
            tick_times: list[datetime]
            firsts: set[tuple[str, datetime]] = set()
            if slurmctld_log is not None:
                parsed = parse_slurmctld_log(_read(slurmctld_log))
                tick_times, firsts = parsed.ticks, parsed.tick_first_ends
            else:
                assert ticks is not None
                tick_times = _ticks_file(ticks)
            with store_of(ctx) as con:
                active, runs = read_policy_and_runs(con, columns=(*USAGE_COLUMNS, "job_id_raw"))
            runs = order_ends_after_ticks(runs, firsts)
            factors = tick_factors(runs, active.policy, ticks=tick_times, as_of=when)
        if cluster:
            factors = factors.filter(pl.col("cluster") == cluster)
            if factors.height == 0:
                raise FairledgerError(f"no associations of cluster {cluster!r} in the policy")
        elif factors.get_column("cluster").n_unique() > 1 and not any(
            line.startswith("CLUSTER: ") for line in lines
        ):
            known = ", ".join(sorted(factors.get_column("cluster").unique().to_list()))
            raise FairledgerError(f"the policy has several clusters ({known}): pass --cluster")
        printed = "\n".join(lines)
        slurm = parse_sshare(printed, origin="sshare")
        try:
            table = build_drift(factors, slurm, fair_tree=shows_level_fs(printed))
        except ValueError as exc:
            raise FairledgerError(str(exc)) from exc
        ok = within_tolerance(table, tolerance=tolerance, usage_tolerance=usage_tolerance)
        summary = summarize(table, tolerance=tolerance, usage_tolerance=usage_tolerance)
        if format is DriftFormat.csv:
            typer.echo(table.write_csv(), nl=False)
        elif format is DriftFormat.json:
            doc = {
                "as_of": when.isoformat(),
                "within_tolerance": ok,
                "summary": [
                    {
                        "metric": m.metric,
                        "max_abs_diff": _jsonable(m.max_abs_diff),
                        "where": m.where,
                        "within": m.within,
                    }
                    for m in summary
                ],
                "rows": [{k: _jsonable(v) for k, v in r.items()} for r in table.to_dicts()],
            }
            typer.echo(json.dumps(doc))
        else:
            for line in format_drift(table):
                typer.echo(line)
            typer.echo("")
            for line in format_summary(summary, ok=ok):
                typer.echo(line)
        if not ok:
            raise typer.Exit(EXIT_DRIFT)
