"""The drift report: fairledger's factors against sshare, on real Slurm 22.05 captures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from ingest.sources.sacct import parse_sacct
from ingest.sources.sacctmgr_assoc import parse_sacctmgr_associations
from ingest.sources.sacctmgr_qos import parse_sacctmgr_qos
from ingest.sources.slurm_conf import read_slurm_conf
from ingest.sources.slurm_policy import policy_from_slurm
from ingest.sources.sshare import parse_sshare, shows_level_fs
from models.fairshare.factors import compute_factors
from reports.drift import (
    METRICS,
    build_drift,
    format_drift,
    format_summary,
    summarize,
    within_tolerance,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _factors(capture: Path) -> pl.DataFrame:
    conf = read_slurm_conf(capture / "slurm.conf")
    assocs = parse_sacctmgr_associations((capture / "assoc_lft.txt").read_text())
    qos = parse_sacctmgr_qos((capture / "qos.txt").read_text())
    policy = policy_from_slurm(conf, assocs, qos)
    runs = parse_sacct((capture / "sacct.txt").read_text(), source="sacct.txt").runs
    as_of = datetime.fromisoformat((capture / "as_of.txt").read_text().strip())
    return compute_factors(runs.lazy(), policy, as_of=as_of)


def _sshare(capture: Path) -> list[str]:
    return (capture / "sshare.txt").read_text().splitlines()


@pytest.fixture(scope="module")
def fair_tree() -> tuple[pl.DataFrame, list[str]]:
    capture = GOLDEN / "real_slurm_nodecay"
    return _factors(capture), _sshare(capture)


def _drift(ours: pl.DataFrame, lines: list[str]) -> pl.DataFrame:
    """Return the drift of ``ours`` against the sshare output ``lines``, parsed as the command
    parses it."""
    printed = "\n".join(lines)
    return build_drift(
        ours, parse_sshare(printed, origin="sshare"), fair_tree=shows_level_fs(printed)
    )


def _row(drift: pl.DataFrame, account: str, user: str = "") -> dict[str, object]:
    return drift.filter((pl.col("account") == account) & (pl.col("user") == user)).row(
        0, named=True
    )


def test_a_real_fair_tree_capture_has_no_drift(fair_tree: tuple[pl.DataFrame, list[str]]) -> None:
    ours, lines = fair_tree
    drift = _drift(ours, lines)
    assert drift.height == 16 and set(drift.get_column("side")) == {"both"}
    assert drift.get_column("account").to_list()[:3] == ["root", "root", "bio"]
    assert within_tolerance(drift, tolerance=1e-6, usage_tolerance=0.0)
    for _, column in METRICS:
        if column == "raw_usage":  # the plain difference: ours has decimals, sshare none
            continue
        worst = drift.get_column(f"{column}_diff").drop_nulls().abs().max()
        assert worst is not None and worst < 5.1e-7, column
    bob = _row(drift, "physics", "bob")
    assert bob["raw_usage_slurm"] == 246.0 and 246.0 < bob["raw_usage_ours"] < 247.0
    assert bob["raw_usage_rel"] == 0.0
    carol = _row(drift, "theory", "carol")  # Fairshare=parent: no LevelFS on either side
    assert carol["level_fs_ours"] is None and carol["level_fs_slurm"] is None
    assert carol["level_fs_diff"] is None
    assert _row(drift, "bio")["fairshare_ours"] is None  # accounts: no FairShare (Fair Tree)
    assert _row(drift, "idle", "heidi")["level_fs_diff"] == 0.0  # inf == inf


def test_a_real_classic_capture_has_no_drift() -> None:
    capture = GOLDEN / "real_slurm_classic"
    drift = _drift(_factors(capture), _sshare(capture))
    assert within_tolerance(drift, usage_tolerance=0.0)
    assert drift.get_column("level_fs_slurm").null_count() == 16
    assert _row(drift, "bio")["fairshare_slurm"] == pytest.approx(0.745402)
    summary = {m.metric: m for m in summarize(drift)}
    assert summary["LevelFS"].max_abs_diff is None and summary["LevelFS"].within


def test_a_different_fairshare_is_found_and_named(
    fair_tree: tuple[pl.DataFrame, list[str]],
) -> None:
    ours, lines = fair_tree
    changed = [
        line.replace("|0.100000|0.882346|", "|0.200000|0.882346|") if "|bob|" in line else line
        for line in lines
    ]
    drift = _drift(ours, changed)
    summary = {m.metric: m for m in summarize(drift)}
    assert summary["FairShare"].max_abs_diff == pytest.approx(0.1)
    assert summary["FairShare"].where == "physics/bob" and not summary["FairShare"].within
    assert summary["NormShares"].within and not within_tolerance(drift)
    text = format_summary(summarize(drift), ok=False)
    assert text[-1] == "DRIFT: outside tolerance"
    assert any(line.startswith("FairShare") and "OUT OF TOLERANCE" in line for line in text)


def test_raw_usage_is_compared_with_the_interval_sshare_truncated_to(
    fair_tree: tuple[pl.DataFrame, list[str]],
) -> None:
    ours, lines = fair_tree
    lowered = [line.replace("|bob|10|0.250000|246|", "|bob|10|0.250000|240|") for line in lines]
    drift = _drift(ours, lowered)
    bob = _row(drift, "physics", "bob")
    ours_bob = bob["raw_usage_ours"]
    assert bob["raw_usage_diff"] == pytest.approx(ours_bob - 240.0)
    assert bob["raw_usage_rel"] == pytest.approx((ours_bob - 241.0) / 240.0)  # 246.22 vs [240, 241]
    assert not within_tolerance(drift, usage_tolerance=1e-3)
    assert within_tolerance(drift, usage_tolerance=3e-2)


def test_associations_on_one_side_only(fair_tree: tuple[pl.DataFrame, list[str]]) -> None:
    ours, lines = fair_tree
    without_heidi = [line for line in lines if "|heidi|" not in line]
    extra = "  idle|zoe|10|1.000000|0|0.000000|0.000000|1.000000|inf||"
    drift = _drift(ours, [*without_heidi, extra])
    sides = dict(
        zip(
            drift.select(pl.concat_str("account", "user", separator="/")).to_series(),
            drift.get_column("side"),
            strict=True,
        )
    )
    assert sides["idle/heidi"] == "ours" and sides["idle/zoe"] == "slurm"
    assert not within_tolerance(drift)
    assert any("(only in ours)" in line for line in format_drift(drift))


def test_infinite_against_finite_is_an_infinite_difference(
    fair_tree: tuple[pl.DataFrame, list[str]],
) -> None:
    ours, lines = fair_tree
    changed = [line.replace("|1.000000|inf|", "|1.000000|2.000000|") for line in lines]
    drift = _drift(ours, changed)
    assert math.isinf(_row(drift, "idle", "heidi")["level_fs_diff"])
    assert not within_tolerance(drift)


def test_several_clusters_need_sshare_to_name_them(
    fair_tree: tuple[pl.DataFrame, list[str]],
) -> None:
    ours, lines = fair_tree
    both = pl.concat([ours, ours.with_columns(cluster=pl.lit("other"))])
    with pytest.raises(ValueError, match="pick one"):
        _drift(both, lines)
    drift = _drift(both, ["CLUSTER: lab", *lines])
    assert set(drift.get_column("cluster")) == {"lab"}
    assert within_tolerance(drift, usage_tolerance=0.0)


def test_the_table_has_a_line_per_association(fair_tree: tuple[pl.DataFrame, list[str]]) -> None:
    ours, lines = fair_tree
    table = format_drift(_drift(ours, lines))
    assert len(table) == 2 + 16
    assert table[0].split()[:3] == ["Account", "User", "NormShares"]
    assert table[1].split()[:3] == ["ours", "slurm", "diff"]
    assert "-0.000000" not in "\n".join(table)
    frank = next(line for line in table if " frank " in line)
    assert frank.split()[:4] == ["bio", "frank", "1.000000", "1.000000"]
    assert format_summary(summarize(_drift(ours, lines)), ok=True)[-1] == "within tolerance"


# ---------------------------------------------------------------------------- the command


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", "--db", str(db), *args],
        capture_output=True,
        text=True,
        cwd=db.parent,
        env={"PYTHONPATH": str(GOLDEN.parents[1]), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


@pytest.mark.slow
def test_the_drift_command_exit_status(tmp_path: Path) -> None:
    capture = GOLDEN / "real_slurm_nodecay"
    db = tmp_path / "site.duckdb"
    imported = _cli(
        db, "policy", "import-slurm", "--slurm-conf", str(capture / "slurm.conf"),
        "--assoc", str(capture / "assoc_lft.txt"), "--qos", str(capture / "qos.txt"),
        "--out", str(tmp_path / "policy.toml"),
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert _cli(db, "ingest", "file", str(capture / "sacct.txt")).returncode == 0
    as_of = (capture / "as_of.txt").read_text().strip()
    sshare = str(capture / "sshare.txt")
    same = _cli(db, "drift", "--sshare", sshare, "--as-of", as_of, "--usage-tolerance", "0")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[-1] == "within tolerance"
    later = _cli(db, "drift", "--sshare", sshare, "--as-of", "2026-12-31T23:00:00")
    assert later.returncode == 0  # no decay: a later time changes nothing
    reset = _cli(db, "drift", "--sshare", sshare, "--as-of", "2027-01-01T00:00:00")
    assert reset.returncode == 4  # ... until PriorityUsageResetPeriod=YEARLY zeroes the usage
    changed = tmp_path / "sshare.txt"
    changed.write_text((capture / "sshare.txt").read_text().replace("|0.800000|", "|0.900000|"))
    drifted = _cli(db, "drift", "--sshare", str(changed), "--as-of", as_of, "--format", "json")
    assert drifted.returncode == 4, drifted.stderr
    doc = json.loads(drifted.stdout)
    fairshare = next(m for m in doc["summary"] if m["metric"] == "FairShare")
    assert fairshare["where"] == "bio/frank" and not doc["within_tolerance"]
    csv = _cli(db, "drift", "--sshare", sshare, "--as-of", as_of, "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("cluster,account,user,depth,side,")
    neither = _cli(db, "drift", "--as-of", as_of)
    assert neither.returncode == 2 and "--sshare" in neither.stderr
