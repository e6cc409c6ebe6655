"""Scheduled sacct pulls against the fake sacct executable and a DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.settings import SacctSource
from ingest.jobs import IngestOutcome, run_sacct_source
from ingest.sources.sacct import (
    SACCT_FORMAT,
    SACCT_STATES,
    fetch_sacct,
    resolve_sacct_time,
    sacct_command,
    subprocess_runner,
)
from models.errors import ParseError, SourceUnavailable
from models.store import read_source_states
from models.store.handle import StoreHandle
from models.store.sources import read_source_state, read_watermark

ROOT = Path(__file__).resolve().parents[2]
FAKE_SACCT = ROOT / "tests" / "fakes" / "fake_sacct.py"
T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)

_JOB = {
    "JobID": "1", "JobIDRaw": "1", "Cluster": "lab", "Partition": "cpu", "QOS": "normal",
    "Account": "chem", "User": "erin", "Submit": "2026-11-20T10:00:00",
    "Eligible": "2026-11-20T10:00:00", "Start": "2026-11-20T10:00:01",
    "End": "2026-11-20T10:10:01", "Elapsed": "00:10:00", "ElapsedRaw": "600",
    "Timelimit": "01:00:00", "ExitCode": "0:0", "State": "COMPLETED", "NNodes": "1",
    "NCPUS": "2", "ReqMem": "1024M", "AllocTRES": "billing=2,cpu=2,mem=1024M,node=1",
    "NodeList": "n1", "Reservation": "", "JobName": "job",
}  # fmt: skip


def sacct_text(*jobs: dict[str, str]) -> str:
    """Return sacct --parsable2 output (with header) for jobs given as field overrides."""
    lines = ["|".join(SACCT_FORMAT)]
    for job in jobs:
        record = {**_JOB, **job}
        lines.append("|".join(record[name] for name in SACCT_FORMAT))
    return "\n".join(lines) + "\n"


def jobs(*ids: str, **fields: str) -> str:
    return sacct_text(*({"JobID": i, "JobIDRaw": i, **fields} for i in ids))


class Clock:
    """A settable clock for the ``now`` argument."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Configure the fake sacct; return a helper to set its answer and read its calls."""

    class Fake:
        log = tmp_path / "sacct-calls.jsonl"

        def answer(self, text: str) -> None:
            out = tmp_path / "sacct-output.txt"
            out.write_text(text, encoding="utf-8")
            monkeypatch.setenv("FAKE_SACCT_OUTPUT", str(out))

        def answers(self, *texts: str | None) -> None:
            """Successive answers; None is a failed call."""
            directory = tmp_path / "answers"
            directory.mkdir()
            for i, text in enumerate(texts):
                name = f"{i:02d}.fail" if text is None else f"{i:02d}.txt"
                content = "sacct: error: Problem talking to the database" if text is None else text
                (directory / name).write_text(content, encoding="utf-8")
            monkeypatch.setenv("FAKE_SACCT_OUTPUT_DIR", str(directory))

        def calls(self) -> list[dict[str, Any]]:
            if not self.log.exists():
                return []
            return [json.loads(line) for line in self.log.read_text().splitlines()]

    monkeypatch.setenv("FAKE_SACCT_LOG", str(Fake.log))
    return Fake()


def source(**overrides: Any) -> SacctSource:
    settings: dict[str, Any] = {
        "name": "lab",
        "cluster": "lab",
        "command": str(FAKE_SACCT),
        "backoff_s": 0,
        "retries": 0,
    }
    return SacctSource(**{**settings, **overrides})


def option(call: dict[str, Any], name: str) -> str:
    values = [a.split("=", 1)[1] for a in call["argv"] if a.startswith(f"--{name}=")]
    assert len(values) == 1, call
    return values[0]


def run_count(store: StoreHandle) -> int:
    with store.reading() as cur:
        return int(cur.execute("SELECT count(*) FROM runs").fetchall()[0][0])


def pull(src: SacctSource, store: StoreHandle, clock: Clock, **kwargs: Any) -> IngestOutcome:
    return run_sacct_source(src, store, now=clock, **kwargs)


# --- the command ---


