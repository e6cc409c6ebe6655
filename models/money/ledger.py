"""The ledger: charge lines as posted to periods, with closed periods frozen (pure).

Periods are calendar months (UTC) and close in order: every period up to the last closed one
is closed. An open period's charges are computed live from the runs (``models.money.charges``); a
closed period's lines were frozen when it closed and never change. Whatever the runs say now
about a closed period that differs from what was frozen — a revised run, a late run, a run no
longer charged, a different grant — becomes an adjustment line posted to the first open period,
naming the period it corrects. Refunds and manual adjustments are entries posted to an open
period by a person, with a reason. ``ledger_view`` puts all of it in one frame; a statement
is a filter of that frame (see ``models.money.statement_builder``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from models.frames import UTC_TIME
from models.money.frames import LEDGER, LINES, MONEY
from models.money.grants import period_bounds

KEY = ["grant_id", "refers_period", "run_key", "resource"]
FROZEN_KINDS = ("charge", "revision", "late run")  # what the runs decide (not people)
ENTRY_KINDS = ("refund", "manual")


def next_period(period: str) -> str:
    """Return the calendar month after ``period`` (``YYYY-MM``)."""
    return period_bounds(period)[1].strftime("%Y-%m")


def empty_ledger() -> pl.DataFrame:
    """Return an empty ``LEDGER`` frame."""
    return pl.DataFrame(schema=LEDGER)


def live_charges(expected: pl.DataFrame, *, last_closed: str | None) -> pl.DataFrame:
    """Return the computed ``LINES`` of open periods as ledger ``charge`` lines."""
    lines = expected if last_closed is None else expected.filter(pl.col("period") > last_closed)
    return (
        lines.rename({"period": "refers_period"})
        .with_columns(
            posted_period=pl.col("refers_period"),
            kind=pl.lit("charge"),
            reason=pl.lit(None, dtype=pl.String),
            author=pl.lit(None, dtype=pl.String),
            posted_at=pl.lit(None, dtype=UTC_TIME),
        )
        .select(list(LEDGER))
    )


def pending_adjustments(
    expected: pl.DataFrame, frozen: pl.DataFrame, *, last_closed: str | None, now: datetime
) -> pl.DataFrame:
    """Return the adjustment lines that bring each closed period's frozen lines to what the
    runs say now, posted to the first open period (empty when no period is closed).

    Per (grant, period, run, resource): the difference between the amount computed now and
    the sum frozen so far (the original charge plus earlier adjustments). ``late run`` when
    nothing was frozen for that run and grant in that period, else ``revision``.
    """
    if last_closed is None:
        return empty_ledger()
    first_open = next_period(last_closed)
    now_lines = (
        expected.filter(pl.col("period") <= last_closed)
        .rename({"period": "refers_period"})
        .select(*KEY, "amount", *(c for c in LEDGER if c in LINES and c not in [*KEY, "amount"]))
    )
    runs_frozen = (
        frozen.filter(pl.col("kind").is_in(FROZEN_KINDS))
        .group_by("grant_id", "refers_period", "run_key")
        .agg(seen=pl.lit(True))
    )
    before = (
        frozen.filter(pl.col("kind").is_in(FROZEN_KINDS))
        .sort("posted_period", "posted_at")
        .group_by(KEY, maintain_order=True)
        .agg(
            pl.col("amount").sum().alias("frozen_amount"),
            *(pl.col(c).last() for c in LEDGER if c in LINES and c not in [*KEY, "amount"]),
        )
    )
    joined = now_lines.join(before, on=KEY, how="full", coalesce=True, suffix="_frozen")
    zero = pl.lit(0, dtype=MONEY)
    diff = pl.col("amount").fill_null(zero) - pl.col("frozen_amount").fill_null(zero)
    descriptive = [c for c in LEDGER if c in LINES and c not in [*KEY, "amount"]]
    adjusted = (
        joined.with_columns(diff.alias("delta"))
        .filter(pl.col("delta") != zero)
        .join(runs_frozen, on=["grant_id", "refers_period", "run_key"], how="left")
        .with_columns(
            *(pl.coalesce(c, f"{c}_frozen").alias(c) for c in descriptive),
            kind=pl.when(pl.col("seen")).then(pl.lit("revision")).otherwise(pl.lit("late run")),
            reason=pl.when(pl.col("amount").is_null())
            .then(pl.format("no longer charged to this grant in {}", "refers_period"))
            .when(pl.col("seen"))
            .then(pl.format("run revised after {} closed", "refers_period"))
            .otherwise(pl.format("run arrived after {} closed", "refers_period")),
        )
        .with_columns(
            amount=pl.col("delta"),
            posted_period=pl.lit(first_open),
            author=pl.lit("fairledger"),
            posted_at=pl.lit(now.astimezone(UTC), dtype=UTC_TIME),
        )
    )
    return adjusted.select(list(LEDGER)).sort(KEY)


def ledger_view(
    expected: pl.DataFrame,
    frozen: pl.DataFrame,
    entries: pl.DataFrame,
    *,
    last_closed: str | None,
    now: datetime,
) -> pl.DataFrame:
    """Return every ledger line: frozen lines of closed periods, live charges of open ones,
    pending adjustments (posted to the first open period) and people's entries.

    ``expected`` is ``LINES`` computed from the runs now; ``frozen`` and ``entries`` are
    ``LEDGER`` frames from the store.
    """
    return pl.concat(
        [
            frozen.select(list(LEDGER)),
            live_charges(expected, last_closed=last_closed),
            pending_adjustments(expected, frozen, last_closed=last_closed, now=now),
            entries.select(list(LEDGER)),
        ]
    )


def to_freeze(view: pl.DataFrame, period: str) -> pl.DataFrame:
    """Return the lines a close of ``period`` freezes: its live charges and the pending
    adjustments posted to it (people's entries are already stored)."""
    return view.filter((pl.col("posted_period") == period) & pl.col("kind").is_in(FROZEN_KINDS))
