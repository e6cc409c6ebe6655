"""Fair Tree and classic factors: ties, tolerance, Slurm's quirks, tree building and errors."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from models.errors import PolicyError, UnknownAssociation
from models.fairshare.factors import classic_factors, compute_factors, fair_tree_factors
from models.fairshare.frames import ASSOC_USAGE, ASSOCIATIONS, FACTORS
from models.fairshare.tree import build_tree, rolled_usage, split_usage
from models.frames import TRES_ITEM, UTC_TIME
from models.policy import FairShare, load_policy_text

ROOT = ("c", "root", "", None, 1, False, None)


def _assocs(*rows: tuple[object, ...]) -> pl.DataFrame:
    """Rows of (cluster, account, user, parent_account, shares, shares_parent, lft)."""
    return pl.DataFrame(
        [dict(zip(ASSOCIATIONS, r, strict=True)) for r in rows], schema=ASSOCIATIONS
    )


def _usage(*rows: tuple[str, str, str, float]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ASSOC_USAGE, orient="row")


def _user(account: str, user: str, shares: int | None = 1, lft: int | None = None):
    return ("c", account, user, account, shares, shares is None, lft)


def _account(account: str, parent: str, shares: int | None = 1, lft: int | None = None):
    return ("c", account, "", parent, shares, shares is None, lft)


def _fs(frame: pl.DataFrame) -> dict[str, float]:
    users = frame.filter(pl.col("user") != "")
    return {f"{a}/{u}": f for a, u, f in users.select("account", "user", "fairshare").iter_rows()}


def test_a_tie_within_the_tolerance_shares_a_rank():
    assocs = _assocs(ROOT, _account("A", "root"), _user("A", "x"), _user("A", "y"))
    usage = _usage(("c", "A", "x", 1.0), ("c", "A", "y", 1.0 + 1e-12))
    assert _fs(fair_tree_factors(assocs, usage, fairshare=FairShare())) == {
        "A/x": 1.0,
        "A/y": 1.0,
    }
    exact = FairShare(tolerance=0.0)
    assert _fs(fair_tree_factors(assocs, usage, fairshare=exact)) == {"A/x": 1.0, "A/y": 0.5}


def test_a_parent_account_first_on_a_tied_level_takes_the_tie_as_in_slurm():
    # Y ties with X and is walked second; the first of Y's fair-share children is the
    # Fairshare=parent account P (LevelFS NO_VAL, no children): slurmctld hands P the tie,
    # so y1 and p1 start a new rank instead of sharing x1's.
    assocs = _assocs(
        ROOT,
        _account("X", "root"),
        _user("X", "x1"),
        _account("Y", "root"),
        _user("Y", "y1"),
        _account("P", "Y", None),
        _user("P", "p1"),
    )
    usage = _usage(("c", "X", "x1", 10.0), ("c", "Y", "y1", 5.0), ("c", "P", "p1", 5.0))
    factors = fair_tree_factors(assocs, usage, fairshare=FairShare())
    assert _fs(factors) == {"X/x1": 1.0, "Y/y1": 2 / 3, "P/p1": 2 / 3}
    p = factors.filter(account="P", user="").row(0, named=True)
    assert p["level_fs"] is None and p["raw_shares"] is None and p["shares_parent"]


def test_merge_and_slurm_ties_agree_when_nothing_has_usage():
    assocs = _assocs(
        ROOT, _account("A", "root"), _user("A", "a"), _account("B", "root"), _user("B", "b")
    )
    slurm = fair_tree_factors(assocs, _usage(), fairshare=FairShare(ties="slurm"))
    merge = fair_tree_factors(assocs, _usage(), fairshare=FairShare(ties="merge"))
    assert _fs(slurm) == _fs(merge) == {"A/a": 1.0, "B/b": 1.0}


def test_sshare_order_is_users_first_then_accounts_by_byte_order():
    assocs = _assocs(
        ROOT,
        _account("beta", "root"),
        _account("Zed", "root"),
        _user("root", "zz"),
        _user("root", "Aa"),
        _account("alpha", "beta"),
        _user("beta", "u"),
    )
    tree = build_tree(assocs, "c")
    assert [(n.account, n.user, n.depth) for n in tree.nodes] == [
        ("root", "", 0),
        ("root", "Aa", 1),
        ("root", "zz", 1),
        ("Zed", "", 1),
        ("beta", "", 1),
        ("beta", "u", 2),
        ("alpha", "", 2),
    ]


def test_lft_order_falls_back_to_name_order_without_lft():
    assocs = _assocs(
        ROOT,
        _account("A", "root", lft=9),
        _account("B", "root", lft=3),
        _account("C", "root"),
    )
    tree = build_tree(assocs, "c")
    kids = tree.fs_children("lft")[id(tree.root)]
    assert [n.account for n in kids] == ["B", "A", "C"]
    assert [n.account for n in tree.fs_children("name")[id(tree.root)]] == ["A", "B", "C"]


def test_usage_of_an_unknown_association_is_refused_or_split_off():
    assocs = _assocs(ROOT, _account("A", "root"), _user("A", "x"))
    usage = _usage(("c", "A", "x", 1.0), ("c", "A", "ghost", 2.0), ("other", "A", "x", 3.0))
    with pytest.raises(UnknownAssociation, match=r"c/A/ghost.*other/A/x"):
        fair_tree_factors(assocs, usage, fairshare=FairShare())
    with pytest.raises(UnknownAssociation):
        classic_factors(assocs, usage, fairshare=FairShare())
    known, unknown = split_usage(assocs, usage)
    assert known.rows() == [("c", "A", "x", 1.0)]
    assert unknown.rows() == [("c", "A", "ghost", 2.0), ("other", "A", "x", 3.0)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ((_account("A", "root"),), "no root account"),
        ((ROOT, _account("A", "nowhere")), "unknown parent 'nowhere'"),
        ((ROOT, _account("A", "root"), _account("A", "root")), "defined twice"),
        ((ROOT, _account("A", "B"), _account("B", "A")), "not under root: A, B"),
        ((ROOT, ("c", "A", "", "root", None, False, None)), "has no shares"),
    ],
)
def test_broken_trees_are_refused(rows: tuple[tuple[object, ...], ...], message: str):
    with pytest.raises(PolicyError, match=message):
        build_tree(_assocs(*rows), "c")


def test_each_cluster_ranks_its_own_users():
    assocs = pl.concat(
        [
            _assocs(ROOT, _account("A", "root"), _user("A", "x"), _user("A", "y")),
            _assocs(ROOT, _account("A", "root"), _user("A", "x")).with_columns(
                pl.lit("b").alias("cluster")
            ),
        ]
    )
    usage = _usage(("c", "A", "x", 1.0), ("b", "A", "x", 5.0))
    factors = fair_tree_factors(assocs, usage, fairshare=FairShare())
    assert factors.schema == pl.Schema(FACTORS)
    assert factors.get_column("cluster").unique(maintain_order=True).to_list() == ["b", "c"]
    users = factors.filter(pl.col("user") != "")
    assert users.select("cluster", "user", "fairshare").rows() == [
        ("b", "x", 1.0),
        ("c", "x", 0.5),
        ("c", "y", 1.0),
    ]
    rolled = rolled_usage(assocs, usage)
    assert rolled.filter(account="root", user="").get_column("raw_usage").to_list() == [5.0, 1.0]


def test_classic_dampening_flattens_factors():
    assocs = _assocs(ROOT, _account("A", "root"), _user("A", "x"), _account("B", "root"))
    usage = _usage(("c", "A", "x", 1.0))
    plain = classic_factors(assocs, usage, fairshare=FairShare(algorithm="classic"))
    damped = classic_factors(assocs, usage, fairshare=FairShare(algorithm="classic", dampening=5.0))
    # x: S = 0.5, UE = 1: 2^-2 plain, 2^-(2/5) dampened
    assert _fs(plain) == {"A/x": 0.25}
    assert _fs(damped) == {"A/x": pytest.approx(2 ** (-2 / 5))}
    root = damped.row(0, named=True)
    assert (root["norm_shares"], root["effective_usage"]) == (1.0, 1.0)
    assert root["fairshare"] == pytest.approx(2 ** (-1 / 5))
    assert root["norm_usage"] is None and root["level_fs"] is None


def test_compute_factors_runs_the_whole_pipeline():
    policy = load_policy_text(
        """