def test_the_argv_asks_for_every_record_of_the_window_in_utc() -> None:
    start = datetime(2026, 11, 20, 13, 30, tzinfo=UTC) + timedelta(hours=0)
    end = datetime(2026, 11, 21, 2, 0, 5, tzinfo=UTC)
    argv = sacct_command(source(command="/usr/bin/sacct"), start=start, end=end)
    assert argv == [
        "/usr/bin/sacct",
        "--allusers",
        "--duplicates",
        "--parsable2",
        "--noconvert",
        "--format=" + ",".join(SACCT_FORMAT),
        f"--state={SACCT_STATES}",
        "--starttime=2026-11-20T13:30:00",
        "--endtime=2026-11-21T02:00:05",
        "--clusters=lab",
    ]
    # a start given in another zone is written in UTC; no cluster, no --clusters
    paris = start.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+01:00").tzinfo)
    local = sacct_command(source(cluster=None), start=paris, end=end)
    assert "--starttime=2026-11-20T13:30:00" in local
    assert not any(a.startswith("--clusters") for a in local)


def test_sacct_runs_with_tz_utc_whatever_the_environment(
    fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    monkeypatch.setenv("SLURM_TIME_FORMAT", "relative")
    fake.answer(jobs("1"))
    argv = sacct_command(source(), start=T0 - timedelta(hours=1), end=T0)
    text = fetch_sacct(argv, timeout_s=30)
    assert text == jobs("1")
    (call,) = fake.calls()
    assert call["tz"] == "UTC"
    assert call["argv"] == argv[1:]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", T0),
        ("now-7days", T0 - timedelta(days=7)),
        ("now-7d", T0 - timedelta(days=7)),
        ("now-2hours", T0 - timedelta(hours=2)),
        ("now-90", T0 - timedelta(seconds=90)),
        ("now-15minutes", T0 - timedelta(minutes=15)),
        ("now+1week", T0 + timedelta(weeks=1)),
        ("today", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T06:30:00", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_initial_start_in_sacct_syntax(text: str, expected: datetime) -> None:
    assert resolve_sacct_time(text, now=T0) == expected


@pytest.mark.parametrize("text", ["now-7fortnights", "yesterday-ish", "now-"])
def test_an_unreadable_initial_start_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        resolve_sacct_time(text, now=T0)


def test_the_runner_reports_failures_with_the_command_and_stderr(
    fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SACCT_EXIT", "1")
    monkeypatch.setenv("FAKE_SACCT_STDERR", "sacct: error: slurmdbd: Connection refused")
    with pytest.raises(SourceUnavailable, match="exited with status 1: sacct: error: slurmdbd"):
        subprocess_runner([str(FAKE_SACCT), "--allusers"], timeout_s=30)
    with pytest.raises(SourceUnavailable, match="cannot run /nonexistent/sacct"):
        subprocess_runner(["/nonexistent/sacct"], timeout_s=30)


# --- window and watermark ---


def test_the_first_pull_starts_at_initial_start_and_sets_the_watermark(
    fake: Any, store: StoreHandle
) -> None:
    fake.answer(jobs("1", "2"))
    outcome = pull(source(initial_start="now-2days"), store, Clock())
    assert outcome.status == "loaded" and outcome.changed
    (call,) = fake.calls()
    assert option(call, "starttime") == "2026-11-18T12:00:00"
    assert option(call, "endtime") == "2026-11-20T12:00:00"
    assert run_count(store) == 2
    with store.reading() as cur:
        assert read_watermark(cur, "lab") == T0


def test_each_later_pull_overlaps_the_last_window_by_the_lookback(
    fake: Any, store: StoreHandle
) -> None:
    clock = Clock()
    src = source(lookback_s=3600, min_interval_s=60)
    fake.answer(jobs("1"))
    pull(src, store, clock)
    clock.advance(300)
    fake.answer(jobs("1", "2"))
    second = pull(src, store, clock)
    _first_call, second_call = fake.calls()
    assert option(second_call, "starttime") == "2026-11-20T11:00:00"  # T0 - 1 h
    assert option(second_call, "endtime") == "2026-11-20T12:05:00"
    assert second.summary is not None
    assert (second.summary.runs_new, second.summary.runs_unchanged) == (1, 1)
    with store.reading() as cur:
        assert read_watermark(cur, "lab") == T0 + timedelta(seconds=300)


def test_an_unchanged_window_lands_nothing_new(fake: Any, store: StoreHandle) -> None:
    clock = Clock()
    fake.answer(jobs("1", "2"))
    assert pull(source(), store, clock).changed
    clock.advance(3600)
    again = pull(source(), store, clock)
    assert again.status == "loaded" and not again.changed


def test_the_watermark_moves_only_with_its_batch(fake: Any, store: StoreHandle) -> None:
    clock = Clock()
    fake.answer(jobs("1"))
    pull(source(), store, clock)
    # Break the steps table: the runs of the next batch are written, then the steps fail.
    with store.write() as cur:
        cur.execute("ALTER TABLE steps RENAME TO steps_saved")
        cur.execute("CREATE TABLE steps (step_key VARCHAR)")
    clock.advance(3600)
    fake.answer(jobs("1", "2", "3"))
    outcome = pull(source(), store, clock)
    assert outcome.status == "failed"
    assert outcome.error is not None and "StoreError" in outcome.error
    assert run_count(store) == 1  # neither the new runs ...
    with store.reading() as cur:
        state = read_source_state(cur, "lab")
    assert state is not None
    assert state.watermark == T0  # ... nor the watermark moved
    assert state.consecutive_failures == 1 and state.degraded
    # repaired, the next pull reads from the old watermark and lands everything
    with store.write() as cur:
        cur.execute("DROP TABLE steps")
        cur.execute("ALTER TABLE steps_saved RENAME TO steps")
    clock.advance(3600)
    assert pull(source(lookback_s=0), store, clock).status == "loaded"
    assert option(fake.calls()[-1], "starttime") == "2026-11-20T12:00:00"
    assert run_count(store) == 3


# --- failures ---


def test_a_failing_sacct_is_retried_with_exponential_backoff(fake: Any, store: StoreHandle) -> None:
    fake.answers(None, None, jobs("1"))
    waits: list[float] = []
    outcome = pull(source(retries=3, backoff_s=2.5), store, Clock(), sleep=waits.append)
    assert outcome.status == "loaded"
    assert outcome.attempts == 3
    assert waits == [2.5, 5.0]
    assert len(fake.calls()) == 3
    with store.reading() as cur:
        state = read_source_state(cur, "lab")
    assert state is not None and not state.degraded and state.last_error is None


def test_when_every_attempt_fails_the_source_is_degraded_and_keeps_its_watermark(
    fake: Any, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    fake.answer(jobs("1"))
    pull(source(), store, clock)
    monkeypatch.setenv("FAKE_SACCT_EXIT", "1")
    monkeypatch.setenv("FAKE_SACCT_STDERR", "sacct: error: Problem talking to the database")
    for failures in (1, 2):
        clock.advance(600)
        outcome = pull(source(retries=2), store, clock, sleep=lambda _: None)
        assert outcome.status == "failed" and outcome.attempts == 3
        with store.reading() as cur:
            row = read_source_states(cur).row(0, named=True)
        assert row["degraded"] and row["consecutive_failures"] == failures
        assert row["watermark"] == T0
        assert row["last_attempt_at"] == clock()
        assert row["last_success_at"] == T0
        assert "Problem talking to the database" in row["last_error"]
        assert str(FAKE_SACCT) in row["last_error"]
    monkeypatch.delenv("FAKE_SACCT_EXIT")
    clock.advance(600)
    assert pull(source(), store, clock).status == "loaded"
    with store.reading() as cur:
        row = read_source_states(cur).row(0, named=True)
    assert not row["degraded"] and row["last_error"] is None and row["watermark"] == clock()


def test_a_timeout_degrades_the_source(
    fake: Any, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.answer(jobs("1"))
    monkeypatch.setenv("FAKE_SACCT_SLEEP", "10")
    outcome = pull(source(timeout_s=1), store, Clock())
    assert outcome.status == "failed"
    assert outcome.error is not None and "timed out after 1 s" in outcome.error
    assert run_count(store) == 0


def test_garbage_output_degrades_the_source(fake: Any, store: StoreHandle) -> None:
    fake.answer("sacct: fatal: this is not parsable output at all\n")
    outcome = pull(source(), store, Clock())
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith("ParseError")
    with store.reading() as cur:
        state = read_source_state(cur, "lab")
    assert state is not None and state.degraded and state.watermark is None


def test_one_failing_source_does_not_stop_the_others(fake: Any, store: StoreHandle) -> None:
    fake.answer(jobs("1", "2", Cluster="gpu"))
    clock = Clock()
    broken = source(name="old", cluster="old", command="/nonexistent/sacct")
    working = source(name="gpu", cluster="gpu")
    outcomes = [pull(s, store, clock) for s in (broken, working)]
    assert [o.status for o in outcomes] == ["failed", "loaded"]
    assert run_count(store) == 2
    with store.reading() as cur:
        states = {r["source"]: r for r in read_source_states(cur).iter_rows(named=True)}
    assert states["old"]["degraded"] and "cannot run" in states["old"]["last_error"]
    assert not states["gpu"]["degraded"] and states["gpu"]["cluster"] == "gpu"


# --- pacing ---


def test_a_pull_within_min_interval_of_the_last_attempt_is_skipped(
    fake: Any, store: StoreHandle
) -> None:
    clock = Clock()
    src = source(min_interval_s=120)
    fake.answer(jobs("1"))
    pull(src, store, clock)
    clock.advance(119)
    skipped = pull(src, store, clock)
    assert skipped.status == "skipped"
    assert skipped.reason is not None and "min_interval_s=120" in skipped.reason
    assert len(fake.calls()) == 1
    assert pull(src, store, clock, force=True).status == "loaded"
    clock.advance(120)
    assert pull(src, store, clock).status == "loaded"
    assert len(fake.calls()) == 3


def test_failed_attempts_count_for_min_interval(
    fake: Any, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SACCT_EXIT", "1")
    clock = Clock()
    assert pull(source(min_interval_s=60), store, clock).status == "failed"
    clock.advance(30)
    assert pull(source(min_interval_s=60), store, clock).status == "skipped"


class CountingRunner:
    """The real runner, counting how many commands run at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0

    def __call__(self, argv: Any, *, timeout_s: float, env: Any = None) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return subprocess_runner(argv, timeout_s=timeout_s, env=env)
        finally:
            with self._lock:
                self.running -= 1


def _pull_in_threads(
    sources: list[SacctSource], store: StoreHandle, runner: CountingRunner
) -> list[IngestOutcome]:
    outcomes: list[IngestOutcome] = []
    start = threading.Barrier(len(sources))

    def work(src: SacctSource) -> None:
        start.wait()
        outcomes.append(pull(src, store, Clock(), runner=runner))

    threads = [threading.Thread(target=work, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_one_pull_per_cluster_at_a_time(
    fake: Any, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.answer(jobs("1", Cluster="locked"))
    monkeypatch.setenv("FAKE_SACCT_SLEEP", "1.5")
    frequent = source(name="frequent", cluster="locked")
    reconcile = source(name="reconcile", cluster="locked", lookback_s=30 * 86400)
    runner = CountingRunner()
    outcomes = _pull_in_threads([frequent, reconcile], store, runner)
    assert sorted(o.status for o in outcomes) == ["loaded", "skipped"]
    (skipped,) = [o for o in outcomes if o.status == "skipped"]
    assert skipped.reason == "a pull of cluster locked is already running"
    assert len(fake.calls()) == 1 and runner.most == 1


def test_pulls_of_different_clusters_run_side_by_side(
    fake: Any, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.answer(jobs("1"))
    monkeypatch.setenv("FAKE_SACCT_SLEEP", "1.5")
    runner = CountingRunner()
    outcomes = _pull_in_threads(
        [source(name="a", cluster="ca"), source(name="b", cluster="cb")], store, runner
    )
    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    assert runner.most == 2


# --- the command line ---


@pytest.mark.slow
def test_fairledger_ingest_sacct_runs_a_configured_source(tmp_path: Path, fake: Any) -> None:
    fake.answer(jobs("1", "2"))
    config = tmp_path / "site.toml"
    config.write_text(
        f'db = "{tmp_path / "cli.duckdb"}"\n\n'
        f'[[sources]]\nname = "lab"\ncluster = "lab"\ncommand = "{FAKE_SACCT}"\n\n'
        f'[[sources]]\nname = "other"\ncluster = "other"\ncommand = "/nonexistent/sacct"\n'
        "retries = 1\nbackoff_s = 0\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "api", "--config", str(config), "ingest", "sacct"]
    done = subprocess.run([*cli, "--source", "lab"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "lab: batch 1" in done.stdout and "runs 2 new" in done.stdout
    again = subprocess.run([*cli, "--source", "lab"], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "skipped" in again.stdout
    broken = subprocess.run([*cli, "--source", "other"], capture_output=True, text=True, env=env)
    assert broken.returncode == 1 and "cannot run /nonexistent/sacct" in broken.stderr
    unknown = subprocess.run([*cli, "--source", "nope"], capture_output=True, text=True, env=env)
    assert unknown.returncode == 1 and "configured: lab, other" in unknown.stderr
