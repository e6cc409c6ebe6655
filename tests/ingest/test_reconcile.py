"""Reconciliation against the fake sacct: gaps are reported and filled, changed runs reported,
runs counted per day, and the report is stored and shown by the status."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from api.routes.status import _with_reconciliations
from api.service import Service
from api.settings import Reconcile, SacctSource, Settings
from ingest.jobs import cluster_lock, run_sacct_source
from ingest.reconcile import reconcile_sacct_source, reconcile_window
from ingest.scheduler import add_reconcile_jobs
from ingest.sources.sacct import SACCT_FORMAT, subprocess_runner
from models.store.handle import StoreHandle
from models.store.reconciliations import DayCount, read_last_reconciliations

FAKE_SACCT = Path(__file__).resolve().parents[1] / "fakes" / "fake_sacct.py"
HEADER = "|".join(SACCT_FORMAT)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def line(job: int, *, day: int, end: str | None = "10:10:01", state: str = "COMPLETED") -> str:
    submit = f"2026-11-{day:02d}T10:00:00"
    end_at = f"2026-11-{day:02d}T{end}" if end else "Unknown"
    return (
        f"{job}|{job}|lab|cpu|normal|chem|erin|{submit}|{submit}|{submit}|{end_at}|00:10:00|600|"
        f"01:00:00|0:0|{state}|1|2|1024M|billing=2,cpu=2,mem=1024M,node=1|n1||job"
    )


def output(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SacctSource:
    monkeypatch.setenv("FAKE_SACCT_LOG", str(tmp_path / "calls.jsonl"))
    return SacctSource(
        name="lab",
        cluster="lab",
        command=str(FAKE_SACCT),
        min_interval_s=0,
        reconcile=Reconcile(enabled=True, window_days=3),
    )


def answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    out = tmp_path / f"answer-{abs(hash(text))}.txt"
    out.write_text(text, encoding="utf-8")
    monkeypatch.setenv("FAKE_SACCT_OUTPUT", str(out))


@pytest.mark.slow
def test_gaps_are_reported_and_filled_changes_reported_days_counted(
    tmp_path: Path, store: StoreHandle, source: SacctSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the regular pull stored jobs 1 (day 20), 2 (day 21) and 3 (running since day 21)
    running = line(3, day=21, end=None, state="RUNNING")
    answer(tmp_path, monkeypatch, output(line(1, day=20), line(2, day=21), running))
    assert run_sacct_source(source, store, now=lambda: NOW).status == "loaded"
    # the source now also has job 4 (day 22, never stored: a gap) and job 2 ended later
    later = line(2, day=21, end="11:00:00")
    answer(tmp_path, monkeypatch, output(line(1, day=20), later, running, line(4, day=22)))

    report = reconcile_sacct_source(source, store, now=lambda: NOW)

    assert report.status == "ok", report.error
    assert (report.window_start, report.window_end) == (datetime(2026, 11, 19, tzinfo=UTC), NOW)
    call = json.loads((tmp_path / "calls.jsonl").read_text().splitlines()[-1])
    assert "--starttime=2026-11-19T00:00:00" in call["argv"]
    assert report.gap_keys == ["lab/4/1795341600"]  # 2026-11-22T10:00:00Z
    assert report.changed_keys == ["lab/2/1795255200"]
    assert (report.source_runs, report.gaps, report.changed) == (4, 1, 1)
    assert report.days == [
        DayCount(date(2026, 11, 19), 0, 0),
        DayCount(date(2026, 11, 20), 1, 1),
        DayCount(date(2026, 11, 21), 2, 2),  # job 2 by its end, running job 3 by its submit
        DayCount(date(2026, 11, 22), 1, 0),
    ]
    with store.reading() as cur:
        keys = {k for (k,) in cur.execute("SELECT run_key FROM runs").fetchall()}
        versions = cur.execute(
            "SELECT count(*) FROM run_versions WHERE run_key = 'lab/2/1795255200'"
        ).fetchall()[0][0]
        stored = read_last_reconciliations(cur)
    assert "lab/4/1795341600" in keys and versions == 2  # filled, and revised
    assert stored["lab"].gap_keys == report.gap_keys and stored["lab"].days == report.days

    status = _with_reconciliations(Service(Settings(sources=[source]), store))
    (shown,) = [s for s in status.sources if s.source == "lab"]
    assert shown.reconciliation is not None and shown.reconciliation.gaps == 1
    assert shown.reconciliation.days[-1].day == date(2026, 11, 22)

    again = reconcile_sacct_source(source, store, now=lambda: NOW)  # nothing left to find
    assert (again.gaps, again.changed) == (0, 0)
    assert [d.store_runs for d in again.days] == [d.source_runs for d in again.days]


def test_a_failed_pull_is_reported_and_never_overlaps_the_regular_pull(
    tmp_path: Path, store: StoreHandle, source: SacctSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SACCT_EXIT", "1")
    failed = reconcile_sacct_source(source, store, now=lambda: NOW)
    assert failed.status == "failed" and "exited with status 1" in str(failed.error)
    monkeypatch.delenv("FAKE_SACCT_EXIT")

    lock = cluster_lock("lab")
    with lock:  # the regular pull of this cluster is running
        skipped = reconcile_sacct_source(source, store, now=lambda: NOW, lock_wait_s=0.1)
    assert skipped.status == "skipped" and skipped.reconciliation_id is None

    answer(tmp_path, monkeypatch, output(line(1, day=21)))
    overlap = threading.Event()

    def runner(argv: object, **kwargs: object) -> str:
        if lock.acquire(blocking=False):  # the reconciliation must hold the cluster's lock
            lock.release()
            overlap.set()
        return subprocess_runner(argv, **kwargs)  # type: ignore[arg-type]

    report = reconcile_sacct_source(source, store, now=lambda: NOW, runner=runner)
    assert report.status == "ok" and not overlap.is_set()
    with store.reading() as cur:
        assert read_last_reconciliations(cur)["lab"].reconciliation_id == report.reconciliation_id


def test_the_window_starts_at_midnight() -> None:
    start, end = reconcile_window(datetime(2026, 11, 22, 23, 59, tzinfo=UTC), 7)
    assert start == datetime(2026, 11, 15, tzinfo=UTC) and end.day == 22


def test_only_enabled_sources_get_a_reconcile_job(tmp_path: Path, store: StoreHandle) -> None:
    daily = SacctSource(name="a", cluster="a", reconcile=Reconcile(enabled=True))
    never = SacctSource(name="b", cluster="b")
    scheduler = BackgroundScheduler(timezone="UTC")
    add_reconcile_jobs(scheduler, [daily, never], store, on_loaded=lambda: None)
    (job,) = scheduler.get_jobs()
    assert job.id == "reconcile:a" and job.trigger.interval.total_seconds() == 86400
    assert job.max_instances == 1 and job.coalesce
