"""The sshare view: Slurm's cells, number formats, empty cells and indentation."""

from __future__ import annotations

import io
import math

import polars as pl
import pytest

from models.fairshare.frames import FACTORS
from reports.sshare import build_sshare, write_sshare

NO_VAL = 4294967294.0


def _row(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "cluster": "c",
        "account": "A",
        "user": "",
        "parent_account": "root",
        "depth": 1,
        "raw_shares": 1,
        "shares_parent": False,
        "norm_shares": 0.5,
        "raw_usage": 0.0,
        "norm_usage": 0.0,
        "effective_usage": 0.0,
        "fairshare": None,
        "level_fs": None,
    }
    base.update(values)
    return base


def _frame(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=FACTORS)


ROOT = _row(
    account="root",
    parent_account=None,
    depth=0,
    norm_shares=0.0,
    raw_usage=1123.97,
    norm_usage=None,
    effective_usage=1.0,
)


def test_fair_tree_header_and_cells_match_slurm_22_05():
    factors = _frame(
        ROOT,
        _row(user="root", account="root", parent_account="root", norm_shares=0.009009,
             fairshare=1.0, level_fs=math.inf),
        _row(account="theory", parent_account="physics", depth=2, raw_shares=20,
             raw_usage=431.8017578125, norm_usage=0.384175, effective_usage=0.497860,
             level_fs=1.004298),
        _row(account="theory", user="carol", parent_account="theory", depth=3,
             raw_shares=None, shares_parent=True, raw_usage=164.99, norm_usage=0.146645,
             effective_usage=0.381713, fairshare=0.3, level_fs=math.inf),
    )  # fmt: skip
    assert build_sshare(factors, algorithm="fair_tree") == [
        "Account|User|RawShares|NormShares|RawUsage|NormUsage|EffectvUsage|FairShare|LevelFS",
        "root|||0.000000|1123||1.000000||",
        " root|root|1|0.009009|0|0.000000|0.000000|1.000000|inf",
        "  theory||20|0.500000|431|0.384175|0.497860||1.004298",
        "   theory|carol|parent|0.500000|164|0.146645|0.381713|0.300000|",
    ]


def test_classic_has_no_levelfs_and_accounts_show_their_factor():
    factors = _frame(
        _row(account="root", parent_account=None, depth=0, norm_shares=1.0, raw_usage=100.0,
             norm_usage=None, effective_usage=1.0, fairshare=0.5),
        _row(raw_shares=40, norm_shares=0.4, raw_usage=45.0, norm_usage=0.45,
             effective_usage=0.45, fairshare=0.458502),
    )  # fmt: skip
    assert build_sshare(factors, algorithm="classic") == [
        "Account|User|RawShares|NormShares|RawUsage|NormUsage|EffectvUsage|FairShare",
        "root|||1.000000|100||1.000000|0.500000",
        " A||40|0.400000|45|0.450000|0.450000|0.458502",
    ]


def test_slurms_unset_markers_print_as_empty_cells():
    factors = _frame(ROOT, _row(user="u", depth=2, norm_shares=NO_VAL, level_fs=NO_VAL))
    line = build_sshare(factors, algorithm="fair_tree")[2]
    assert line == "  A|u|1||0|0.000000|0.000000||"


def test_one_cluster_at_a_time_and_known_algorithms_only():
    two = _frame(ROOT, {**ROOT, "cluster": "d"})
    with pytest.raises(ValueError, match="one cluster"):
        build_sshare(two, algorithm="fair_tree")
    with pytest.raises(ValueError, match="algorithm"):
        build_sshare(_frame(ROOT), algorithm="level_based")


def test_write_sshare_ends_every_line():
    out = io.StringIO()
    write_sshare(["a|b", "c|d"], out)
    assert out.getvalue() == "a|b\nc|d\n"
