"""Properties of statements over random histories: every total is a sum of lines, balances
chain from period to period, and closing freezes a period against any later change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.money.charges import charge_runs
from models.money.frames import CHARGE_RUNS
from models.money.ledger import empty_ledger, ledger_view, next_period, to_freeze
from models.money.statement import Statement
from models.money.statement_builder import build_statement
from models.policy import load_policy_text
from tests.strategies import examples

POLICY = load_policy_text(
    """
[[clusters]]
name = "c"

[[grants]]
id = "G"
funder = "F"
budget = "5000.00"
start = 2026-01-01
end = 2026-12-31
members = [{ account = "a", start = 2026-01-01 }, { account = "b", start = 2026-03-01 }]

[[rate_cards]]
id = "v1"
effective = 2026-01-01
minimum_charge = "0.03"
rates = [{ resource = "cpu", price = "0.013" }, { resource = "mem", price = "0.0021" }]
qos_multipliers = { hi = "1.7" }

[[rate_cards]]
id = "v2"
effective = 2026-04-10
rates = [{ resource = "cpu", price = "0.017" }, { resource = "mem", price = "0.0019" }]

[charging]
attribution = "prorate"
"""
)
PERIODS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]

runs_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["u1", "u2", "u3"]),
        st.integers(0, 140 * 24),  # start, hours after Jan 1
        st.integers(1, 200_000),  # seconds
        st.integers(1, 64),  # CPUs
        st.integers(0, 300_000),  # MB
        st.sampled_from(["normal", "hi"]),
    ),
    min_size=1,
    max_size=25,
)


def frame(spec: list[tuple[str, str, int, int, int, int, str]]) -> pl.DataFrame:
    rows = []
    for i, (account, user, start_h, seconds, cpus, mem, qos) in enumerate(spec):
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=start_h)
        rows.append(
            {
                "run_key": f"c/{i}/0",
                "cluster": "c",
                "job_id": str(i),
                "job_id_raw": str(i),
                "account": account,
                "user": user,
                "partition": "p",
                "qos": qos,
                "state": "COMPLETED",
                "submit_at": start,
                "start_at": start,
                "end_at": start + timedelta(seconds=seconds),
                "elapsed_s": seconds,
                "alloc_nodes": 1,
                "alloc_cpus": cpus,
                "alloc_mem_mb": float(mem),
                "alloc_gpus": 0,
                "gpu_type": None,
            }
        )
    return pl.DataFrame(rows, schema=CHARGE_RUNS)


def statements(view: pl.DataFrame, closed: set[str]) -> dict[str, Statement]:
    grant = POLICY.grants[0]
    return {
        p: build_statement(
            view,
            grant,
            p,
            rate_cards=list(POLICY.rate_cards),
            decimals=2,
            policy_version=1,
            closed_at=datetime(2026, 6, 1, tzinfo=UTC) if p in closed else None,
            as_of=datetime(2026, 6, 1, tzinfo=UTC),
        )
        for p in PERIODS
    }


@settings(max_examples=examples(40), deadline=None)
@given(spec=runs_strategy)
def test_totals_are_sums_of_lines_and_balances_chain(
    spec: list[tuple[str, str, int, int, int, int, str]],
) -> None:
    lines = charge_runs(frame(spec), POLICY).lines
    view = ledger_view(
        lines,
        empty_ledger(),
        empty_ledger(),
        last_closed=None,
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    made = statements(view, set())
    previous = None
    for period in PERIODS:
        s = made[period]
        assert s.total_charges == sum(s.charges["amount"].to_list(), Decimal(0))
        for summary in s.summaries:
            assert sum(summary.amounts.values(), Decimal(0)) == s.total_charges
        assert s.closing_balance == s.opening_balance - s.total_charges - s.total_adjustments
        if previous is not None:
            assert s.opening_balance == previous.closing_balance
        previous = s
    # every charged line lands in exactly one statement
    assert sum((made[p].total_charges for p in PERIODS), Decimal(0)) == sum(
        lines.filter(pl.col("period").is_in(PERIODS))["amount"].to_list(), Decimal(0)
    )


@pytest.mark.slow
@settings(max_examples=examples(30), deadline=None)
@given(first=runs_strategy, later=runs_strategy)
def test_closing_freezes_a_period_and_later_runs_become_adjustments(
    first: list[tuple[str, str, int, int, int, int, str]],
    later: list[tuple[str, str, int, int, int, int, str]],
) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    before = charge_runs(frame(first), POLICY).lines
    view = ledger_view(before, empty_ledger(), empty_ledger(), last_closed=None, now=now)
    frozen = pl.concat([to_freeze(view, p) for p in PERIODS[:3]])  # Jan-Mar closed
    closed_then = statements(
        ledger_view(before, frozen, empty_ledger(), last_closed="2026-03", now=now),
        set(PERIODS[:3]),
    )
    # later: the first runs revised (other sizes) and more runs, as one new history
    after = charge_runs(frame(later + first[len(later) :]), POLICY).lines
    view2 = ledger_view(after, frozen, empty_ledger(), last_closed="2026-03", now=now)
    closed_now = statements(view2, set(PERIODS[:3]))
    for p in PERIODS[:3]:
        a, b = closed_then[p], closed_now[p]
        assert (a.total_charges, a.closing_balance) == (b.total_charges, b.closing_balance)
        assert a.charges.equals(b.charges)
    # what the closed periods should hold now minus what they froze is adjusted in April
    april = closed_now[next_period("2026-03")]
    owed = sum(after.filter(pl.col("period") <= "2026-03")["amount"].to_list(), Decimal(0))
    held = sum(frozen["amount"].to_list(), Decimal(0))
    assert april.total_adjustments == owed - held
