"""Charging runs: exact amounts, the charging rules, and rate cards that never reprice the past."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import PolicyError
from models.frames import MAX_COUNT, MAX_ELAPSED_S, MAX_MEM_MB
from models.money.charges import Charges, charge_runs, recharge
from models.money.frames import CHARGE_RUNS
from models.money.grants import RESOURCES, RateCard
from models.money.quotes import quote_run
from models.policy import Policy, load_policy_text
from tests.strategies import examples

POLICY = """
[[clusters]]
name = "c1"

[[grants]]
id = "G-1"
funder = "NSF"
budget = "1000.00"
start = 2026-01-01
end = 2026-12-31
members = [
    { account = "a", start = 2026-01-01 },
    { account = "b", user = "bob", start = 2026-03-01 },
]

[[grants]]
id = "G-2"
funder = "NIH"
budget = "500.00"
start = 2026-01-01
end = 2026-12-31
members = [{ account = "b", start = 2026-01-01 }]

[[rate_cards]]
id = "v1"
effective = 2026-01-01
minimum_charge = "0.05"
rates = [
    { resource = "cpu", price = "0.02" },
    { resource = "mem", price = "0.004" },
    { resource = "gpu", gpu_model = "a100", price = "1.10" },
    { resource = "gpu", price = "0.50" },
    { resource = "cpu", partition = "big", price = "0.03" },
    { resource = "node", cluster = "c1", partition = "excl", price = "0.25" },
]
qos_multipliers = { premium = "1.5", cheap = "0.25" }

