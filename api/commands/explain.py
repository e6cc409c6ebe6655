"""``fairledger explain USER`` and ``fairledger simulate --policy OTHER.toml``.

Both compute from the store (the active policy and the runs known now); nothing is published.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from api.commands.context import parse_as_of, store_of
from api.usecases.explain import explain_user, simulate_policy
from models.errors import FairledgerError
from models.fairshare.explain import Explanation, Neighbour


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _num(value: float | int | None, digits: int = 6) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _neighbour(word: str, other: Neighbour | None) -> list[str]:
    if other is None:
        return [f"{word}: nobody"]
    return [
        f"{word}: {other.account}/{other.user} rank {other.rank} fairshare {other.fairshare:.6f}",
        f"  paths part at depth {other.diverge_depth}: {other.mine} LevelFS "
        f"{_num(other.mine_level_fs)} vs {other.theirs} LevelFS {_num(other.theirs_level_fs)}",
    ]


def explanation_text(found: Explanation) -> str:
    """Return the explanation as the text ``fairledger explain`` prints."""
    lines = [
        f"{found.cluster}/{found.account}/{found.user} as of {found.as_of.isoformat()} "
        f"({found.algorithm}): fairshare {found.fairshare:.6f}, rank {found.rank} of {found.users}",
        "",
        "Depth|Account|User|RawShares|NormShares(S)|RawUsage|EffectvUsage(U)|LevelFS",
    ]
    for lv in found.path:
        lines.append(
            f"{lv.depth}|{lv.account}|{lv.user}|{_num(lv.raw_shares)}|{_num(lv.norm_shares)}|"
            f"{_num(lv.raw_usage, 2)}|{_num(lv.effective_usage)}|{_num(lv.level_fs)}"
        )
    lines += ["", *_neighbour("above", found.above), *_neighbour("below", found.below), ""]
    lines.append("RunKey|JobID|Start|End|UsageRate|RawUsage|Share")
    for run in found.top_runs:
        start = run.start_at.isoformat() if run.start_at else ""
        end = run.end_at.isoformat() if run.end_at else "running"
        lines.append(
            f"{run.run_key or ''}|{run.job_id or ''}|{start}|{end}|{run.usage_rate:.4f}|"
            f"{run.raw_usage:.2f}|{run.share:.2%}"
        )
    recovery = found.recovery
    lines.append("")
    if recovery is None:
        lines.append("recovery: none needed (top of the ranking)")
    elif recovery.at is None:
        lines.append(f"recovery to {recovery.target:.6f}: not within a year if idle")
    else:
        hours = (recovery.after_s or 0.0) / 3600
        lines.append(
            f"recovery to {recovery.target:.6f}: {recovery.at.isoformat()} ({hours:.1f} h) if idle"
        )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``explain`` and ``simulate`` to the app."""

    @app.command("explain")
    def explain(
        ctx: typer.Context,
        user: Annotated[str, typer.Argument(help="the user to explain")],
        cluster: Annotated[str | None, typer.Option(help="needed when several match")] = None,
        account: Annotated[str | None, typer.Option(help="needed when several match")] = None,
        as_of: Annotated[str | None, typer.Option(help="ISO 8601 [default: now]")] = None,
        target: Annotated[
            float | None, typer.Option(help="factor to recover to [default: next rank up]")
        ] = None,
    ) -> None:
        """Explain a user's factor: path from root, rank, neighbours, top runs, recovery."""
        with store_of(ctx) as con:
            found = explain_user(
                con,
                cluster=cluster,
                account=account,
                user=user,
                as_of=parse_as_of(as_of),
                target=target,
            )
        typer.echo(explanation_text(found))

    @app.command("simulate")
    def simulate_command(
        ctx: typer.Context,
        policy: Annotated[Path, typer.Option(help="the other policy (TOML)")],
        as_of: Annotated[str | None, typer.Option(help="ISO 8601 [default: now]")] = None,
        format: Annotated[Format, typer.Option(help="table, csv or json")] = Format.table,
        chart: Annotated[
            Path | None,
            typer.Option(help="also draw the comparison to FILE (.svg, .png or .html)"),
        ] = None,
    ) -> None:
        """Compare each association's usage, factor, rank and charges, and each grant's charges,
        under the loaded and another policy."""
        from models.policy import load_policy

        other = load_policy(policy)
        with store_of(ctx) as con:
            table, grants = simulate_policy(con, lambda _: other, as_of=parse_as_of(as_of))
        if format is Format.json:
            body = {"data": table.to_dicts(), "count": table.height, "grants": grants.to_dicts()}
            typer.echo(json.dumps(body, default=str))
        elif format is Format.csv:
            typer.echo(table.write_csv(), nl=False)
        else:
            with pl.Config(
                tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, tbl_hide_dataframe_shape=True
            ):
                typer.echo(str(table))
                typer.echo(str(grants))
        if chart is not None:
            _draw(table, grants, chart)


def _draw(table: pl.DataFrame, grants: pl.DataFrame, path: Path) -> None:
    """Write the what-if chart to ``path`` as SVG, PNG or standalone HTML (by its suffix)."""
    from dashboards.export import chart_png, chart_svg
    from dashboards.simulation import simulation_chart, simulation_spec

    suffix = path.suffix.lower()
    if suffix == ".svg":
        path.write_bytes(chart_svg(simulation_spec(table, grants)))
    elif suffix == ".png":
        path.write_bytes(chart_png(simulation_spec(table, grants)))
    elif suffix == ".html":
        simulation_chart(table, grants).save(str(path), inline=True)
    else:
        raise FairledgerError(f"--chart {path}: use a .svg, .png or .html file name")
    typer.echo(f"wrote {path}", err=True)
