"""``fairledger sreport``: Slurm's ``sreport`` reports from our runs, with its arguments.

``fairledger sreport cluster Utilization|AccountUtilizationByUser|UserUtilizationByAccount``,
``fairledger sreport user TopUsage``, ``fairledger sreport job SizesByAccount``, each taking
sreport's ``key=value`` words (``start=``, ``end=``, ``topcount=``, ``grouping=``, ``group``,
``flatview``, ``tree``) and ``-t``, ``-P``, ``-n``, ``--tres``. Times are UTC; the default
window is yesterday, as sreport's. Where the numbers differ from sreport: docs/reports.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, NoReturn

import typer

from api.commands.context import store_of
from models.errors import FairledgerError

_REPORTS = {
    "cluster": {
        "utilization": "utilization",
        "accountutilizationbyuser": "account_by_user",
        "userutilizationbyaccount": "user_by_account",
    },
    "user": {"topusage": "top_usage"},
    "job": {"sizesbyaccount": "job_sizes"},
}
_UNITS = ("seconds", "minutes", "hours", "percent")


class SreportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@dataclass
class Words:
    """sreport's ``key=value`` and bare words, parsed."""

    start: datetime
    end: datetime
    top: int = 10
    grouping: list[int] = field(default_factory=lambda: [50, 250, 500, 1000])
    group: bool = False
    flat: bool = False
    tree: bool = False


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"fairledger sreport: usage error: {message}", err=True)
    raise typer.Exit(2)


