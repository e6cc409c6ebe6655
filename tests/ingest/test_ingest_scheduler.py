"""Scheduled ingest jobs on a real APScheduler, against the fake sacct."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler

from api.settings import SacctSource
from ingest.scheduler import add_ingest_jobs, job_id
from ingest.sources.sacct import SACCT_FORMAT, subprocess_runner
from models.store import read_source_states
from models.store.handle import StoreHandle

FAKE_SACCT = Path(__file__).resolve().parents[1] / "fakes" / "fake_sacct.py"
HEADER = "|".join(SACCT_FORMAT)
LINE = (
    "{id}|{id}|lab|cpu|normal|chem|erin|2026-11-20T10:00:00|2026-11-20T10:00:00|"
    "2026-11-20T10:00:01|2026-11-20T10:10:01|00:10:00|600|01:00:00|0:0|COMPLETED|1|2|1024M|"
    "billing=2,cpu=2,mem=1024M,node=1|n1||job"
)


def sacct_output(*ids: int) -> str:
    return "\n".join([HEADER, *(LINE.format(id=i) for i in ids)]) + "\n"


class Recorder:
    """The real runner, recording overlap and the threads it ran on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()

    def __call__(self, argv: Any, *, timeout_s: float, env: Any = None) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            return subprocess_runner(argv, timeout_s=timeout_s, env=env)
        finally:
            with self._lock:
                self.running -= 1


def calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def wait_for(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.slow
def test_the_job_pulls_lands_runs_and_notifies_once_per_change(
    tmp_path: Path, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "01.txt").write_text(sacct_output(1, 2), encoding="utf-8")
    (answers / "02.txt").write_text(sacct_output(1, 2, 3), encoding="utf-8")  # then repeated
    monkeypatch.setenv("FAKE_SACCT_OUTPUT_DIR", str(answers))
    monkeypatch.setenv("FAKE_SACCT_LOG", str(tmp_path / "calls.jsonl"))
    source = SacctSource(
        name="lab", cluster="lab", command=str(FAKE_SACCT), interval_s=1, min_interval_s=0
    )
    loaded: list[int] = []

    def on_loaded() -> None:
        with store.reading() as cur:
            loaded.append(int(cur.execute("SELECT count(*) FROM runs").fetchall()[0][0]))

    scheduler = BackgroundScheduler(timezone="UTC")
    add_ingest_jobs(scheduler, [source], store, on_loaded=on_loaded, first_run_after_s=0.1)
    job = scheduler.get_job(job_id(source))
    assert job is not None and job.max_instances == 1 and job.coalesce
    scheduler.start()
    try:
        wait_for(lambda: calls(tmp_path / "calls.jsonl") >= 4)
    finally:
        scheduler.shutdown(wait=True)
    # two changes (2 runs, then a third), then unchanged pulls that notify nobody
    assert loaded == [2, 3]
    with store.reading() as cur:
        (state,) = read_source_states(cur).iter_rows(named=True)
    assert state["source"] == "lab" and not state["degraded"]


@pytest.mark.slow
def test_a_slow_pull_never_overlaps_itself(
    tmp_path: Path, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.txt"
    out.write_text(sacct_output(1), encoding="utf-8")
    monkeypatch.setenv("FAKE_SACCT_OUTPUT", str(out))
    monkeypatch.setenv("FAKE_SACCT_SLEEP", "1.5")  # longer than the 1 s interval
    monkeypatch.setenv("FAKE_SACCT_LOG", str(tmp_path / "calls.jsonl"))
    source = SacctSource(
        name="slow", cluster="slow", command=str(FAKE_SACCT), interval_s=1, min_interval_s=0
    )
    recorder = Recorder()
    scheduler = BackgroundScheduler(timezone="UTC")
    add_ingest_jobs(
        scheduler, [source], store, on_loaded=lambda: None, runner=recorder, first_run_after_s=0
    )
    scheduler.start()
    try:
        wait_for(lambda: calls(tmp_path / "calls.jsonl") >= 3)
    finally:
        scheduler.shutdown(wait=True)
    assert recorder.most == 1  # three pulls, one after the other


def test_under_asyncio_the_pull_runs_off_the_event_loop(
    tmp_path: Path, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.txt"
    out.write_text(sacct_output(1, 2), encoding="utf-8")
    monkeypatch.setenv("FAKE_SACCT_OUTPUT", str(out))
    monkeypatch.setenv("FAKE_SACCT_SLEEP", "0.5")
    source = SacctSource(name="lab", cluster="aio", command=str(FAKE_SACCT), interval_s=60)
    recorder = Recorder()

    async def serve() -> tuple[str, int]:
        loaded = asyncio.Event()
        loop = asyncio.get_running_loop()
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.start()
        add_ingest_jobs(
            scheduler,
            [source],
            store,
            on_loaded=lambda: loop.call_soon_threadsafe(loaded.set),
            runner=recorder,
            first_run_after_s=0,
        )
        ticks = 0
        while not loaded.is_set():  # the loop keeps turning while sacct runs
            await asyncio.sleep(0.01)
            ticks += 1
            assert ticks < 2000, "no pull landed within 20 s"
        scheduler.shutdown(wait=False)
        return threading.current_thread().name, ticks

    loop_thread, ticks = asyncio.run(serve())
    assert recorder.threads and loop_thread not in recorder.threads
    assert ticks > 10
    with store.reading() as cur:
        assert cur.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 2
