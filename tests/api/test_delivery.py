"""Factor delivery: the atomic export file and the SiteFactor push against a fake Slurm."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from api.settings import Delivery
from api.usecases.delivery import (
    EXPORT_FORMAT,
    SiteFactorLedger,
    export_factors,
    push_site_factors,
    site_factor,
)
from models import frames
from models.errors import FairledgerError, SourceUnavailable
from models.fairshare import frames as fairshare_frames

ROOT = Path(__file__).resolve().parents[2]
FAKE_CTL = ROOT / "tests" / "fakes" / "fake_slurm_ctl.py"


def factor_frame(rows: list[tuple[str, str, str, float | None]]) -> pl.DataFrame:
    """Return a FACTORS frame with (cluster, account, user, fairshare) rows."""
    frame = pl.DataFrame(
        rows,
        schema={
            "cluster": pl.String,
            "account": pl.String,
            "user": pl.String,
            "fairshare": pl.Float64,
        },
        orient="row",
    )
    return frames.conform(frame, fairshare_frames.FACTORS)


# --- the export file ---


def test_the_export_holds_every_association_and_the_meta(tmp_path: Path) -> None:
    path = tmp_path / "factors.json"
    factors = factor_frame(
        [
            ("lab", "root", "", None),
            ("lab", "phys", "alice", 0.75),
            ("lab", "chem", "bob", float("nan")),
        ]
    )
    export_factors(factors, path, meta={"snapshot_id": 7, "as_of": "2026-11-20T12:00:00+00:00"})
    document = json.loads(path.read_text())
    assert document == {
        "format": EXPORT_FORMAT,
        "meta": {"snapshot_id": 7, "as_of": "2026-11-20T12:00:00+00:00"},
        "count": 3,
        "factors": [
            {"cluster": "lab", "account": "root", "user": "", "fairshare": None},
            {"cluster": "lab", "account": "phys", "user": "alice", "fairshare": 0.75},
            {"cluster": "lab", "account": "chem", "user": "bob", "fairshare": None},
        ],
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the slurm user
    assert [p.name for p in tmp_path.iterdir()] == ["factors.json"]  # no temporary left


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "factors.json"
    big = factor_frame([("lab", f"acct{i % 50}", f"user{i}", i / 20_000) for i in range(20_000)])
    small = big.head(10)
    export_factors(small, path, meta={"snapshot_id": 0})
    done = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def read() -> None:
        while not done.is_set():
            try:
                document = json.loads(path.read_bytes())
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if document["count"] != len(document["factors"]):
                errors.append("count and factors disagree")
            seen.append(document["count"])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 31):
            export_factors(big if i % 2 else small, path, meta={"snapshot_id": i})
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert set(seen) <= {10, 20_000} and len(seen) > 10
    assert json.loads(path.read_text())["meta"] == {"snapshot_id": 30}


def test_an_export_that_cannot_be_written_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "factors.json"
    export_factors(factor_frame([("lab", "phys", "alice", 0.5)]), path, meta={"snapshot_id": 1})
    with pytest.raises(FairledgerError, match="cannot write the factor file"):
        export_factors(factor_frame([]), tmp_path / "missing" / "f.json", meta={})
    assert json.loads(path.read_text())["meta"] == {"snapshot_id": 1}


# --- the SiteFactor mapping ---


def test_site_factor_is_scaled_rounded_and_offset() -> None:
    assert site_factor(0.5, scale=1000, offset=0) == 500
    assert site_factor(0.5, scale=1000, offset=-100) == 400
    assert site_factor(0.0005, scale=1000, offset=0) == 1  # halves round up
    assert site_factor(0.0004, scale=1000, offset=0) == 0
    assert site_factor(1.0, scale=1e12, offset=0) == 2_147_483_645  # Slurm's limit


# --- the push adapter against the fake squeue/scontrol ---


class FakeSlurm:
    """squeue and scontrol links to the fake, its jobs file and its call log."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.jobs_path = tmp_path / "jobs.json"
        self.log = tmp_path / "slurm-calls.jsonl"
        for name in ("squeue", "scontrol"):
            (tmp_path / name).symlink_to(FAKE_CTL)
        self.squeue = str(tmp_path / "squeue")
        self.scontrol = str(tmp_path / "scontrol")
        monkeypatch.setenv("FAKE_SLURM_JOBS", str(self.jobs_path))
        monkeypatch.setenv("FAKE_SLURM_LOG", str(self.log))

    def set_jobs(self, *jobs: tuple[str, str, str, str]) -> None:
        records = [
            {"job_id": i, "user": u, "account": a, "state": s, "site_factor": 0}
            for i, u, a, s in jobs
        ]
        self.jobs_path.write_text(json.dumps(records))

    def site_factors(self) -> dict[str, int]:
        return {j["job_id"]: j["site_factor"] for j in json.loads(self.jobs_path.read_text())}

    def updates(self) -> list[list[str]]:
        """Return the argv of every scontrol call since the last look, and forget them."""
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        self.log.unlink()
        return [c["argv"] for c in calls if c["prog"] == "scontrol"]

    def delivery(self, **overrides: Any) -> Delivery:
        settings: dict[str, Any] = {"squeue": self.squeue, "scontrol": self.scontrol}
        return Delivery(**{**settings, **overrides})


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    fake = FakeSlurm(tmp_path, monkeypatch)
    fake.set_jobs(
        ("101", "alice", "phys", "PENDING"),
        ("102", "bob", "chem", "PENDING"),
        ("103", "alice", "phys", "PENDING"),
        ("104", "mallory", "nowhere", "PENDING"),
        ("105", "bob", "chem", "RUNNING"),
        ("106_[1-3,7]", "bob", "phys", "PENDING"),
    )
    return fake


