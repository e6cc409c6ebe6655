"""Building a grant's statement for a period from the ledger (pure: no clock, no I/O).

The statement shows the period's charge lines and adjustments exactly as the ledger holds
them; every total is a sum of lines. The burn rate is the period's spend per day (up to the
as-of time for the open current period) and the run-out date is when the closing balance
reaches zero at that rate. See ``docs/money.md``.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl

from models.money.frames import ADJUSTMENT_COLUMNS, BURNDOWN_COLUMNS, CHARGE_COLUMNS, MONEY
from models.money.grants import Grant, RateCard, period_bounds
from models.money.statement import RateCardUsed, Statement, Summary

FORECAST_DAYS_MAX = 366  # the burn-down projects at most a year past the period


def _sum(frame: pl.DataFrame) -> Decimal:
    if frame.height == 0:
        return Decimal(0)
    total = frame.select(pl.col("amount").sum()).item()
    return Decimal(0) if total is None else Decimal(total)


def _q(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)


def _summaries(charges: pl.DataFrame, decimals: int) -> tuple[Summary, ...]:
    out = []
    for dimension in ("user", "partition", "resource"):
        grouped = charges.group_by(dimension).agg(pl.col("amount").sum()).sort(dimension)
        out.append(
            Summary(
                dimension,
                {str(k): _q(Decimal(v), decimals) for k, v in grouped.iter_rows()},
            )
        )
    return tuple(out)


def _burndown(
    lines: pl.DataFrame,
    grant: Grant,
    *,
    until: datetime,
    run_out: date | None,
    burn_rate: Decimal,
    decimals: int,
) -> pl.DataFrame:
    """Return cumulative spend per day from the grant's start to ``until``, then the forecast."""
    first = grant.start
    last = (until - timedelta(microseconds=1)).date()
    if last < first:
        return pl.DataFrame(schema=BURNDOWN_COLUMNS)
    per_day = lines.group_by("day").agg(pl.col("amount").sum())
    days = pl.DataFrame({"day": pl.date_range(first, last, "1d", eager=True)})
    budget = pl.lit(grant.budget, dtype=MONEY)
    zero = pl.lit(0, dtype=MONEY)
    actual = (
        days.join(per_day, on="day", how="left")
        .with_columns(spent=pl.col("amount").fill_null(zero).cum_sum())
        .select("day", "spent", remaining=budget - pl.col("spent"), forecast=pl.lit(False))
    )
    spent = Decimal(actual["spent"][-1]) if actual.height else Decimal(0)
    end = min(grant.end, last + timedelta(days=FORECAST_DAYS_MAX))
    if run_out is not None:
        end = min(end, run_out)
    ahead = []
    day = last + timedelta(days=1)
    while burn_rate > 0 and day <= end:
        spent_then = _q(spent + burn_rate * (day - last).days, decimals)
        ahead.append((day, spent_then, grant.budget - spent_then, True))
        day += timedelta(days=1)
    projected = pl.DataFrame(ahead, schema=BURNDOWN_COLUMNS, orient="row")
    return pl.concat([actual.cast(BURNDOWN_COLUMNS), projected])  # type: ignore[arg-type]


def build_statement(
    view: pl.DataFrame,
    grant: Grant,
    period: str,
    *,
    rate_cards: list[RateCard],
    decimals: int,
    policy_version: int,
    closed_at: datetime | None,
    as_of: datetime,
) -> Statement:
    """Return ``grant``'s statement for ``period`` from the ledger ``view``.

    ``closed_at`` is set for a closed period (the statement is then a function of frozen lines
    only and ``as_of`` is replaced by the close time); for an open period ``as_of`` bounds the
    burn rate when the period is still running.
    """
    start, end = period_bounds(period)
    closed_at = None if closed_at is None else closed_at.astimezone(UTC)
    generated_for = closed_at if closed_at is not None else as_of.astimezone(UTC)
    mine = view.filter(pl.col("grant_id") == grant.id)
    in_period = mine.filter(pl.col("posted_period") == period)
    charges = in_period.filter(pl.col("kind") == "charge")
    adjustments = in_period.filter(pl.col("kind") != "charge")
    before = mine.filter(pl.col("posted_period") < period)

    opening = grant.budget - _sum(before)
    total_charges = _sum(charges)
    total_adjustments = _sum(adjustments)
    closing = opening - total_charges - total_adjustments
    used = Decimal(0) if grant.budget == 0 else (grant.budget - closing) / grant.budget

    until = min(end, max(start, generated_for)) if closed_at is None else end
    days = max((until - start) / timedelta(days=1), 1 / 24)
    spend = total_charges + total_adjustments
    burn = _q(spend / Decimal(repr(days)), decimals) if spend > 0 else Decimal(0)
    run_out = None
    if burn > 0:
        run_out = (until + timedelta(days=math.ceil(max(closing, Decimal(0)) / burn))).date()

    card_ids = set(charges["rate_card"].drop_nulls().to_list())
    used_cards = tuple(
        RateCardUsed(c.id, c.effective, c.currency)
        for c in sorted(rate_cards, key=lambda c: c.effective)
        if c.id in card_ids
    )
    upto = _with_days(mine.filter(pl.col("posted_period") <= period))
    return Statement(
        grant_id=grant.id,
        funder=grant.funder,
        unit=grant.unit,
        budget=grant.budget,
        grant_start=grant.start,
        grant_end=grant.end,
        regime=grant.regime,
        period=period,
        period_start=start,
        period_end=end,
        status="closed" if closed_at is not None else "open",
        closed_at=closed_at,
        generated_for=generated_for,
        policy_version=policy_version,
        rate_cards=used_cards,
        decimals=decimals,
        opening_balance=_q(opening, decimals),
        charges=charges.sort("end_at", "run_key", "resource").select(list(CHARGE_COLUMNS)),
        adjustments=adjustments.sort("posted_at", "refers_period", "run_key", "resource").select(
            list(ADJUSTMENT_COLUMNS)
        ),
        total_charges=_q(total_charges, decimals),
        total_adjustments=_q(total_adjustments, decimals),
        closing_balance=_q(closing, decimals),
        budget_used=used.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN),
        burn_rate_per_day=burn,
        run_out=run_out,
        summaries=_summaries(charges, decimals),
        burndown=_burndown(
            upto,
            grant,
            until=until if closed_at is None else end,
            run_out=run_out,
            burn_rate=burn,
            decimals=decimals,
        ),
    )


def _with_days(lines: pl.DataFrame) -> pl.DataFrame:
    """Return ``lines`` with the ``day`` each counts on in the burn-down."""
    bounds = lines.select("posted_period").unique()
    starts = {p: period_bounds(p) for p in bounds["posted_period"].to_list()}
    frame = pl.DataFrame(
        {
            "posted_period": list(starts),
            "p_start": [s for s, _ in starts.values()],
            "p_last": [e - timedelta(microseconds=1) for _, e in starts.values()],
        },
        schema={
            "posted_period": pl.String,
            "p_start": pl.Datetime("us", "UTC"),
            "p_last": pl.Datetime("us", "UTC"),
        },
    )
    moment = pl.coalesce("end_at", "posted_at", "p_start")
    return lines.join(frame, on="posted_period", how="left").with_columns(
        day=pl.min_horizontal(pl.max_horizontal(moment, "p_start"), "p_last").dt.date()
    )
