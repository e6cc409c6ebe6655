"""Decayed fair-share usage: each run's usage rate integrated under a half-life decay.

A run with usage rate b (billing x QOS UsageFactor per second) over [s, e], seen at time t >= e
with per-second decay factor q, has usage ``b * (q**(t-e) - q**(t-s)) / -ln(q)``; without decay
(half-life 0) ``b * (e - s)``. The interval is ``[start_at, end_at]`` clipped to ``as_of``: a
running run (``end_at`` null) counts up to ``as_of``; a run that never started, or starts after
``as_of``, counts 0. ``elapsed_s`` is not used: Slurm accrues usage over wall-clock time between
its decay ticks, which equals ``ElapsedRaw`` for a run that was never suspended.

Two decay factors: ``exact`` ``q = 2**(-1/T)``, and ``slurm`` ``q = 1 - 0.693/T``, the first-order
approximation slurmctld uses. Slurm also discretises: at each ``PriorityCalcPeriod`` tick of Δ
seconds it multiplies the stored usage by ``q**Δ`` and adds a running job's slice as
``b * Δ * q**Δ``, as if the whole slice were as old as the tick. The continuous integral here
does not; ``tick_drift`` says by how much a slice differs.

``PriorityUsageResetPeriod`` (DAILY, WEEKLY, MONTHLY, QUARTERLY, YEARLY; UTC) zeroes usage at
period boundaries: only usage after the last boundary at or before ``as_of`` counts. ``NOW``
resets once, at the moment the setting is applied, which a pure model cannot know: it counts as
``NONE``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl

from models.errors import PolicyError
from models.fairshare.frames import ASSOC_USAGE
from models.policy import Decay, ResetPeriod

# Below this value of λ·Δ, 1 - exp(-λ·Δ) is taken from its series: the subtraction would lose
# digits (polars has no expm1).
_SERIES_BELOW = 1e-4


def decay_rate(decay: Decay) -> float:
    """Return the per-second decay factor q of the policy (1.0 when the half-life is 0)."""
    half_life = decay.half_life_s
    if half_life == 0:
        return 1.0
    if decay.model == "exact":
        return float(2.0 ** (-1.0 / half_life))
    if half_life <= 0.693:
        raise PolicyError(f"decay: half_life_s {half_life} is too short for the slurm model")
    return 1.0 - 0.693 / half_life


def _log_rate(decay: Decay) -> float:
    """Return -ln(q), computed without rounding q first (q is within 1e-4 of 1)."""
    half_life = decay.half_life_s
    if half_life == 0:
        return 0.0
    decay_rate(decay)  # validates
    if decay.model == "exact":
        return math.log(2.0) / half_life
    return -math.log1p(-0.693 / half_life)


def tick_drift(decay: Decay) -> float:
    """Return how much less Slurm adds for one calc-period slice of a running job than we do.

    The relative difference ``1 - Δ·q**Δ / ((1 - q**Δ) / -ln q)`` for Δ = ``calc_period_s``
    (0 without decay). About 0.017 % for a 7-day half-life and 5-minute ticks, 6.8 % for a
    5-minute half-life and 1-minute ticks.
    """
    lam = _log_rate(decay)
    if lam == 0.0:
        return 0.0
    step = float(decay.calc_period_s)
    continuous = -math.expm1(-lam * step) / lam
    return 1.0 - step * math.exp(-lam * step) / continuous


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # naive times are UTC throughout fairledger
    return moment.astimezone(UTC)


def last_reset_boundary(as_of: datetime, period: ResetPeriod) -> datetime | None:
    """Return the last usage-reset boundary at or before ``as_of`` (UTC), None for NONE/NOW.

    Boundaries are Slurm's: DAILY at 00:00, WEEKLY on Sunday 00:00, MONTHLY on the 1st,
    QUARTERLY on 1 January/April/July/October, YEARLY on 1 January.
    """
    t = _utc(as_of)
    midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period in ("NONE", "NOW"):
        return None
    if period == "DAILY":
        return midnight
    if period == "WEEKLY":
        return midnight - timedelta(days=(midnight.weekday() + 1) % 7)  # Monday=0 .. Sunday=6
    if period == "MONTHLY":
        return midnight.replace(day=1)
    if period == "QUARTERLY":
        return midnight.replace(month=(t.month - 1) // 3 * 3 + 1, day=1)
    if period == "YEARLY":
        return midnight.replace(month=1, day=1)
    raise PolicyError(f"unknown usage reset period {period!r}")


# polars divides a column by a scalar as a multiplication by its reciprocal in some rows and as a
# true division in others, depending on where the row falls in the column: the same run could get
# a different last bit in another position. So no column is divided by a scalar here: seconds come
# from integer arithmetic (exact for whole seconds) and constants multiply as reciprocals.
_SIXTH = 1.0 / 6.0


def _seconds(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    micros = (later - earlier).dt.total_microseconds()
    whole = (micros // 1_000_000).cast(pl.Float64)
    return whole + (micros % 1_000_000).cast(pl.Float64) * 1e-6


def run_usage(runs: pl.LazyFrame, *, decay: Decay, as_of: datetime) -> pl.LazyFrame:
    """Return ``runs`` with ``raw_usage``: each run's decayed usage at ``as_of``.

    ``runs`` needs ``start_at``, ``end_at`` and ``usage_rate`` (see ``models.fairshare.usage``).
    ``raw_usage`` is in billing-seconds x usage factor, decayed to ``as_of``.
    """
    t = _utc(as_of)
    now = pl.lit(t, dtype=pl.Datetime("us", "UTC"))
    start = pl.col("start_at")
    boundary = last_reset_boundary(t, decay.usage_reset)
    if boundary is not None:  # max_horizontal skips nulls: keep never-started runs null
        floor = pl.lit(boundary, dtype=pl.Datetime("us", "UTC"))
        start = pl.when(start.is_null()).then(None).otherwise(pl.max_horizontal(start, floor))
    end = pl.min_horizontal(pl.col("end_at").fill_null(now), now)
    span = _seconds(end, start).clip(lower_bound=0.0).fill_null(0.0)  # never started -> 0
    rate = pl.col("usage_rate").fill_null(0.0)
    lam = _log_rate(decay)
    if lam == 0.0:
        usage = rate * span
    else:
        x = span * lam
        # (1 - q**span) / lam, with its series where the subtraction would cancel
        integral = (
            pl.when(x < _SERIES_BELOW)
            .then(span * (1.0 - x * 0.5 + x * x * _SIXTH))
            .otherwise((1.0 - (-x).exp()) * (1.0 / lam))
        )
        age = _seconds(now, end).clip(lower_bound=0.0).fill_null(0.0)
        usage = rate * (-(age * lam)).exp() * integral
    return runs.with_columns(usage.alias("raw_usage"))


def ordered_sum(name: str) -> pl.Expr:
    """Return the sum of float column ``name``, added one value at a time in ascending order.

    Float addition is not associative, so a sum depends on the order of its terms. polars' own
    ``sum`` (in ``group_by`` above all) adds partial sums in whatever order its threads finish,
    and the runs arrive in whatever order the store returns them: the last digit would vary from
    call to call. Sorting the values first makes the terms' order a function of the values
    alone, and ``cum_sum`` is a sequential scan, so equal inputs, in any order, give the same
    bits. Nulls count 0; ``+ 0.0`` turns a -0.0 term into 0.0 (sort may order the two zeros
    either way).
    """
    return (pl.col(name) + 0.0).sort().cum_sum().last().fill_null(0.0)


def decayed_usage(runs: pl.LazyFrame, *, decay: Decay, as_of: datetime) -> pl.LazyFrame:
    """Return ``ASSOC_USAGE``: the decayed usage at ``as_of`` summed per association.

    One row per (cluster, account, user) that has runs, ``raw_usage`` in billing-seconds x usage
    factor, the same bits whatever the order of ``runs`` (see ``ordered_sum``). ``runs`` needs
    ``cluster``, ``account``, ``user``, ``start_at``, ``end_at`` and ``usage_rate``.
    """
    return (
        run_usage(runs, decay=decay, as_of=as_of)
        .group_by("cluster", "account", "user")
        .agg(ordered_sum("raw_usage"))
        .sort("cluster", "account", "user")
        .select([pl.col(name).cast(dtype) for name, dtype in ASSOC_USAGE.items()])
    )
