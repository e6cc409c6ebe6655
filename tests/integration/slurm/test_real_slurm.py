"""fairledger against a real Slurm 22.05 (see conftest.py for the lab and when it runs).

For each cluster, fairledger imports the policy from the live slurm.conf and sacctmgr, ingests
the live sacct through the scheduled sacct source, and is compared with the sshare slurmctld
printed right after a priority tick:

1. ``nodecay`` (Fair Tree): every column equal (RawUsage as the integer sshare prints);
2. ``decay`` (half-life 5 min, the ``slurm`` model): with the decay thread's ticks read from the
   slurmctld log, FairShare equal and RawUsage within 0.1 % of slurmctld's own figure; the
   continuous model within the bound derived in docs/slurm-integration.md;
3. ``classic`` (NO_FAIR_TREE): every column equal.

Then ``fairledger drift`` against the live sshare, and ``fairledger push-slurm`` seen by sprio.
"""

from __future__ import annotations

import csv
import io
import itertools
import socket
import time
from collections.abc import Callable
from datetime import datetime

import polars as pl
import pytest
from helpers import LabRun, Site, assoc_mgr_usage, sacct_rows, sshare_columns, usage_close, utc

from api.usecases.delivery import site_factor
from models.fairshare.decay_ticks import (
    continuous_bound,
    order_ends_after_ticks,
    parse_slurmctld_log,
    tick_factors,
)
from models.policy import load_policy
from models.store import open_store, read_runs
from models.store.runs import USAGE_COLUMNS
from reports.sshare import build_sshare

pytestmark = pytest.mark.slurm

SiteOf = Callable[[str], Site]


def _drift(site: Site, *args: str) -> tuple[int, str]:
    done = site.fl("drift", *args, check=False)
    assert done.returncode in (0, 4), done.stderr
    return done.returncode, done.stdout


def _save(run: LabRun, cluster: str, name: str, text: str) -> None:
    (run.captures[cluster].dir / name).write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------- the workload


def test_the_workload_has_the_variety_the_issue_asks_for(slurm_lab: LabRun) -> None:
    for cluster, capture in slurm_lab.captures.items():
        rows = sacct_rows(capture.text("sacct.txt"))
        jobs = slurm_lab.jobs[cluster]
        by_id: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            by_id.setdefault(row["JobIDRaw"], []).append(row)
        states = {r["State"].split()[0] for r in rows}
        assert {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "REQUEUED"} <= states, cluster
        pending = by_id[jobs["cancel_pending"]][0]
        assert pending["State"].startswith("CANCELLED") and pending["ElapsedRaw"] == "0"
        running = by_id[jobs["cancel_running"]][0]
        assert running["State"].startswith("CANCELLED") and int(running["ElapsedRaw"]) > 0
        requeued = by_id[jobs["requeue"]]
        assert [r["State"] for r in requeued] == ["REQUEUED", "COMPLETED"], cluster
        assert sum(1 for r in rows if r["JobID"].startswith(jobs["array"] + "_")) == 3
        assert any("gres/gpu=1" in r["AllocTRES"] for r in rows)
        assert {r["Partition"] for r in rows} == {"cpu", "gpu"}
        assert any(r["QOS"] == "scavenger" for r in rows)
        dependent = by_id[jobs["dependent"]][0]
        fail = by_id[jobs["fail"]][0]
        assert dependent["State"] == "COMPLETED" and dependent["Start"] >= fail["End"]
        assert {r["Account"] for r in rows if r["User"] == "alice"} >= {"physics", "chem"}


def test_the_decay_run_charged_jobs_in_slices_at_ticks(slurm_lab: LabRun) -> None:
    """Several runs straddle a decay tick, so Slurm's discretisation is really exercised."""
    capture = slurm_lab.captures["decay"]
    ticks = parse_slurmctld_log(capture.text("slurmctld.log")).ticks
    assert capture.tick in ticks, "the log's ticks and the state file disagree"
    spanning = [
        r["JobID"]
        for r in sacct_rows(capture.text("sacct.txt"))
        if r["ElapsedRaw"] != "0" and any(utc(r["Start"]) < t < utc(r["End"]) for t in ticks)
    ]
    assert len(spanning) >= 3, spanning