FACTORS = factor_frame(
    [
        ("lab", "root", "", None),
        ("lab", "phys", "", None),
        ("lab", "phys", "alice", 0.5),
        ("lab", "phys", "bob", 0.125),
        ("lab", "chem", "bob", 0.25),
    ]
)


def test_pending_jobs_get_their_association_s_site_factor_in_batches(slurm: FakeSlurm) -> None:
    ledger = SiteFactorLedger()
    report = push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=ledger)
    assert (report.cluster, report.jobs_seen, report.updated, report.failed) == ("lab", 5, 4, 0)
    assert report.unknown_association == ["104 (nowhere/mallory)"]
    assert report.batches == 3  # one per distinct value
    assert sorted(slurm.updates()) == [
        ["update", "JobId=101,103", "SiteFactor=500"],
        ["update", "JobId=102", "SiteFactor=250"],
        ["update", "JobId=106_[1-3,7]", "SiteFactor=125"],
    ]
    assert slurm.site_factors() == {
        "101": 500, "102": 250, "103": 500, "104": 0, "105": 0, "106_[1-3,7]": 125,
    }  # fmt: skip


def test_only_changed_values_are_pushed(slurm: FakeSlurm) -> None:
    ledger = SiteFactorLedger()
    push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=ledger)
    slurm.updates()
    again = push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=ledger)
    assert (again.updated, again.unchanged, again.batches) == (0, 4, 0)
    assert slurm.updates() == []
    moved = FACTORS.with_columns(
        pl.when(pl.col("user") == "alice")
        .then(0.6)
        .otherwise(pl.col("fairshare"))
        .alias("fairshare")
    )
    third = push_site_factors(moved, delivery=slurm.delivery(), ledger=ledger)
    assert (third.updated, third.unchanged) == (2, 2)
    assert slurm.updates() == [["update", "JobId=101,103", "SiteFactor=600"]]


def test_batches_hold_at_most_batch_size_jobs(slurm: FakeSlurm) -> None:
    slurm.set_jobs(*((str(200 + i), "alice", "phys", "PENDING") for i in range(5)))
    report = push_site_factors(
        FACTORS, delivery=slurm.delivery(batch_size=2), ledger=SiteFactorLedger()
    )
    assert (report.updated, report.batches, report.scontrol_calls) == (5, 3, 3)
    assert slurm.updates() == [
        ["update", "JobId=200,201", "SiteFactor=500"],
        ["update", "JobId=202,203", "SiteFactor=500"],
        ["update", "JobId=204", "SiteFactor=500"],
    ]


def test_a_job_that_refuses_the_update_is_reported_and_retried_next_time(
    slurm: FakeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SLURM_FAIL_JOBS", "103")
    ledger = SiteFactorLedger()
    report = push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=ledger)
    assert (report.updated, report.failed) == (3, 1)
    assert len(report.errors) == 1 and "job 103" in report.errors[0]
    assert "Job has already finished for job 103" in report.errors[0]
    assert ["update", "JobId=101", "SiteFactor=500"] in slurm.updates()
    monkeypatch.delenv("FAKE_SLURM_FAIL_JOBS")
    retry = push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=ledger)
    assert (retry.updated, retry.unchanged) == (1, 3)
    assert slurm.updates() == [["update", "JobId=103", "SiteFactor=500"]]


def test_an_unreachable_scontrol_stops_the_push(slurm: FakeSlurm) -> None:
    delivery = slurm.delivery(scontrol="/nonexistent/scontrol", batch_size=1)
    report = push_site_factors(FACTORS, delivery=delivery, ledger=SiteFactorLedger())
    assert (report.updated, report.failed, report.scontrol_calls) == (0, 4, 1)
    assert "cannot run /nonexistent/scontrol" in report.errors[0]


