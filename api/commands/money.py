"""Money on the command line: ``statement``, ``close-period``, ``adjust``, ``refund``,
``grants``, ``unbilled`` and ``quote`` (see docs/money.md)."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from api.commands.context import store_of
from api.usecases.money import (
    HASHED_FORMATS,
    LedgerState,
    close_period,
    load_ledger,
    post_entry,
    statement,
)
from models.errors import FairledgerError
from models.money.quotes import quote_run


class StatementFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    pdf = "pdf"
    json = "json"


def _now() -> datetime:
    return datetime.now(UTC)


def _decimal(text: str, what: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise FairledgerError(f"{what} {text!r} is not a number") from None


def _state(ctx: typer.Context) -> LedgerState:
    with store_of(ctx) as con:
        return load_ledger(con, as_of=_now())


def _write(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        typer.echo(f"wrote {output} ({len(data)} bytes)", err=True)


def _post(
    ctx: typer.Context,
    grant: str,
    amount: Decimal | None,
    run_key: str | None,
    reason: str,
    author: str | None,
) -> None:
    """Post an adjustment (``amount``) or a refund (``run_key``) and say what was posted."""
    with store_of(ctx) as con:
        entry, period, posted = post_entry(
            con,
            grant_id=grant,
            amount=amount,
            reason=reason,
            author=author or getpass.getuser(),
            now=_now(),
            run_key=run_key,
        )
    kind = "refund" if run_key else "adjustment"
    typer.echo(f"{kind} {entry}: {posted.normalize():f} to {grant} in {period}")


def register(app: typer.Typer) -> None:
    """Add the money commands to ``app``."""

    @app.command("statement")
    def statement_command(
        ctx: typer.Context,
        grant: Annotated[str, typer.Argument(help="grant id, e.g. NSF-PHY-2231")],
        period: Annotated[str, typer.Argument(help="calendar month YYYY-MM")],
        fmt: Annotated[StatementFormat, typer.Option("--format", "-f")] = StatementFormat.csv,
        summary: Annotated[
            bool, typer.Option("--summary", help="lines summarised by user, partition, resource")
        ] = False,
        output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    ) -> None:
        """Write GRANT's charge-back statement for PERIOD (to stdout unless -o)."""
        from reports.statements import render

        made = statement(_state(ctx), grant, period)
        _write(render(made, fmt.value, itemise=not summary), output)

    @app.command("close-period")
    def close_period_command(
        ctx: typer.Context,
        period: Annotated[str, typer.Argument(help="calendar month YYYY-MM")],
        actor: Annotated[str | None, typer.Option(help="who closes it (default: you)")] = None,
    ) -> None:
        """Close PERIOD: freeze its lines and record each statement's SHA-256."""
        from reports.statements import made_with, render_all

        makers = made_with(HASHED_FORMATS)
        with store_of(ctx) as con:
            closed, hashes = close_period(
                con,
                period,
                actor=actor or getpass.getuser(),
                now=_now(),
                render_all=render_all,
                made_with=makers,
            )
        typer.echo(
            f"closed {closed.period}: {closed.lines} lines, total {closed.total.normalize():f}, "
            f"by {closed.closed_by} at {closed.closed_at:%Y-%m-%dT%H:%M:%SZ}"
        )
        for (grant_id, fmt), (sha, size) in sorted(hashes.items()):
            typer.echo(f"  {grant_id} {fmt} sha256 {sha} ({size} bytes)")
        for fmt, versions in sorted(makers.items()):
            typer.echo(f"  {fmt} rendered with {versions}")

    @app.command("adjust")
    def adjust_command(
        ctx: typer.Context,
        grant: Annotated[str, typer.Argument(help="grant id")],
        amount: Annotated[str, typer.Argument(help="positive charges, negative credits")],
        reason: Annotated[str, typer.Option(help="why (shown on the statement)")],
        author: Annotated[str | None, typer.Option(help="who (default: you)")] = None,
    ) -> None:
        """Post a manual adjustment to GRANT in the first open period."""
        _post(ctx, grant, _decimal(amount, "amount"), None, reason, author)

    @app.command("refund")
    def refund_command(
        ctx: typer.Context,
        grant: Annotated[str, typer.Argument(help="grant id")],
        run_key: Annotated[str, typer.Argument(help="the run to refund")],
        reason: Annotated[str, typer.Option(help="why (shown on the statement)")],
        author: Annotated[str | None, typer.Option(help="who (default: you)")] = None,
    ) -> None:
        """Credit GRANT everything RUN_KEY was charged, in the first open period."""
        _post(ctx, grant, None, run_key, reason, author)

    @app.command("grants")
    def grants_command(ctx: typer.Context) -> None:
        """List the grants with budget, charged so far and balance."""
        state = _state(ctx)
        spent = dict(state.view.group_by("grant_id").agg(pl.col("amount").sum()).iter_rows())
        typer.echo("grant|funder|unit|budget|charged|balance|start|end|regime")
        for g in state.policy.grants:
            quantum = Decimal(1).scaleb(-state.policy.charging.decimals)
            used = Decimal(spent.get(g.id, 0) or 0).quantize(quantum)
            typer.echo(
                f"{g.id}|{g.funder}|{g.unit}|{g.budget}|{used}|{g.budget - used}|"
                f"{g.start}|{g.end}|{g.regime or ''}"
            )

    @app.command("unbilled")
    def unbilled_command(
        ctx: typer.Context,
        period: Annotated[str | None, typer.Option(help="only runs ending in YYYY-MM")] = None,
    ) -> None:
        """List the ended runs that are charged to no grant, and why (CSV)."""
        runs = _state(ctx).unbilled
        if period is not None:
            runs = runs.filter(pl.col("end_at").dt.strftime("%Y-%m") == period)
        sys.stdout.write(runs.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ"))

    @app.command("quote")
    def quote_command(
        ctx: typer.Context,
        cluster: Annotated[str, typer.Option()],
        account: Annotated[str, typer.Option()],
        hours: Annotated[str, typer.Option(help="wall-clock hours")],
        cpus: Annotated[int, typer.Option()] = 1,
        partition: Annotated[str, typer.Option()] = "",
        user: Annotated[str, typer.Option()] = "",
        qos: Annotated[str, typer.Option()] = "normal",
        gpus: Annotated[int, typer.Option()] = 0,
        gpu_model: Annotated[str | None, typer.Option()] = None,
        mem_gb: Annotated[str, typer.Option()] = "0",
        nodes: Annotated[int, typer.Option()] = 1,
    ) -> None:
        """Print what a job would cost now and which grant would pay."""
        state = _state(ctx)
        quoted = quote_run(
            state.policy,
            at=state.as_of,
            cluster=cluster,
            partition=partition,
            account=account,
            user=user,
            qos=qos,
            hours=_decimal(hours, "hours"),
            cpus=cpus,
            gpus=gpus,
            gpu_model=gpu_model,
            mem_gb=_decimal(mem_gb, "mem-gb"),
            nodes=nodes,
        )
        if quoted.unbilled.height or quoted.lines.height == 0:
            why = quoted.unbilled["reason"][0] if quoted.unbilled.height else "no resource"
            raise FairledgerError(f"such a job would not be charged: {why}")
        quantum = Decimal(1).scaleb(-state.policy.charging.decimals)
        total = Decimal(0)
        for line in quoted.lines.iter_rows(named=True):
            total += line["amount"]
            typer.echo(
                f"{line['resource']}: {line['quantity']:g} x {line['hours']:g} h x "
                f"{line['unit_price'].normalize():f} x {line['multiplier'].normalize():f} = "
                f"{line['amount'].quantize(quantum)}"
            )
        first = quoted.lines.row(0, named=True)
        typer.echo(
            f"total {total.quantize(quantum)}, paid by grant {first['grant_id']} "
            f"(rate card {first['rate_card']})"
        )
