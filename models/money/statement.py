"""A charge-back statement: what one grant was charged in one period, ready to render.

``Statement`` is the pure result of ``models.money.statement_builder.build_statement`` (from ledger
lines) and the only input of the renderers in ``reports/statements/`` (CSV, XLSX, PDF, JSON): a
renderer never computes an amount, it formats the ones here, so every format shows the same numbers.
Amounts are ``Decimal`` quantised to the policy's line quantum; ``charges`` and ``adjustments`` are
polars frames with the columns in ``CHARGE_COLUMNS`` / ``ADJUSTMENT_COLUMNS`` (Decimal columns for
money), sorted for stable output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import polars as pl

from models.money.frames import (
    CHARGE_SUMMARY_COLUMNS,
    MONEY,
)


@dataclass(frozen=True)
class RateCardUsed:
    id: str
    effective: date
    currency: str


@dataclass(frozen=True)
class Summary:
    """Amounts summed by one dimension: {value: amount}, e.g. by user or resource."""

    dimension: str  # "user", "partition", "resource"
    amounts: dict[str, Decimal]


@dataclass(frozen=True)
class Statement:
    """One grant's statement for one period (see the module docstring)."""

    grant_id: str
    funder: str
    unit: str  # currency code or "SU"
    budget: Decimal
    grant_start: date
    grant_end: date
    regime: str | None
    period: str  # "YYYY-MM"
    period_start: datetime  # UTC, inclusive
    period_end: datetime  # UTC, exclusive
    status: str  # "open" or "closed"
    closed_at: datetime | None
    generated_for: datetime  # the as-of time of an open statement; the close time of a closed one
    policy_version: int
    rate_cards: tuple[RateCardUsed, ...]
    decimals: int
    opening_balance: Decimal  # budget − everything charged before the period
    charges: pl.DataFrame  # CHARGE_COLUMNS
    adjustments: pl.DataFrame  # ADJUSTMENT_COLUMNS
    total_charges: Decimal  # sum of charges.amount
    total_adjustments: Decimal  # sum of adjustments.amount
    closing_balance: Decimal  # opening − total_charges − total_adjustments
    budget_used: Decimal  # (budget − closing) / budget, 4 places; 0 when the budget is 0
    burn_rate_per_day: Decimal  # average daily spend over the period
    run_out: date | None  # when the balance reaches 0 at that rate; None if it never does
    summaries: tuple[Summary, ...]  # by user, partition, resource
    burndown: pl.DataFrame  # BURNDOWN_COLUMNS

    def summary(self, dimension: str) -> Summary:
        """Return the summary by ``dimension`` (KeyError if there is none)."""
        for s in self.summaries:
            if s.dimension == dimension:
                return s
        raise KeyError(dimension)


def summarised_charges(charges: pl.DataFrame) -> pl.DataFrame:
    """Return ``charges`` (CHARGE_COLUMNS) summed by user, partition and resource.

    Columns are ``CHARGE_SUMMARY_COLUMNS``, sorted by user, partition, resource (nulls first);
    ``amount`` is the exact Decimal sum of the group's lines, ``hours`` the sum of their hours.
    """
    keys = ["user", "partition", "resource"]
    return (
        charges.group_by(keys)
        .agg(
            pl.col("run_key").n_unique().cast(pl.UInt32).alias("runs"),
            pl.len().cast(pl.UInt32).alias("lines"),
            # summed as decimals: exact, so the result does not depend on the row order
            pl.col("hours").cast(pl.Decimal(38, 9)).sum().cast(pl.Float64).alias("hours"),
            pl.col("amount").sum().cast(MONEY).alias("amount"),
        )
        .sort(keys, nulls_last=False)
        .select([pl.col(c).cast(t) for c, t in CHARGE_SUMMARY_COLUMNS.items()])
    )