[[clusters]]
name = "c"
partitions = [{ name = "p", tres_billing_weights = "CPU=2.0", default = true }]
[decay]
half_life_s = 0
[fairshare]
algorithm = "classic"
[[associations]]
cluster = "c"
account = "root"
[[associations]]
cluster = "c"
account = "A"
parent = "root"
[[associations]]
cluster = "c"
account = "A"
user = "x"
"""
    )
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    runs = pl.LazyFrame(
        {
            "cluster": ["c", "c"],
            "account": ["A", "A"],
            "user": ["x", "ghost"],
            "partition": ["p", "p"],
            "qos": ["normal", "normal"],
            "start_at": [t0, t0],
            "end_at": [t0.replace(minute=1), t0.replace(minute=1)],
            "tres": [[{"name": "cpu", "count": 1.0}]] * 2,
        },
        schema_overrides={"start_at": UTC_TIME, "end_at": UTC_TIME, "tres": pl.List(TRES_ITEM)},
    )
    with pytest.raises(UnknownAssociation, match="c/A/ghost"):
        compute_factors(runs, policy, as_of=t0.replace(hour=1))
    factors = compute_factors(runs, policy, as_of=t0.replace(hour=1), unknown="drop")
    x = factors.filter(user="x").row(0, named=True)
    assert x["raw_usage"] == 120.0  # 2 billing x 60 s
    assert x["fairshare"] == 0.5  # the only user: UE = S = 1