# ---------------------------------------------------------------------------- run 1 and 3


@pytest.mark.parametrize(("cluster", "columns"), [("nodecay", 9), ("classic", 8)])
def test_sshare_equals_slurms_column_for_column(
    slurm_lab: LabRun, fl_site: SiteOf, cluster: str, columns: int
) -> None:
    site = fl_site(cluster)
    capture = slurm_lab.captures[cluster]
    shown = site.fl("sshare", "--as-of", capture.as_of_text).stdout
    _save(slurm_lab, cluster, "fairledger_sshare.txt", shown)
    code, table = _drift(
        site, "--sshare", str(capture.dir / "sshare.txt"), "--as-of", capture.as_of_text,
        "--usage-tolerance", "0",
    )  # fmt: skip
    _save(slurm_lab, cluster, "drift.txt", table)
    assert shown.splitlines() == sshare_columns(capture.text("sshare.txt"), columns), table
    assert code == 0, table


# ---------------------------------------------------------------------------- run 2


def _tick_model(site: Site, run: LabRun) -> tuple[pl.DataFrame, list[datetime]]:
    capture = run.captures["decay"]
    log = parse_slurmctld_log(capture.text("slurmctld.log"))
    policy = load_policy(site.dir / "policy.toml")
    con = open_store(site.dir / "fairledger.duckdb")
    try:
        runs = read_runs(con, columns=(*USAGE_COLUMNS, "job_id_raw"), clusters=["decay"])
    finally:
        con.close()
    runs = order_ends_after_ticks(runs, log.tick_first_ends)
    return tick_factors(runs, policy, ticks=log.ticks, as_of=capture.as_of), log.ticks


def test_decay_with_slurms_ticks_fairshare_equal_and_usage_within_a_tenth_of_a_percent(
    slurm_lab: LabRun, fl_site: SiteOf
) -> None:
    site = fl_site("decay")
    capture = slurm_lab.captures["decay"]
    factors, _ = _tick_model(site, slurm_lab)
    slurm_usage = assoc_mgr_usage(capture.text("assoc_mgr.txt"))
    far = {
        (a, u): (ours, slurm_usage[(a, u)])
        for a, u, ours in factors.select("account", "user", "raw_usage").iter_rows()
        if not usage_close(ours, slurm_usage[(a, u)], 1e-3)
    }
    assert not far, f"RawUsage beyond 0.1 %: {far}"
    ours_lines = build_sshare(factors, algorithm="fair_tree")
    theirs = sshare_columns(capture.text("sshare.txt"), 9)
    fairshare = [
        (o.split("|")[:2], o.split("|")[7], t.split("|")[7])
        for o, t in zip(ours_lines, theirs, strict=True)
    ]
    assert all(o == t for _, o, t in fairshare), fairshare
    # and through the command line: the tick-aware drift report is within its tolerance
    code, table = _drift(
        site, "--sshare", str(capture.dir / "sshare.txt"), "--as-of", capture.as_of_text,
        "--slurmctld-log", str(capture.dir / "slurmctld.log"), "--usage-tolerance", "1e-3",
    )  # fmt: skip
    _save(slurm_lab, "decay", "drift_ticks.txt", table)
    assert code == 0, table
    assert ours_lines == theirs, "every column equal with the ticks"