[[rate_cards]]
id = "v2"
effective = 2026-06-01
rates = [{ resource = "cpu", price = "0.04" }]
"""


def policy(extra: str = "") -> Policy:
    return load_policy_text(POLICY + extra)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def run(
    key: str,
    *,
    start: datetime,
    hours: float,
    account: str = "a",
    user: str = "u",
    cpus: int = 1,
    mem_mb: float = 0,
    gpus: int = 0,
    gpu: str | None = None,
    nodes: int = 1,
    partition: str = "p",
    qos: str = "normal",
    state: str = "COMPLETED",
    job: str | None = None,
    ended: bool = True,
) -> dict[str, object]:
    seconds = round(hours * 3600)
    return {
        "run_key": key,
        "cluster": "c1",
        "job_id": job or key,
        "job_id_raw": job or key,
        "account": account,
        "user": user,
        "partition": partition,
        "qos": qos,
        "state": state,
        "submit_at": start,
        "start_at": start,
        "end_at": start + timedelta(seconds=seconds) if ended else None,
        "elapsed_s": seconds,
        "alloc_nodes": nodes,
        "alloc_cpus": cpus,
        "alloc_mem_mb": mem_mb,
        "alloc_gpus": gpus,
        "gpu_type": gpu,
    }


def frame(*runs: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(runs), schema=CHARGE_RUNS)


def amounts(lines: pl.DataFrame) -> dict[tuple[str, str], Decimal]:
    return {
        (r["run_key"], r["resource"]): r["amount"].quantize(Decimal("0.01"))
        for r in lines.iter_rows(named=True)
    }


def test_each_resource_is_priced_by_its_most_specific_rate() -> None:
    charges = charge_runs(
        frame(
            run("1", start=at(2026, 3, 1), hours=2, cpus=4, mem_mb=8192, gpus=2, gpu="A100"),
            run("2", start=at(2026, 3, 1), hours=2, cpus=4, partition="big"),
            run("3", start=at(2026, 3, 1), hours=1, gpus=1, gpu="v100", cpus=0),
            run("4", start=at(2026, 3, 1), hours=3, nodes=2, partition="excl", cpus=0),
        ),
        policy(),
    )
    assert amounts(charges.lines) == {
        ("1", "cpu"): Decimal("0.16"),  # 4 CPUs x 2 h x 0.02
        ("1", "mem"): Decimal("0.06"),  # 8 GiB x 2 h x 0.004 = 0.064 -> 0.06
        ("1", "gpu"): Decimal("4.40"),  # 2 x 2 h x 1.10 (a100 matches case-insensitively)
        ("2", "cpu"): Decimal("0.24"),  # partition big: 0.03
        ("3", "gpu"): Decimal("0.50"),  # another GPU model: the generic gpu rate
        ("4", "node"): Decimal("1.50"),  # 2 nodes x 3 h x 0.25 (only partition excl has one)
    }
    assert set(charges.lines["grant_id"]) == {"G-1"}
    assert set(charges.lines["period"]) == {"2026-03"}


def test_rounding_is_half_even_per_line() -> None:
    # 1 CPU x 0.02: 900 s = 0.005 -> 0.00 (even), 2700 s = 0.015 -> 0.02 (even),
    # 4500 s = 0.025 -> 0.02 (even), 7 x 900 s = 0.035 -> 0.04
    lines = charge_runs(
        frame(
            run("a", start=at(2026, 2, 1), hours=0.25, qos="x"),
            run("b", start=at(2026, 2, 1), hours=0.75, qos="x"),
            run("c", start=at(2026, 2, 1), hours=1.25, qos="x"),
            run("d", start=at(2026, 2, 1), hours=1.75, qos="x"),
        ),
        policy().model_copy(
            update={
                "rate_cards": [
                    policy().rate_cards[0].model_copy(update={"minimum_charge": Decimal(0)})
                ]
            }
        ),
    ).lines
    got = {r["run_key"]: r["amount"] for r in lines.iter_rows(named=True)}
    assert got == {
        "a": Decimal("0.00"),
        "b": Decimal("0.02"),
        "c": Decimal("0.02"),
        "d": Decimal("0.04"),
    }


def test_qos_multiplier_and_minimum_charge() -> None:
    lines = charge_runs(
        frame(
            run("p", start=at(2026, 2, 1), hours=10, cpus=2, qos="premium"),
            run("s", start=at(2026, 2, 1), hours=1, qos="cheap"),
        ),
        policy(),
    ).lines
    assert amounts(lines) == {
        ("p", "cpu"): Decimal("0.60"),  # 2 x 10 h x 0.02 x 1.5
        ("s", "cpu"): Decimal("0.00"),  # 0.02 x 0.25 = 0.005 -> 0.00
        ("s", "minimum"): Decimal("0.05"),  # topped up to the card's minimum charge
    }


def test_runs_that_are_not_charged_are_reported_with_the_reason() -> None:
    charges = charge_runs(
        frame(
            run("nogrant", start=at(2026, 2, 1), hours=1, account="zzz"),
            run("nodefail", start=at(2026, 2, 1), hours=1, state="NODE_FAIL"),
            run("before", start=at(2025, 12, 1), hours=1),  # before the grant and any card
            run("running", start=at(2026, 2, 1), hours=1, ended=False),
            run("ok", start=at(2026, 2, 1), hours=1),
        ),
        policy(),
    )
    reasons = dict(charges.unbilled.select("run_key", "reason").iter_rows())
    assert set(reasons) == {"nogrant", "nodefail", "before"}
    assert "no grant" in reasons["nogrant"]
    assert "NODE_FAIL" in reasons["nodefail"]
    assert set(charges.lines["run_key"]) == {"ok"}  # a running run waits for its end


def test_requeued_runs_are_charged_unless_the_policy_says_only_the_last() -> None:
    runs = frame(
        run("j/1", job="77", start=at(2026, 2, 1), hours=1),
        run("j/2", job="77", start=at(2026, 2, 1, 2), hours=1),
    )
    assert set(charge_runs(runs, policy()).lines["run_key"]) == {"j/1", "j/2"}
    last_only = policy("\n[charging]\ncharge_requeued_runs = false\n")
    charges = charge_runs(runs, last_only)
    assert set(charges.lines["run_key"]) == {"j/2"}
    assert "requeued" in charges.unbilled["reason"][0]


def test_user_membership_beats_the_account_and_grants_follow_dates() -> None:
    lines = charge_runs(
        frame(
            run("bob-feb", account="b", user="bob", start=at(2026, 2, 1), hours=1),
            run("bob-mar", account="b", user="bob", start=at(2026, 3, 2), hours=1),
            run("eve-mar", account="b", user="eve", start=at(2026, 3, 2), hours=1),
        ),
        policy(),
    ).lines
    grants = dict(lines.select("run_key", "grant_id").unique().iter_rows())
    assert grants == {"bob-feb": "G-2", "bob-mar": "G-1", "eve-mar": "G-2"}


def test_prorated_runs_split_exactly_over_months() -> None:
    prorate = policy('\n[charging]\nattribution = "prorate"\n')
    # 10 CPUs from Mar 31 18:00 to Apr 1 06:00: 6 h in March, 6 h in April
    lines = charge_runs(
        frame(run("x", start=at(2026, 3, 31, 18), hours=12, cpus=10)), prorate
    ).lines
    by_period = dict(lines.select("period", "seconds").iter_rows())
    assert by_period == {"2026-03": 6 * 3600, "2026-04": 6 * 3600}
    assert lines["amount"].to_list() == [Decimal("1.20"), Decimal("1.20")]  # 10 x 6 h x 0.02


def test_a_card_applies_from_its_date_on() -> None:
    lines = charge_runs(
        frame(
            run("may", start=at(2026, 5, 31, 20), hours=5, cpus=1),  # ends June 1 -> v2
            run("may2", start=at(2026, 5, 31, 20), hours=1, cpus=1),  # ends May 31 -> v1
        ),
        policy(),
    ).lines
    cards = dict(
        lines.filter(pl.col("resource") == "cpu").select("run_key", "rate_card").iter_rows()
    )
    assert cards == {"may": "v2", "may2": "v1"}


def test_prices_with_more_than_six_decimals_are_refused() -> None:
    bad = POLICY.replace('price = "0.02"', 'price = "0.0000001"')
    with pytest.raises(PolicyError, match=r"at most 6 decimal places"):
        charge_runs(frame(run("1", start=at(2026, 3, 1), hours=1)), load_policy_text(bad))


def test_quote_prices_a_job_now_and_names_the_grant() -> None:
    quoted = quote_run(
        policy(),
        at=at(2026, 7, 1),
        cluster="c1",
        partition="p",
        account="a",
        user="u",
        qos="premium",
        hours=Decimal("2.5"),
        cpus=8,
    )
    assert quoted.lines.select("grant_id", "rate_card", "amount").rows() == [
        ("G-1", "v2", Decimal("0.800000"))  # 8 x 2.5 h x 0.04 (v2 has no premium multiplier)
    ]


def reference_amount(qty: Decimal, seconds: int, price: Decimal, mult: Decimal) -> Decimal:
    """The charge of one line by plain Decimal arithmetic (the definition in docs/money.md)."""
    exact = qty * Decimal(seconds) / Decimal(3600) * price * mult
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@settings(max_examples=examples(60), deadline=None)
@given(
    cpus=st.integers(1, 4096),
    seconds=st.integers(1, 300 * 86400),  # ends within the grant (2026)
    price=st.decimals("0.000001", "50", places=6),
    mult=st.sampled_from([Decimal("1"), Decimal("1.5"), Decimal("0.25"), Decimal("0.333333")]),
)
def test_amounts_equal_exact_decimal_arithmetic(
    cpus: int, seconds: int, price: Decimal, mult: Decimal
) -> None:
    card = RateCard(
        id="r",
        effective=date(2026, 1, 1),
        rates=[{"resource": "cpu", "price": price}],  # type: ignore[list-item]
        qos_multipliers={"q": mult},
    )
    p = policy().model_copy(update={"rate_cards": [card]})
    start = at(2026, 1, 2)
    r = run("1", start=start, hours=0, cpus=cpus, qos="q")
    r["elapsed_s"] = seconds
    r["end_at"] = start + timedelta(seconds=seconds)
    lines = charge_runs(frame(r), p).lines
    assert lines["amount"].to_list() == [reference_amount(Decimal(cpus), seconds, price, mult)]


@settings(max_examples=examples(40), deadline=None)
@given(
    hours=st.lists(st.integers(1, 2000), min_size=1, max_size=12),
    card_day=st.integers(0, 300),
)
def test_a_new_rate_card_never_alters_a_past_charge(hours: list[int], card_day: int) -> None:
    runs = frame(
        *(
            run(str(i), start=at(2026, 1, 2) + timedelta(days=15 * i), hours=h / 10, cpus=i + 1)
            for i, h in enumerate(hours)
        )
    )
    before = charge_runs(runs, policy()).lines
    effective = date(2026, 1, 2) + timedelta(days=card_day)
    new_card = RateCard(
        id="v9",
        effective=effective,
        rates=[{"resource": "cpu", "price": "9.99"}],  # type: ignore[list-item]
    )
    p = policy()
    after = charge_runs(runs, p.model_copy(update={"rate_cards": [*p.rate_cards, new_card]})).lines
    cutoff = datetime.combine(effective, datetime.min.time(), tzinfo=UTC)
    past = pl.col("end_at") < cutoff
    assert after.filter(past).equals(before.filter(past))


def test_a_card_with_two_rates_for_the_same_thing_is_refused() -> None:
    twice = POLICY.replace(
        '{ resource = "cpu", price = "0.02" },',
        '{ resource = "cpu", price = "0.02" },\n    { resource = "cpu", price = "0.03" },',
    )
    with pytest.raises(PolicyError, match=r"rate card v1: two rates for cpu/\*/\*/\*"):
        load_policy_text(twice)


def test_two_grants_claiming_the_same_account_at_the_same_time_are_refused() -> None:
    clash = POLICY.replace(
        'members = [{ account = "b", start = 2026-01-01 }]',
        'members = [{ account = "b", start = 2026-01-01 }, { account = "a", start = 2026-06-01 }]',
    )
    with pytest.raises(PolicyError, match=r"a charges to both G-1 and G-2 from 2026-06-01"):
        load_policy_text(clash)
    later = clash.replace(
        '{ account = "a", start = 2026-01-01 },',
        '{ account = "a", start = 2026-01-01, end = 2026-05-31 },',
    )
    grants = dict(
        charge_runs(
            frame(
                run("may", start=at(2026, 5, 30), hours=1),
                run("june", start=at(2026, 6, 2), hours=1),
            ),
            load_policy_text(later),
        )
        .lines.select("run_key", "grant_id")
        .iter_rows()
    )
    assert grants == {"may": "G-1", "june": "G-2"}


def sorted_charges(charges: Charges) -> tuple[pl.DataFrame, pl.DataFrame]:
    return (
        charges.lines.sort(pl.all()),
        charges.unbilled.sort(pl.all()),
    )


# (job, start day, hours, account, state, ended) of a run; the key is job/start day.
run_specs = st.tuples(
    st.sampled_from(["1", "2", "3", "4"]),
    st.integers(0, 200),
    st.integers(1, 900),
    st.sampled_from(["a", "b", "zz"]),
    st.sampled_from(["COMPLETED", "FAILED", "NODE_FAIL"]),
    st.booleans(),
)


def runs_of(specs: dict[str, tuple[str, int, int, str, str, bool]]) -> pl.DataFrame:
    return frame(
        *(
            run(key, job=job, start=at(2026, 1, 1) + timedelta(days=day), hours=hours / 10,
                account=account, state=state, ended=ended)
            for key, (job, day, hours, account, state, ended) in sorted(specs.items())
        )
    )  # fmt: skip


@settings(max_examples=examples(60), deadline=None)
@given(
    before=st.lists(run_specs, max_size=12),
    after=st.lists(run_specs, max_size=6),
    last_only=st.booleans(),
)
def test_charging_the_touched_jobs_again_equals_charging_every_run(
    before: list[tuple[str, int, int, str, str, bool]],
    after: list[tuple[str, int, int, str, str, bool]],
    last_only: bool,
) -> None:
    rules = policy("\n[charging]\ncharge_requeued_runs = false\n" if last_only else "")
    stored = {f"{s[0]}/{s[1]}": s for s in before}
    charges = charge_runs(runs_of(stored), rules)
    # a later batch: new runs, requeues of known jobs, revisions of stored runs (same key)
    delivered = {f"{s[0]}/{s[1]}": s for s in after}
    now = {**stored, **delivered}
    touched = {spec[0] for spec in delivered.values()}
    runs_of_touched = runs_of({k: s for k, s in now.items() if s[0] in touched})
    got = sorted_charges(recharge(charges, runs_of_touched, rules))
    want = sorted_charges(charge_runs(runs_of(now), rules))
    assert got[0].equals(want[0]) and got[1].equals(want[1])


def test_a_run_too_large_to_charge_is_unbilled_and_the_others_are_charged() -> None:
    good = run("g", start=at(2026, 2, 1), hours=2, cpus=4, account="b")  # G-2
    clean = charge_runs(frame(good), policy())
    poisoned = {
        "mem": run("m", start=at(2026, 2, 1), hours=2, mem_mb=1e19),
        "nan": run("n", start=at(2026, 2, 1), hours=2, mem_mb=float("nan")),
        "inf": run("i", start=at(2026, 2, 1), hours=2, mem_mb=float("-inf")),
        "elapsed": {**run("e", start=at(2026, 2, 1), hours=2), "elapsed_s": 10**15},
    }
    charges = charge_runs(frame(good, *poisoned.values()), policy())
    assert charges.lines.equals(clean.lines)  # the other grant's lines, unchanged
    assert dict(charges.unbilled.select("run_key", "reason").iter_rows()) == {
        "m": "alloc_mem_mb 1e+19 is beyond what can be charged",
        "n": "alloc_mem_mb NaN is beyond what can be charged",
        "i": "alloc_mem_mb -inf is beyond what can be charged",
        "e": "elapsed_s 1000000000000000 is beyond what can be charged",
    }
    # the cache's path: charging the touched jobs again keeps the run unbilled
    again = recharge(clean, frame(poisoned["mem"]), policy())
    assert again.lines.equals(clean.lines)
    assert again.unbilled["reason"].to_list() == [
        "alloc_mem_mb 1e+19 is beyond what can be charged"
    ]


def test_a_line_whose_exact_product_would_overflow_leaves_its_run_unbilled() -> None:
    card = RateCard(
        id="r",
        effective=date(2026, 1, 1),
        rates=[{"resource": "cpu", "price": Decimal("1000000000000")}],  # type: ignore[list-item]
        qos_multipliers={"q": Decimal("1000")},
    )
    p = policy().model_copy(update={"rate_cards": [card]})
    good = run("g", start=at(2026, 2, 1), hours=2, cpus=4)
    huge = run("h", start=at(2026, 2, 1), hours=2000, cpus=MAX_COUNT, qos="q")
    charges = charge_runs(frame(good, huge), p)
    assert charges.lines["run_key"].to_list() == ["g"]
    assert charges.lines["amount"].to_list() == [Decimal("8000000000000.00")]  # 4 x 2 h x 1e12
    (reason,) = charges.unbilled["reason"].to_list()
    assert reason.startswith("its cpu charge (2147483647 x 7200000 s")
    assert reason.endswith("is beyond what can be charged")


@settings(max_examples=examples(60), deadline=None)
@given(
    cpus=st.integers(0, MAX_COUNT),
    mem_mb=st.integers(0, MAX_MEM_MB),
    gpus=st.integers(0, MAX_COUNT),
    nodes=st.integers(1, MAX_COUNT),
    seconds=st.integers(1, MAX_ELAPSED_S),
    price=st.decimals("0.000001", "10", places=6),
)
def test_runs_within_the_bounds_are_charged_exactly(
    cpus: int, mem_mb: int, gpus: int, nodes: int, seconds: int, price: Decimal
) -> None:
    card = RateCard(
        id="r",
        effective=date(2026, 1, 1),
        rates=[{"resource": r, "price": price} for r in RESOURCES],  # type: ignore[misc]
        qos_multipliers={"q": Decimal("1.5")},
    )
    p = policy().model_copy(update={"rate_cards": [card]})
    start = at(2026, 1, 2)
    r = run("1", start=start, hours=0, cpus=cpus, mem_mb=mem_mb, gpus=gpus, nodes=nodes, qos="q")
    r["elapsed_s"] = seconds  # the end stays in the grant (charging reads Elapsed)
    r["end_at"] = start + timedelta(hours=1)
    charges = charge_runs(frame(r), p)
    assert charges.unbilled.is_empty()
    got = dict(charges.lines.select("resource", "amount").iter_rows())
    qty = {"cpu": Decimal(cpus), "gpu": Decimal(gpus), "mem": Decimal(mem_mb) / 1024,
           "node": Decimal(nodes)}  # fmt: skip
    with localcontext(prec=60):  # exact for these sizes: no rounding before the quantum's
        want = {res: reference_amount(q, seconds, price, Decimal("1.5")) for res, q in qty.items()}
    assert got == {res: a for res, a in want.items() if qty[res] > 0}
