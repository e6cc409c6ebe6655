"""The fair-share invariants (docs/fairshare.md), held by property tests over random trees,
usage, runs and weights.

Every factor is in [0, 1]; scaling all shares or all usage by k > 0 changes nothing; more usage
never raises one's own factor; decaying by t1 then t2 equals decaying by t1 + t2; billing is
recomputed from TRES and weights; an account's usage is the sum of its subtree's; the same runs in
any order give bit-identical factors.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.fairshare.decay import decay_rate, decayed_usage
from models.fairshare.factors import classic_factors, compute_factors, fair_tree_factors
from models.fairshare.frames import ASSOC_USAGE, ASSOCIATIONS
from models.fairshare.tree import rolled_usage
from models.fairshare.usage import usage_rates
from models.frames import RUNS, TRES_ITEM, UTC_TIME
from models.policy import Association, Cluster, Decay, FairShare, Partition, Policy, Qos
from tests.strategies import examples

SETTINGS = settings(
    max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
ALGORITHMS = [
    ("fair_tree", "slurm"),
    ("fair_tree", "merge"),
    ("classic", "slurm"),
]


@dataclass(frozen=True)
class Site:
    """A random association tree with usage per user association."""

    assocs: pl.DataFrame
    usage: pl.DataFrame

    def with_shares_times(self, k: int) -> Site:
        return Site(self.assocs.with_columns(pl.col("shares") * k), self.usage)

    def with_usage_times(self, k: float) -> Site:
        return Site(self.assocs, self.usage.with_columns(pl.col("raw_usage") * k))


@st.composite
def sites(draw: st.DrawFn) -> Site:
    n_accounts = draw(st.integers(1, 5))
    rows: list[tuple[object, ...]] = [("c", "root", "", None, 1, False)]
    accounts = ["root"]
    for i in range(n_accounts):
        name = f"acct{i}"
        parent = draw(st.sampled_from(accounts))
        shares = draw(st.one_of(st.integers(0, 6), st.just("parent")))
        rows.append(("c", name, "", parent, *_shares(shares)))
        accounts.append(name)
    usage_rows = []
    for account in accounts:
        for j in range(draw(st.integers(0, 3))):
            user = f"u{j}"
            shares = draw(st.one_of(st.integers(0, 6), st.just("parent")))
            rows.append(("c", account, user, account, *_shares(shares)))
            used = draw(st.one_of(st.just(0.0), st.integers(1, 10_000).map(float)))
            usage_rows.append(("c", account, user, used))
    assocs = pl.DataFrame(
        [dict(zip(list(ASSOCIATIONS)[:6], r, strict=True)) for r in rows],
        schema={k: v for k, v in ASSOCIATIONS.items() if k != "lft"},
    ).with_columns(pl.lit(None, dtype=pl.Int64).alias("lft"))
    return Site(assocs, pl.DataFrame(usage_rows, schema=ASSOC_USAGE, orient="row"))


def _shares(value: int | str) -> tuple[int | None, bool]:
    return (None, True) if value == "parent" else (int(value), False)


def _factors(site: Site, algorithm: str, ties: str) -> pl.DataFrame:
    fairshare = FairShare(algorithm=algorithm, ties=ties)  # type: ignore[arg-type]
    run = classic_factors if algorithm == "classic" else fair_tree_factors
    return run(site.assocs, site.usage, fairshare=fairshare)


def _by_association(frame: pl.DataFrame) -> dict[tuple[str, str], float | None]:
    return {(r["account"], r["user"]): r["fairshare"] for r in frame.iter_rows(named=True)}


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@SETTINGS
@given(site=sites(), which=st.sampled_from(ALGORITHMS))
def test_every_factor_is_between_0_and_1(site: Site, which: tuple[str, str]) -> None:
    factors = _factors(site, *which)
    users = factors.filter(pl.col("user") != "")
    assert users.get_column("fairshare").null_count() == 0
    for column in ("fairshare", "norm_shares", "norm_usage", "effective_usage"):
        values = factors.get_column(column).drop_nulls()
        assert ((values >= 0.0) & (values <= 1.0)).all(), column
    if which[0] == "fair_tree" and users.height:
        assert users.get_column("fairshare").max() == 1.0  # the first ranked gets N/N


@SETTINGS
@given(site=sites(), which=st.sampled_from(ALGORITHMS), k=st.integers(2, 7))
def test_scaling_every_share_changes_nothing(site: Site, which: tuple[str, str], k: int) -> None:
    before = _by_association(_factors(site, *which))
    after = _by_association(_factors(site.with_shares_times(k), *which))
    assert all(_close(before[key], after[key]) for key in before)


@SETTINGS
@given(
    site=sites(),
    which=st.sampled_from(ALGORITHMS),
    k=st.floats(0.001, 1000.0, allow_nan=False, allow_infinity=False),
)
def test_scaling_all_usage_changes_nothing(site: Site, which: tuple[str, str], k: float) -> None:
    before = _by_association(_factors(site, *which))
    after = _by_association(_factors(site.with_usage_times(k), *which))
    assert all(_close(before[key], after[key]) for key in before)


@SETTINGS
@given(
    site=sites(),
    which=st.sampled_from(ALGORITHMS),
    pick=st.integers(0, 100),
    extra=st.integers(1, 50_000).map(float),
)
def test_more_usage_never_raises_ones_own_factor(
    site: Site, which: tuple[str, str], pick: int, extra: float
) -> None:
    if site.usage.height == 0:
        return
    row = site.usage.row(pick % site.usage.height, named=True)
    key = (row["account"], row["user"])
    more = site.usage.with_columns(
        pl.when((pl.col("account") == key[0]) & (pl.col("user") == key[1]))
        .then(pl.col("raw_usage") + extra)
        .otherwise(pl.col("raw_usage"))
    )
    before = _by_association(_factors(site, *which))[key]
    after = _by_association(_factors(Site(site.assocs, more), *which))[key]
    assert before is not None and after is not None
    assert after <= before + 1e-12


@SETTINGS
@given(site=sites())
def test_an_accounts_usage_is_its_own_plus_its_subtrees(site: Site) -> None:
    rolled = rolled_usage(site.assocs, site.usage)
    total = {(r["account"], r["user"]): r["raw_usage"] for r in rolled.iter_rows(named=True)}
    assert math.isclose(total[("root", "")], site.usage.get_column("raw_usage").sum())
    for account in site.assocs.filter(pl.col("user") == "").get_column("account"):
        kids = site.assocs.filter(
            ((pl.col("parent_account") == account) & (pl.col("user") == ""))
            | ((pl.col("account") == account) & (pl.col("user") != ""))
        )
        below = sum(total[(a, u)] for a, u in kids.select("account", "user").iter_rows())
        assert math.isclose(total[(account, "")], below, abs_tol=1e-9)


# ------------------------------------------------------------------------------------ decay

T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


@st.composite
def finished_runs(draw: st.DrawFn) -> pl.LazyFrame:
    """Runs that ended by T0."""
    n = draw(st.integers(1, 8))
    starts, ends, rates, users = [], [], [], []
    for _ in range(n):
        end_ago = draw(st.integers(0, 20 * 3600))
        length = draw(st.integers(0, 10 * 3600))
        starts.append(T0 - timedelta(seconds=end_ago + length))
        ends.append(T0 - timedelta(seconds=end_ago))
        rates.append(draw(st.floats(0.0, 64.0, allow_nan=False)))
        users.append(draw(st.sampled_from(["u", "v"])))
    return pl.LazyFrame(
        {
            "cluster": ["c"] * n,
            "account": ["a"] * n,
            "user": users,
            "start_at": starts,
            "end_at": ends,
            "usage_rate": rates,
        },
        schema_overrides={"start_at": UTC_TIME, "end_at": UTC_TIME},
    )


def _usage(runs: pl.LazyFrame, decay: Decay, at: datetime) -> dict[str, float]:
    frame = decayed_usage(runs, decay=decay, as_of=at).collect()
    return dict(zip(frame.get_column("user"), frame.get_column("raw_usage"), strict=True))


@SETTINGS
@given(
    runs=finished_runs(),
    model=st.sampled_from(["exact", "slurm"]),
    half_life=st.integers(60, 14 * 86400),
    t1=st.integers(0, 30 * 86400),
    t2=st.integers(0, 30 * 86400),
)
def test_decaying_by_t1_then_t2_is_decaying_by_their_sum(
    runs: pl.LazyFrame, model: str, half_life: int, t1: int, t2: int
) -> None:
    decay = Decay(half_life_s=half_life, model=model)  # type: ignore[arg-type]
    q = decay_rate(decay)
    after_t1 = _usage(runs, decay, T0 + timedelta(seconds=t1))
    after_both = _usage(runs, decay, T0 + timedelta(seconds=t1 + t2))
    for user, value in after_t1.items():
        assert math.isclose(value * q**t2, after_both[user], rel_tol=1e-9, abs_tol=1e-300)


# ---------------------------------------------------------------------------------- billing

TRES_NAMES = ["cpu", "mem", "node", "gres/gpu", "license/matlab", "billing", "energy"]


@SETTINGS
@given(
    counts=st.lists(
        st.dictionaries(st.sampled_from(TRES_NAMES), st.integers(0, 4096).map(float)),
        min_size=1,
        max_size=6,
    ),
    weights=st.dictionaries(
        st.sampled_from(["CPU", "Mem", "GRES/gpu", "License/matlab"]),
        st.integers(0, 40).map(lambda w: w / 8),
    ),
    max_tres=st.booleans(),
    factor=st.integers(0, 8).map(lambda f: f / 4),
)
def test_billing_is_recomputed_from_tres_and_weights(
    counts: list[dict[str, float]], weights: dict[str, float], max_tres: bool, factor: float
) -> None:
    text = ",".join(f"{k}={v}" for k, v in weights.items())
    policy = Policy(
        clusters=[
            Cluster(
                name="c",
                max_tres=max_tres,
                partitions=[Partition(name="p", tres_billing_weights=text, default=True)],
            )
        ],
        qos=[Qos(name="q", usage_factor=factor)],
    )
    runs = pl.LazyFrame(
        {
            "cluster": ["c"] * len(counts),
            "partition": ["p"] * len(counts),
            "qos": ["q"] * len(counts),
            "tres": [[{"name": k, "count": v} for k, v in c.items()] for c in counts],
        },
        schema_overrides={"tres": pl.List(TRES_ITEM)},
    )
    out = usage_rates(runs, policy).collect()
    per_name = {k.lower(): v for k, v in weights.items()}
    for tres, billing, rate in zip(
        counts, out.get_column("billing_rate"), out.get_column("usage_rate"), strict=True
    ):
        if not per_name:
            expected = tres.get("cpu", 0.0)  # no weights: Slurm bills the CPU count
        else:
            weighted = {k: tres.get(k, 0.0) * w for k, w in per_name.items()}
            if max_tres:
                node = [v for k, v in weighted.items() if k != "license/matlab"]
                expected = max(node, default=0.0) + weighted.get("license/matlab", 0.0)
            else:
                expected = sum(weighted.values())
        assert math.isclose(billing, expected, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(rate, expected * factor, rel_tol=1e-12, abs_tol=1e-12)


# ------------------------------------------------------------------------------ determinism

ACCOUNTS = ["a0", "a1", "a2"]
USERS = ["u0", "u1", "u2"]


def _runs_policy(algorithm: str, model: str) -> Policy:
    assocs = [Association(cluster="c", account="root")]
    for i, account in enumerate(ACCOUNTS):
        assocs.append(Association(cluster="c", account=account, parent="root", shares=i + 1))
        assocs.extend(Association(cluster="c", account=account, user=u) for u in USERS)
    return Policy(
        clusters=[
            Cluster(
                name="c",
                partitions=[
                    Partition(name="p", tres_billing_weights="CPU=1.0,Mem=0.3G", default=True)
                ],
            )
        ],
        decay=Decay(half_life_s=3 * 86400, model=model),  # type: ignore[arg-type]
        fairshare=FairShare(algorithm=algorithm),  # type: ignore[arg-type]
        associations=assocs,
    )


@st.composite
def many_runs(draw: st.DrawFn) -> pl.DataFrame:
    """Runs of a few associations, of very different sizes (so their sums round), some running."""
    n = draw(st.integers(2, 60))
    rows = []
    for _ in range(n):
        start = T0 - timedelta(seconds=draw(st.integers(0, 20 * 86400)))
        length = draw(st.integers(0, 5 * 86400))
        end = start + timedelta(seconds=length)
        rows.append(
            {
                "cluster": "c",
                "account": draw(st.sampled_from(ACCOUNTS)),
                "user": draw(st.sampled_from(USERS)),
                "partition": "p",
                "qos": "",
                "start_at": start,
                "end_at": None if draw(st.booleans()) else end,  # running, or clipped to as_of
                "tres": [
                    {"name": "cpu", "count": float(draw(st.integers(1, 512)))},
                    {"name": "mem", "count": float(draw(st.integers(1, 2_000_000)))},
                ],
            }
        )
    return pl.DataFrame(rows, schema={name: RUNS[name] for name in rows[0]})


def _bits(frame: pl.DataFrame) -> list[tuple[str | None, ...]]:
    """Return every float of ``frame`` as its exact bits (``float.hex``: -0.0 and NaN too)."""
    floats = frame.select(pl.col(pl.Float64))
    return [tuple(None if v is None else v.hex() for v in row) for row in floats.iter_rows()]


@SETTINGS
@given(
    runs=many_runs(),
    order=st.randoms(use_true_random=False),
    algorithm=st.sampled_from(["fair_tree", "classic"]),
    model=st.sampled_from(["exact", "slurm"]),
)
def test_the_same_runs_in_any_order_give_the_same_bits(
    runs: pl.DataFrame, order: random.Random, algorithm: str, model: str
) -> None:
    policy = _runs_policy(algorithm, model)
    positions = list(range(runs.height))
    order.shuffle(positions)
    first = compute_factors(runs.lazy(), policy, as_of=T0)
    shuffled = compute_factors(runs[positions].lazy(), policy, as_of=T0)
    again = compute_factors(runs.lazy(), policy, as_of=T0)
    assert first.height == len(policy.associations)
    assert _bits(shuffled) == _bits(first)
    assert _bits(again) == _bits(first)
    assert shuffled.equals(first) and again.equals(first)