def test_decay_continuous_model_within_the_derived_bound(
    slurm_lab: LabRun, fl_site: SiteOf
) -> None:
    site = fl_site("decay")
    capture = slurm_lab.captures["decay"]
    factors_csv = site.fl("factors", "--as-of", capture.as_of_text, "--format", "csv").stdout
    ours = {
        (r["account"], r["user"] or ""): float(r["raw_usage"])
        for r in csv.DictReader(io.StringIO(factors_csv))
    }
    slurm_usage = assoc_mgr_usage(capture.text("assoc_mgr.txt"))
    ticks = parse_slurmctld_log(capture.text("slurmctld.log")).ticks
    interval = max((b - a).total_seconds() for a, b in itertools.pairwise(ticks))
    since = (capture.as_of - capture.tick).total_seconds()
    policy = load_policy(site.dir / "policy.toml")
    low, high = continuous_bound(policy.decay, tick_interval_s=interval, since_tick_s=since)
    ratios = {}
    for key, slurm in slurm_usage.items():
        if slurm == 0.0:
            assert ours[key] == 0.0, key
            continue
        # Slurm's figure is printed with two decimals: widen by its rounding
        r_low, r_high = ours[key] / (slurm + 0.005), ours[key] / max(slurm - 0.005, 1e-9)
        ratios[key] = ours[key] / slurm
        assert low - 1e-9 <= r_high and r_low <= high + 1e-9, (key, ours[key], slurm, low, high)
    _code, table = _drift(
        site, "--sshare", str(capture.dir / "sshare.txt"), "--as-of", capture.as_of_text
    )
    summary = (
        f"continuous/Slurm RawUsage ratio: min {min(ratios.values()):.4f}, "
        f"max {max(ratios.values()):.4f}; bound [{low:.4f}, {high:.4f}] "
        f"(tick interval {interval:.0f} s, sshare {since:.0f} s after the tick)\n"
    )
    _save(slurm_lab, "decay", "drift_continuous.txt", summary + table)


# ---------------------------------------------------------------------------- drift, push


def test_drift_against_the_live_sshare(slurm_lab: LabRun, fl_site: SiteOf) -> None:
    site = fl_site("nodecay")
    code, table = _drift(site, "--live", "--cluster", "nodecay", "--usage-tolerance", "0")
    assert code == 0, table
    assert "within tolerance" in table


def _sprio(site: Site, job: str) -> dict[str, int]:
    import subprocess

    out = subprocess.run(
        ["sprio", "-l", "-j", job], capture_output=True, text=True, env=site.env(), check=True
    ).stdout.splitlines()
    header = out[0].split()
    values = out[1].split()
    return {
        name: int(value)
        for name, value in zip(header, values, strict=False)
        if value.lstrip("-").isdigit()
    }


def test_push_slurm_changes_a_pending_jobs_site_factor_and_priority(
    slurm_lab: LabRun, fl_site: SiteOf
) -> None:
    lab, cluster = slurm_lab.lab, "nodecay"
    site = fl_site(cluster)
    node = socket.gethostname().split(".")[0]
    lab.run(cluster, "scontrol", "update", f"nodename={node}", "state=drain", "reason=push-test")
    job = ""
    try:
        job = lab.run(
            cluster, "sbatch", "--parsable", "--chdir=/tmp", "--output=/dev/null", "-pcpu",
            "-Achem", "-c1", "--mem=500M", "--wrap=sleep 5", user="erin",
        ).strip()  # fmt: skip
        deadline = time.monotonic() + 30
        before: dict[str, int] = {}
        while time.monotonic() < deadline and "PRIORITY" not in before:
            time.sleep(0.5)
            try:
                before = _sprio(site, job)
            except Exception:
                before = {}
        assert before.get("SITE") == 0, before
        pushed = site.fl("push-slurm").stdout
        assert "updated 1" in pushed, pushed
        factors = pl.read_csv(io.StringIO(site.fl("factors", "--format", "csv").stdout))
        erin = factors.filter((pl.col("account") == "chem") & (pl.col("user") == "erin"))
        expected = site_factor(erin.get_column("fairshare")[0], scale=1000.0, offset=0)
        after = _sprio(site, job)
        _save(slurm_lab, cluster, "push.txt", f"{pushed}\nbefore {before}\nafter {after}\n")
        assert after["SITE"] == expected, (before, after)
        assert after["PRIORITY"] == before["PRIORITY"] + expected, (before, after)
    finally:
        if job:
            lab.run(cluster, "scancel", job, check=False)
        lab.run(cluster, "scontrol", "update", f"nodename={node}", "state=resume", check=False)
