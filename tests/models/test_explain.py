"""Explanations: the path values are the factors' own, neighbours, top runs and recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import polars as pl
import pytest
from test_golden_scenarios import _as_of, _runs, _runs_sacct

from models.errors import UnknownAssociation
from models.fairshare.explain import RESOLUTION_S, explain_association, recovery_time
from models.fairshare.factors import compute_factors
from models.policy import Policy, load_policy, load_policy_text
from tests.kit import site_policy

LAB = Path(__file__).resolve().parents[1] / "golden" / "lab_real_nodecay"
PATH_COLUMNS = ("raw_shares", "norm_shares", "raw_usage", "effective_usage", "level_fs")


class Lab(NamedTuple):
    policy: Policy
    runs: pl.LazyFrame
    as_of: datetime
    factors: pl.DataFrame


@pytest.fixture(scope="module")
def lab() -> Lab:
    policy = load_policy(LAB / "policy.toml")
    runs = _runs_sacct(LAB / "sacct.txt")
    as_of = _as_of(LAB)
    return Lab(policy, runs, as_of, compute_factors(runs, policy, as_of=as_of))


def test_every_users_path_holds_the_factors_values(lab: Lab) -> None:
    policy, runs, as_of, factors = lab
    rows = {(r["account"], r["user"]): r for r in factors.iter_rows(named=True)}
    users = [(a, u) for a, u in rows if u]
    assert len(users) == 10
    for account, user in users:
        found = explain_association(
            runs, policy, cluster="lab", account=account, user=user, as_of=as_of, target=0.0
        )
        assert found.fairshare == rows[(account, user)]["fairshare"]
        assert next((lv.account, lv.user) for lv in found.path) == ("root", "")
        assert (found.path[-1].account, found.path[-1].user) == (account, user)
        for level in found.path:
            row = rows[(level.account, level.user)]
            assert level.depth == row["depth"]
            for name in PATH_COLUMNS:
                assert getattr(level, name) == row[name], (account, user, level, name)


def test_the_last_user_sees_where_the_one_above_parts_from_it(lab: Lab) -> None:
    policy, runs, as_of, _ = lab
    # sshare: physics/bob 0.1 (last of 10), theory/dave 0.2; under physics, bob's LevelFS
    # 0.880642 loses to the theory account's 1.004298, so all of theory ranks above bob.
    found = explain_association(
        runs, policy, cluster="lab", account="physics", user="bob", as_of=as_of
    )
    assert (found.rank, found.users, found.below) == (10, 10, None)
    above = found.above
    assert above is not None
    assert (above.account, above.user, above.rank, above.fairshare) == ("theory", "dave", 9, 0.2)
    assert (above.diverge_depth, above.mine, above.theirs) == (2, "physics/bob", "theory")
    assert above.mine_level_fs == pytest.approx(0.880642, abs=1e-6)
    assert above.theirs_level_fs == pytest.approx(1.004298, abs=1e-6)
    assert above.theirs_level_fs > above.mine_level_fs


def test_top_runs_are_the_users_usage(lab: Lab) -> None:
    policy, runs, as_of, factors = lab
    usage = factors.filter((pl.col("account") == "physics") & (pl.col("user") == "alice"))
    found = explain_association(
        runs, policy, cluster="lab", account="physics", user="alice", as_of=as_of, top_runs=1000
    )
    weights = [r.raw_usage for r in found.top_runs]
    assert weights == sorted(weights, reverse=True) and len(weights) > 1
    assert sum(weights) == pytest.approx(usage.item(0, "raw_usage"), rel=1e-12)
    assert sum(r.share for r in found.top_runs) == pytest.approx(1.0)
    fewer = explain_association(
        runs, policy, cluster="lab", account="physics", user="alice", as_of=as_of, top_runs=1
    )
    assert [r.raw_usage for r in fewer.top_runs] == weights[:1]


def test_unknown_user_is_refused(lab: Lab) -> None:
    policy, runs, as_of, _ = lab
    with pytest.raises(UnknownAssociation):
        explain_association(runs, policy, cluster="lab", account="physics", user="x", as_of=as_of)


# Two users with equal shares, no decay. At as_of, ann has used 10 CPU-hours (finished),
# ben 4 CPU-hours of a 1-CPU run still going: ann ranks second (0.5). If ann runs nothing
# more, ben's usage passes hers 6 hours later and she ranks first (1.0).
TWO = site_policy({"a": ["ann", "ben"]}, cluster="c", partition="p", billing=None, half_life_s=0)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _two(ben_running: bool) -> pl.LazyFrame:
    def row(user: str, start: datetime, end: datetime | None) -> dict[str, str]:
        return {
            "cluster": "c",
            "account": "a",
            "user": user,
            "partition": "p",
            "qos": "",
            "start_at": start.isoformat(),
            "end_at": end.isoformat() if end else "",
            "tres": "cpu=1",
        }

    ben_end = None if ben_running else NOW
    return _runs(
        [row("ann", NOW - timedelta(hours=10), NOW), row("ben", NOW - timedelta(hours=4), ben_end)]
    )


def test_recovery_comes_when_the_others_usage_passes_hers() -> None:
    policy = load_policy_text(TWO)
    runs = _two(ben_running=True)
    found = explain_association(runs, policy, cluster="c", account="a", user="ann", as_of=NOW)
    assert (found.rank, found.fairshare) == (2, 0.5)
    assert found.recovery is not None and found.recovery.target == 1.0
    assert found.recovery.after_s is not None
    assert abs(found.recovery.after_s - 6 * 3600) <= RESOLUTION_S
    assert found.recovery.at == NOW + timedelta(seconds=found.recovery.after_s)
    top = explain_association(runs, policy, cluster="c", account="a", user="ben", as_of=NOW)
    assert top.rank == 1 and top.recovery is None  # nothing to recover to


def test_recovery_is_monotone_in_the_target_and_none_when_never() -> None:
    policy = load_policy_text(TWO)
    times = [
        recovery_time(
            _two(ben_running=True),
            policy,
            cluster="c",
            account="a",
            user="ann",
            as_of=NOW,
            target=target,
        ).after_s
        for target in (0.0, 0.5, 0.75, 1.0)
    ]
    assert times[:2] == [0.0, 0.0]
    assert times[2] is not None and times[3] is not None and times[2] <= times[3]
    never = recovery_time(
        _two(ben_running=False),
        policy,
        cluster="c",
        account="a",
        user="ann",
        as_of=NOW,
        target=1.0,
    )
    assert (never.at, never.after_s) == (None, None)