def test_a_failing_squeue_raises(slurm: FakeSlurm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SLURM_EXIT", "1")
    with pytest.raises(SourceUnavailable, match="Unable to contact slurm controller"):
        push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=SiteFactorLedger())


def test_a_dry_run_calls_no_scontrol(slurm: FakeSlurm) -> None:
    ledger = SiteFactorLedger()
    report = push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=ledger, dry_run=True)
    assert report.dry_run and report.updated == 4
    assert report.planned == {"101": 500, "103": 500, "102": 250, "106_[1-3,7]": 125}
    assert slurm.updates() == []
    assert "would update 4" in report.describe()
    # the ledger did not pretend: the real push still updates everything
    assert push_site_factors(FACTORS, delivery=slurm.delivery(), ledger=ledger).updated == 4


def test_the_ledger_survives_a_restart_in_its_state_file(slurm: FakeSlurm, tmp_path: Path) -> None:
    delivery = slurm.delivery(state_path=tmp_path / "pushed.json")
    first = push_site_factors(
        FACTORS, delivery=delivery, ledger=SiteFactorLedger(delivery.state_path)
    )
    assert first.updated == 4
    slurm.updates()
    # a new process: a fresh ledger read from the state file
    later = push_site_factors(
        FACTORS, delivery=delivery, ledger=SiteFactorLedger(delivery.state_path)
    )
    assert (later.updated, later.unchanged) == (0, 4)
    assert slurm.updates() == []
    # a job that left the queue is forgotten
    slurm.set_jobs(("101", "alice", "phys", "PENDING"))
    push_site_factors(FACTORS, delivery=delivery, ledger=SiteFactorLedger(delivery.state_path))
    saved = json.loads((tmp_path / "pushed.json").read_text())
    assert saved == {"pushed": {"lab": {"101": 500}}}


def test_with_several_clusters_the_delivery_names_its_own(slurm: FakeSlurm) -> None:
    two = pl.concat([FACTORS, FACTORS.with_columns(pl.lit("gpu").alias("cluster"))])
    with pytest.raises(FairledgerError, match="set \\[delivery\\] cluster"):
        push_site_factors(two, delivery=slurm.delivery(), ledger=SiteFactorLedger())
    gpu = two.with_columns(
        pl.when(pl.col("cluster") == "gpu")
        .then(pl.col("fairshare") / 2)
        .otherwise(pl.col("fairshare"))
    )
    report = push_site_factors(
        gpu, delivery=slurm.delivery(cluster="gpu"), ledger=SiteFactorLedger()
    )
    assert report.cluster == "gpu" and slurm.site_factors()["101"] == 250


# --- the command line ---


def test_export_factors_and_push_slurm_commands(tmp_path: Path, slurm: FakeSlurm) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    config = tmp_path / "site.toml"
    config.write_text(
        f'db = "{tmp_path / "demo.duckdb"}"\n\n[delivery]\ncluster = "ai"\n'
        f'squeue = "{slurm.squeue}"\nscontrol = "{slurm.scontrol}"\n',
        encoding="utf-8",
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "api", "--config", str(config), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env)

    assert cli("demo").returncode == 0
    as_of = "2026-11-20T12:00:00+00:00"
    factors = json.loads(cli("factors", "--as-of", as_of, "--format", "json").stdout)["data"]
    u019 = next(
        f for f in factors if (f["cluster"], f["account"], f["user"]) == ("ai", "ml-hpc", "u019")
    )

    out = tmp_path / "spool" / "factors.json"
    out.parent.mkdir()
    done = cli("export-factors", str(out), "--as-of", as_of)
    assert done.returncode == 0, done.stderr
    exported = json.loads(out.read_text())
    assert exported["meta"]["as_of"] == as_of and exported["count"] == len(factors)

    slurm.set_jobs(("7001", "u019", "ml-hpc", "PENDING"), ("7002", "nobody", "ml-hpc", "PENDING"))
    dry = cli("push-slurm", "--dry-run", "--as-of", as_of)
    assert dry.returncode == 0, dry.stderr
    expected = site_factor(u019["fairshare"], scale=1000, offset=0)
    assert f"would set JobId=7001 SiteFactor={expected}" in dry.stdout
    assert "1 with an unknown association" in dry.stdout
    assert slurm.site_factors()["7001"] == 0
    real = cli("push-slurm", "--as-of", as_of)
    assert real.returncode == 0, real.stderr
    assert slurm.site_factors()["7001"] == expected
