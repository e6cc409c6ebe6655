"""What-if: the same runs under another policy, side by side."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from test_golden_scenarios import _runs

from models.errors import PolicyError, UnknownAssociation
from models.fairshare.frames import SIMULATION
from models.fairshare.simulate import policy_with, simulate
from models.policy import load_policy_text
from tests.kit import site_policy

POLICY = site_policy(
    {"a": ["ann", "ben"]}, cluster="c", partition="p", billing=None, half_life_s=3600
)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _run(user: str, start_h: int, end_h: int) -> dict[str, str]:
    """Return a 1-CPU run from ``start_h`` to ``end_h`` hours before NOW."""
    return {
        "cluster": "c",
        "account": "a",
        "user": user,
        "partition": "p",
        "qos": "",
        "start_at": (NOW - timedelta(hours=start_h)).isoformat(),
        "end_at": (NOW - timedelta(hours=end_h)).isoformat(),
        "tres": "cpu=1",
    }


RUNS = _runs([_run("ann", 2, 1), _run("ben", 10, 9)])


def _decayed(start_h: int, end_h: int, half_life_h: float) -> float:
    """Return by hand: the integral of 2**(-age / T) over the run's ages, in seconds."""
    t = half_life_h * 3600
    return (2 ** (-end_h / half_life_h) - 2 ** (-start_h / half_life_h)) * t / math.log(2)


def _row(table: pl.DataFrame, user: str) -> dict[str, object]:
    return table.filter(pl.col("user") == user).row(0, named=True)


def test_the_same_policy_changes_nothing() -> None:
    policy = load_policy_text(POLICY)
    table = simulate(RUNS, policy, policy, as_of=NOW)
    assert table.schema == pl.Schema(SIMULATION)
    assert table.height == 4
    assert table.get_column("raw_usage_change").to_list() == [0.0] * 4
    users = table.filter(pl.col("user") != "")
    assert users.get_column("fairshare_change").to_list() == [0.0, 0.0]
    assert users.get_column("rank_change").to_list() == [0, 0]


def test_a_longer_half_life_changes_usage_as_computed_by_hand() -> None:
    policy = load_policy_text(POLICY)
    longer = policy_with(policy, half_life_s=7200)
    table = simulate(RUNS, policy, longer, as_of=NOW)
    for user, (start, end) in {"ann": (2, 1), "ben": (10, 9)}.items():
        row = _row(table, user)
        assert row["raw_usage_current"] == pytest.approx(_decayed(start, end, 1), rel=1e-9)
        assert row["raw_usage_other"] == pytest.approx(_decayed(start, end, 2), rel=1e-9)
        assert row["raw_usage_change"] == pytest.approx(
            _decayed(start, end, 2) - _decayed(start, end, 1), rel=1e-9
        )
    # ben's older run gains more, relatively: 134 / 5.07 against ann's 2151 / 1298
    assert _row(table, "ben")["rank_current"] == 1 and _row(table, "ann")["rank_current"] == 2


def test_more_shares_move_a_user_up() -> None:
    policy = load_policy_text(POLICY)
    generous = policy_with(policy, shares=[("c", "a", "ann", 1000)])
    table = simulate(RUNS, policy, generous, as_of=NOW)
    ann, ben = _row(table, "ann"), _row(table, "ben")
    assert (ann["rank_current"], ann["rank_other"], ann["rank_change"]) == (2, 1, 1)
    assert (ben["rank_current"], ben["rank_other"], ben["rank_change"]) == (1, 2, -1)
    assert ann["fairshare_change"] == pytest.approx(0.5)
    assert ann["raw_usage_change"] == 0.0


def test_overrides_are_validated() -> None:
    policy = load_policy_text(POLICY)
    with pytest.raises(UnknownAssociation):
        policy_with(policy, shares=[("c", "nowhere", "", 1)])
    with pytest.raises(PolicyError):
        policy_with(policy, half_life_s=-1)
    assert policy_with(policy, algorithm="classic").fairshare.algorithm == "classic"
