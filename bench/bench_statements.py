"""Statement generation for one grant with 100k charge lines, in all four formats.

    python bench/bench_statements.py [--lines 100000] [--repeat 3]

Builds a synthetic ``Statement`` (100k lines of ~33k runs: cpu, mem and some gpu lines, 400
users, 6 partitions, a few adjustments, a 90-day burn-down), then renders it as CSV, XLSX, PDF
and JSON (``reports.statements.render``, itemised), ``--repeat`` times each, and prints the
median seconds per format, their sum (goal ≤ 2 s) and, as the baseline in the same run, polars
``write_csv`` of the same charges frame (no formatting, no validation). The first PDF render
of the process also starts vl-convert's JavaScript engine: that cold start is printed apart.
Wall-clock and CPU seconds (all threads) are both printed: on a shared machine the wall clock
grows with the load, the CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl

from models.money.frames import BURNDOWN_COLUMNS, CHARGE_COLUMNS, MONEY
from models.money.statement import RateCardUsed, Statement, Summary
from reports.statements import FORMATS, render

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
BUDGET = Decimal("5000000.00")
SPENT_BEFORE = Decimal("1250000.00")
PRICES = {"cpu": "0.012", "mem": "0.0015", "gpu": "0.75"}


def synthetic_charges(lines: int) -> pl.DataFrame:
    """Return ``lines`` charge lines (CHARGE_COLUMNS) with amounts rounded to the cent."""
    i = pl.int_range(lines, dtype=pl.Int64)
    run = i // 3
    resource = (
        pl.when(i % 3 == 0)
        .then(pl.lit("cpu"))
        .when(i % 3 == 1)
        .then(pl.lit("mem"))
        .otherwise(pl.when(run % 5 == 0).then(pl.lit("gpu")).otherwise(pl.lit("cpu")))
    )
    frame = pl.select(
        run_key=pl.format("alpha/{}/1772500000", run + 100000),
        job_id=(run + 100000).cast(pl.String),
        cluster=pl.lit("alpha"),
        account=pl.format("acct{}", run % 37),
        user=pl.when(run % 400 == 7).then(pl.lit("zoë")).otherwise(pl.format("user{}", run % 400)),
        partition=pl.format("part{}", run % 6),
        qos=pl.when(run % 10 == 0).then(pl.lit("high")).otherwise(pl.lit("normal")),
        end_at=(pl.lit(START) + pl.duration(seconds=(run * 7919) % (31 * 86400))).dt.cast_time_unit(
            "us"
        ),
        resource=resource,
        quantity=((run % 64) + 1).cast(pl.Float64),
        hours=((run % 97) + 1).cast(pl.Float64) / 4,
    )
    price = pl.col("resource").replace_strict(PRICES, return_dtype=pl.String).cast(MONEY)
    multiplier = pl.when(pl.col("qos") == "high").then(pl.lit("1.5")).otherwise(pl.lit("1"))
    frame = frame.with_columns(
        gpu_model=pl.when(pl.col("resource") == "gpu").then(pl.lit("a100")),
        rate_card=pl.lit("rc-2026a"),
        unit_price=price,
        multiplier=multiplier.cast(MONEY),
    )
    raw = (
        pl.col("quantity").cast(pl.Decimal(38, 6))
        * pl.col("hours").cast(pl.Decimal(38, 6))
        * pl.col("unit_price")
        * pl.col("multiplier")
    )
    return frame.with_columns(amount=raw.round(2).cast(MONEY)).select(
        [pl.col(c).cast(t) for c, t in CHARGE_COLUMNS.items()]
    )


def synthetic_statement(lines: int) -> Statement:
    """Return a statement of ``lines`` charge lines with totals, summaries and a burn-down."""
    charges = synthetic_charges(lines)
    adjustments = pl.DataFrame(
        {
            "kind": ["revision", "refund", "manual"],
            "refers_period": ["2026-02", "2026-02", None],
            "run_key": ["alpha/99/1770000000", "alpha/98/1770000000", None],
            "resource": ["cpu", "gpu", None],
            "amount": [Decimal("12.40"), Decimal("-80.00"), Decimal("-25.00")],
            "reason": ["end corrected", "node failure", "goodwill"],
            "author": ["ingest", "finance", "finance"],
            "posted_at": [START + timedelta(days=d) for d in (2, 9, 30)],
        },
        schema_overrides={"amount": MONEY},
    )
    total = Decimal(str(charges["amount"].sum()))
    adjusted = Decimal(str(adjustments["amount"].sum()))
    opening = BUDGET - SPENT_BEFORE
    closing = opening - total - adjusted
    per_day = ((total + adjusted) / 31).quantize(Decimal("0.01"))
    days = [date(2026, 3, 1) + timedelta(days=d) for d in range(90)]
    spent = [
        SPENT_BEFORE + (total + adjusted) * min(d + 1, 31) / 31 + per_day * max(d - 30, 0)
        for d in range(90)
    ]
    burndown = pl.DataFrame(
        {
            "day": days,
            "spent": [s.quantize(Decimal("0.01")) for s in spent],
            "remaining": [(BUDGET - s).quantize(Decimal("0.01")) for s in spent],
            "forecast": [d > 30 for d in range(90)],
        },
        schema=BURNDOWN_COLUMNS,
    )

    def summary(dimension: str) -> Summary:
        sums = charges.group_by(dimension).agg(pl.col("amount").sum()).sort("amount")
        return Summary(dimension, {k: Decimal(str(v)) for k, v in sums.iter_rows()})

    return Statement(
        grant_id="G-BENCH-1",
        funder="Bench Council",
        unit="EUR",
        budget=BUDGET,
        grant_start=date(2026, 1, 1),
        grant_end=date(2027, 12, 31),
        regime=None,
        period="2026-03",
        period_start=START,
        period_end=END,
        status="closed",
        closed_at=END + timedelta(days=1),
        generated_for=END + timedelta(days=1),
        policy_version=1,
        rate_cards=(RateCardUsed("rc-2026a", date(2026, 1, 1), "EUR"),),
        decimals=2,
        opening_balance=opening,
        charges=charges,
        adjustments=adjustments,
        total_charges=total,
        total_adjustments=adjusted,
        closing_balance=closing,
        budget_used=((BUDGET - closing) / BUDGET).quantize(Decimal("0.0001")),
        burn_rate_per_day=per_day,
        run_out=END.date() + timedelta(days=int(closing / per_day)),
        summaries=(summary("user"), summary("partition"), summary("resource")),
        burndown=burndown,
    )


def _median_seconds(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return the median wall-clock and CPU seconds (all threads) of ``action``."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    statement = synthetic_statement(args.lines)
    print(f"synthetic statement: {args.lines} lines in {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    render(statement, "pdf")
    print(f"pdf cold (starts vl-convert): {time.perf_counter() - started:.3f} s")

    seconds: dict[str, tuple[float, float]] = {}
    sizes: dict[str, int] = {}
    for fmt in FORMATS:
        sizes[fmt] = len(render(statement, fmt))
        seconds[fmt] = _median_seconds(lambda fmt=fmt: render(statement, fmt), args.repeat)
    baseline, baseline_cpu = _median_seconds(lambda: statement.charges.write_csv(), args.repeat)
    print(f"load average before the timings: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for fmt in FORMATS:
        wall, cpu = seconds[fmt]
        print(f"{fmt:>5}: {wall:.3f} s wall, {cpu:.3f} s CPU  ({sizes[fmt] / 1e6:.1f} MB)")
    total = sum(w for w, _ in seconds.values())
    total_cpu = sum(c for _, c in seconds.values())
    print(f"total: {total:.3f} s wall, {total_cpu:.3f} s CPU (goal ≤ 2 s)")
    print(
        f"baseline polars write_csv of the charges frame: {baseline:.3f} s wall, "
        f"{baseline_cpu:.3f} s CPU"
    )
    print(f"csv ÷ baseline (wall): {seconds['csv'][0] / baseline:.1f}")


if __name__ == "__main__":
    main()
