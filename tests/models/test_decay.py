"""Decayed usage: the closed-form integral, both decay models, usage reset boundaries."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from models.errors import PolicyError
from models.fairshare.decay import (
    decay_rate,
    decayed_usage,
    last_reset_boundary,
    run_usage,
    tick_drift,
)
from models.fairshare.frames import ASSOC_USAGE
from models.frames import UTC_TIME
from models.policy import Decay

T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _runs(*rows: tuple[str, datetime | None, datetime | None, float]) -> pl.LazyFrame:
    """Rows of (user, start_at, end_at, usage_rate), all in cluster c, account a."""
    return pl.LazyFrame(
        {
            "cluster": ["c"] * len(rows),
            "account": ["a"] * len(rows),
            "user": [r[0] for r in rows],
            "start_at": [r[1] for r in rows],
            "end_at": [r[2] for r in rows],
            "usage_rate": [r[3] for r in rows],
        },
        schema_overrides={"start_at": UTC_TIME, "end_at": UTC_TIME},
    )


def _each(runs: pl.LazyFrame, decay: Decay, at: datetime = T0) -> list[float]:
    return run_usage(runs, decay=decay, as_of=at).collect().get_column("raw_usage").to_list()


def test_decay_rates_of_both_models():
    assert decay_rate(Decay(half_life_s=0)) == 1.0
    assert decay_rate(Decay(half_life_s=300, model="exact")) == 2 ** (-1 / 300)
    assert decay_rate(Decay(half_life_s=300, model="slurm")) == 1 - 0.693 / 300
    # slurm-lab.md: over 60 s with a 300 s half-life Slurm's factor is 0.870437, not 0.870551
    assert round(decay_rate(Decay(half_life_s=300, model="slurm")) ** 60, 6) == 0.870437
    assert round(decay_rate(Decay(half_life_s=300, model="exact")) ** 60, 6) == 0.870551
    with pytest.raises(PolicyError, match="too short"):
        decay_rate(Decay(half_life_s=0.5, model="slurm"))


def test_without_decay_usage_is_rate_times_seconds():
    runs = _runs(("u", T0 - 2 * HOUR, T0 - HOUR, 2.0), ("u", T0 - HOUR, None, 0.5))
    assert _each(runs, Decay(half_life_s=0)) == [7200.0, 1800.0]


def test_a_finished_runs_usage_halves_every_half_life():
    decay = Decay(half_life_s=3600)
    runs = _runs(("u", T0 - 2 * HOUR, T0 - HOUR, 1.0))
    now = _each(runs, decay)[0]
    later = _each(runs, decay, T0 + HOUR)[0]
    assert later == pytest.approx(now / 2, rel=1e-12)
    assert now == pytest.approx((0.5 - 0.25) * 3600 / math.log(2), rel=1e-12)


def test_the_closed_form_matches_a_fine_riemann_sum():
    decay = Decay(half_life_s=5000, model="slurm")
    q = decay_rate(decay)
    start, end, rate = 3000, 1200, 3.0  # seconds before T0
    runs = _runs(("u", T0 - timedelta(seconds=start), T0 - timedelta(seconds=end), rate))
    step = 0.01
    riemann = sum(rate * q ** (end + (i + 0.5) * step) * step for i in range(180_000))
    assert _each(runs, decay)[0] == pytest.approx(riemann, rel=1e-9)


def test_a_very_short_run_keeps_its_digits():
    decay = Decay(half_life_s=14 * 86400)
    runs = _runs(("u", T0 - timedelta(seconds=1), T0, 1.0))
    assert _each(runs, decay)[0] == pytest.approx(
        -math.expm1(-math.log(2) / (14 * 86400)) / (math.log(2) / (14 * 86400)), rel=1e-14
    )


def test_running_future_and_never_started_runs():
    decay = Decay(half_life_s=0)
    runs = _runs(
        ("u", T0 - HOUR, None, 1.0),  # running: counts up to as_of
        ("u", T0 - HOUR, T0 + HOUR, 1.0),  # ends after as_of: clipped
        ("u", T0 + HOUR, None, 1.0),  # starts after as_of
        ("u", None, None, 1.0),  # never started
        ("u", None, T0 - HOUR, 1.0),  # cancelled before it started
    )
    assert _each(runs, decay) == [3600.0, 3600.0, 0.0, 0.0, 0.0]


def test_decayed_usage_sums_per_association_in_assoc_usage_shape():
    runs = pl.concat(
        [
            _runs(("u", T0 - HOUR, T0, 1.0), ("v", T0 - HOUR, T0, 2.0), ("u", None, None, 9.0)),
            _runs(("u", T0 - HOUR, T0, 1.0)).with_columns(pl.lit("b").alias("account")),
        ]
    )
    out = decayed_usage(runs, decay=Decay(half_life_s=0), as_of=T0).collect()
    assert out.schema == pl.Schema(ASSOC_USAGE)
    assert out.rows() == [("c", "a", "u", 3600.0), ("c", "a", "v", 7200.0), ("c", "b", "u", 3600.0)]


def test_naive_as_of_is_utc():
    runs = _runs(("u", T0 - HOUR, None, 1.0))
    naive = T0.replace(tzinfo=None)
    assert _each(runs, Decay(half_life_s=0), naive) == [3600.0]


@pytest.mark.parametrize(
    ("as_of", "period", "boundary"),
    [
        ("2024-08-14T05:00", "DAILY", "2024-08-14T00:00"),
        ("2024-08-14T00:00", "DAILY", "2024-08-14T00:00"),
        ("2024-08-14T05:00", "WEEKLY", "2024-08-11T00:00"),  # Wednesday -> Sunday
        ("2024-08-18T00:00", "WEEKLY", "2024-08-18T00:00"),  # a Sunday at midnight
        ("2024-08-17T23:59", "WEEKLY", "2024-08-11T00:00"),
        ("2024-08-14T05:00", "MONTHLY", "2024-08-01T00:00"),
        ("2024-08-14T05:00", "QUARTERLY", "2024-07-01T00:00"),
        ("2024-03-31T23:00", "QUARTERLY", "2024-01-01T00:00"),
        ("2024-12-31T23:00", "QUARTERLY", "2024-10-01T00:00"),
        ("2024-08-14T05:00", "YEARLY", "2024-01-01T00:00"),
    ],
)
def test_reset_boundaries_are_slurms(as_of: str, period: str, boundary: str):
    moment = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
    expected = datetime.fromisoformat(boundary).replace(tzinfo=UTC)
    assert last_reset_boundary(moment, period) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("period", ["NONE", "NOW"])
def test_no_reset_boundary(period: str):
    assert last_reset_boundary(T0, period) is None  # type: ignore[arg-type]


def test_usage_before_the_reset_is_gone_and_after_it_decays():
    decay = Decay(half_life_s=3600, usage_reset="DAILY")
    runs = _runs(
        ("u", T0 - 13 * HOUR, T0 - 11 * HOUR, 1.0),  # 23:00 to 01:00: one hour counts
        ("u", T0 - 20 * HOUR, T0 - 19 * HOUR, 1.0),  # the day before
    )
    one_hour = (0.5**11 - 0.5**12) * 3600 / math.log(2)
    assert _each(runs, decay) == [pytest.approx(one_hour, rel=1e-12), 0.0]


def test_tick_drift_is_reported_not_hidden():
    assert tick_drift(Decay(half_life_s=0)) == 0.0
    week = tick_drift(Decay(half_life_s=7 * 86400, model="slurm", calc_period_s=300))
    assert week == pytest.approx(0.000172, abs=1e-6)
    short = tick_drift(Decay(half_life_s=300, model="slurm", calc_period_s=60))
    assert short == pytest.approx(0.0678, abs=1e-4)