def _time(key: str, text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        _usage_error(f"{key}={text!r} is not a date or ISO 8601 time")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_words(words: list[str], *, now: datetime) -> Words:
    """Return sreport's words parsed; start and end default to yesterday 00:00 and today 00:00."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = Words(start=today - timedelta(days=1), end=today)
    for word in words:
        key, _, value = word.partition("=")
        key = key.lower()
        if key in ("start", "end"):
            setattr(out, key, _time(key, value))
        elif key == "topcount" and value.isdigit() and int(value) > 0:
            out.top = int(value)
        elif key == "grouping":
            try:
                out.grouping = [int(v) for v in value.split(",") if v]
            except ValueError:
                _usage_error(f"grouping={value!r} is not a list of CPU counts")
        elif key in ("group", "flatview", "tree") and not value:
            setattr(out, {"flatview": "flat"}.get(key, key), True)
        else:
            _usage_error(f"unknown or bad argument {word!r}")
    if out.end <= out.start:
        _usage_error(f"end {out.end.isoformat()} is not after start {out.start.isoformat()}")
    return out


def _unit(text: str) -> str:
    found = [u for u in _UNITS if text and u.startswith(text.lower())]
    if len(found) != 1:
        _usage_error(f"-t {text!r}: one of {', '.join(_UNITS)}")
    return found[0]


def _run(
    ctx: typer.Context,
    kind: str,
    report_name: str,
    words: list[str] | None,
    *,
    unit_text: str,
    parsable: bool,
    noheader: bool,
    format: SreportFormat,
    tres: str,
    capacity: float | None,
) -> None:
    from models.store import read_active_policy, read_runs
    from reports import sreport as r

    report = _REPORTS[kind].get(report_name.lower())
    if report is None:
        names = {"utilization": "Utilization", "account_by_user": "AccountUtilizationByUser"}
        names |= {"user_by_account": "UserUtilizationByAccount", "top_usage": "TopUsage"}
        names |= {"job_sizes": "SizesByAccount"}
        known = ", ".join(names[v] for v in _REPORTS[kind].values())
        _usage_error(f"unknown {kind} report {report_name!r}; one of {known}")
    unit = _unit(unit_text)
    args = parse_words(words or [], now=datetime.now(UTC))
    with store_of(ctx) as con:
        active = read_active_policy(con)
        assocs = active.policy.association_frame() if active is not None else None
        runs = read_runs(con, columns=r.run_columns(tres)).lazy()
    start, end = args.start, args.end
    secs = (end - start).total_seconds()
    util = r.build_cluster_utilization(runs, start=start, end=end, tres=tres)
    clusters = util.get_column("cluster").to_list()
    cap: dict[str, float] | None = None
    if capacity is not None:
        cap = {c: capacity for c in clusters}
        total_s = capacity * secs * max(len(clusters), 1)
    else:
        total_s = float(util.get_column("allocated_s").sum()) if util.height else 0.0
    try:
        if report == "utilization":
            frame = r.build_cluster_utilization(
                runs, start=start, end=end, tres=tres, cluster_capacity=cap
            )
        elif report == "account_by_user":
            frame = r.build_account_utilization_by_user(
                runs, assocs, start=start, end=end, tres=tres
            )
        elif report == "user_by_account":
            frame = r.build_user_utilization_by_account(runs, start=start, end=end, tres=tres)
        elif report == "top_usage":
            frame = r.build_user_top_usage(
                runs, start=start, end=end, tres=tres, top=args.top, group=args.group
            )
        else:
            frame = r.build_job_sizes_by_account(
                runs,
                assocs,
                start=start,
                end=end,
                tres=tres,
                grouping=args.grouping,
                flat=args.flat,
            )
    except ValueError as exc:
        raise FairledgerError(str(exc)) from exc
    shown = r.in_units(frame, report, unit=unit, total_s=total_s, tres=tres)
    if format is SreportFormat.csv:
        typer.echo(shown.write_csv(), nl=False)
        return
    if format is SreportFormat.json:
        typer.echo(json.dumps(r.to_json(shown), default=str))
        return
    if not noheader:
        for line in r.banner(report, start=start, end=end, unit=unit, tres=tres, top=args.top):
            typer.echo(line)
    skip = 0
    if parsable:
        lines, skip = r.format_parsable(shown), 1
    elif report == "account_by_user" and args.tree:
        lines, skip = r.format_text(shown.with_columns(frame["depth"]), indent="Account"), 2
    else:
        lines, skip = r.format_text(shown), 2
    for line in lines[skip if noheader else 0 :]:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``sreport cluster|user|job`` to the app."""
    sreport_app = typer.Typer(no_args_is_help=True, help="Slurm's sreport reports from our runs.")
    app.add_typer(sreport_app, name="sreport")

    def make(kind: str, help_text: str) -> None:
        @sreport_app.command(kind, help=help_text)
        def command(
            ctx: typer.Context,
            report: Annotated[str, typer.Argument(help="the report, as sreport names it")],
            words: Annotated[
                list[str] | None,
                typer.Argument(help="start=… end=… topcount=N grouping=50,250 group flatview tree"),
            ] = None,
            time: Annotated[
                str, typer.Option("--time", "-t", help="seconds, minutes, hours or percent")
            ] = "minutes",
            parsable: Annotated[
                bool, typer.Option("--parsable2", "-P", help="'|'-separated, no trailing '|'")
            ] = False,
            noheader: Annotated[
                bool, typer.Option("--noheader", "-n", help="no banner or column header")
            ] = False,
            format: Annotated[
                SreportFormat, typer.Option(help="table (sreport's), csv or json")
            ] = SreportFormat.table,
            tres: Annotated[
                str, typer.Option("--tres", "-T", help="cpu, gres/gpu, mem, node, billing, …")
            ] = "cpu",
            capacity: Annotated[
                float | None,
                typer.Option(help="the cluster's count of the TRES (e.g. CPUs): idle, reported, %"),
            ] = None,
        ) -> None:
            _run(
                ctx,
                kind,
                report,
                words,
                unit_text=time,
                parsable=parsable,
                noheader=noheader,
                format=format,
                tres=tres.lower(),
                capacity=capacity,
            )

    make("cluster", "Utilization, AccountUtilizationByUser, UserUtilizationByAccount.")
    make("user", "TopUsage.")
    make("job", "SizesByAccount.")
