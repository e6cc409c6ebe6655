"""Drop directories: files land and move to done/ or failed/ with a reason, files still being
written are left alone, and a crash between the commit and the move loads nothing twice."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from api.settings import DropDir
from ingest.dropdir import run_drop_dir
from ingest.scheduler import add_drop_dir_jobs
from ingest.sources.sacct import SACCT_FORMAT
from models.store import read_source_states
from models.store.handle import StoreHandle

SAMPLES = Path(__file__).parent / "samples"
HEADER = "|".join(SACCT_FORMAT)
LINE = (
    "{id}|{id}|lab|cpu|normal|chem|erin|2026-11-20T10:00:00|2026-11-20T10:00:00|"
    "2026-11-20T10:00:01|2026-11-20T10:10:01|00:10:00|600|01:00:00|0:0|{state}|1|2|1024M|"
    "billing=2,cpu=2,mem=1024M,node=1|n1||job"
)


def sacct_text(*ids: int, state: str = "COMPLETED") -> str:
    return "\n".join([HEADER, *(LINE.format(id=i, state=state) for i in ids)]) + "\n"


def jsonl_line(job_id: str, **changes: object) -> str:
    record = {
        "scheduler": "k8s",
        "cluster": "kube",
        "job_id": job_id,
        "user": "ana",
        "account": "climate",
        "submit_at": "2026-11-01T10:00:00Z",
        "start_at": "2026-11-01T10:05:00Z",
        "end_at": "2026-11-01T11:05:00Z",
        "state": "COMPLETED",
    }
    return json.dumps({**record, **changes})


def now() -> datetime:
    return datetime.now(UTC)


def settled(path: Path, text: str) -> Path:
    """Write ``path`` as a writer that finished a minute ago would have."""
    path.write_text(text, encoding="utf-8")
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def count_runs(store: StoreHandle) -> int:
    with store.reading() as cur:
        return int(cur.execute("SELECT count(*) FROM runs").fetchall()[0][0])


def state_of(store: StoreHandle, name: str) -> dict[str, object]:
    with store.reading() as cur:
        states = read_source_states(cur)
    return next(r for r in states.iter_rows(named=True) if r["source"] == name)


def test_sacct_files_land_move_to_done_and_bad_ones_to_failed(
    tmp_path: Path, store: StoreHandle
) -> None:
    drop = DropDir(path=tmp_path / "drop", format="sacct", cluster="lab")
    drop.path.mkdir()
    settled(drop.path / "a.txt", sacct_text(1, 2))
    settled(drop.path / "b.txt", sacct_text(3) + LINE.format(id=4, state="BOGUS") + "\n")
    settled(drop.path / "c.txt", "no|header|here\n1|2|3\n")  # headerless, no fields given
    settled(drop.path / "d.txt", sacct_text(5, state="BOGUS"))  # nothing parses
    settled(drop.path / "e.txt", "")

    outcomes = run_drop_dir(drop, store, now=now)

    assert [(o.file, o.status) for o in outcomes] == [
        ("a.txt", "done"), ("b.txt", "done"), ("c.txt", "failed"), ("d.txt", "failed"),
        ("e.txt", "failed"),
    ]  # fmt: skip
    assert sorted(p.name for p in drop.path.iterdir()) == ["done", "failed"]
    done, failed = drop.path / "done", drop.path / "failed"
    assert sorted(p.name for p in done.iterdir()) == [
        "a.txt", "a.txt.reason", "b.txt", "b.txt.reason"]  # fmt: skip
    assert "1 quarantined" in (done / "b.txt.reason").read_text()
    assert "unknown state 'BOGUS'" in (done / "b.txt.reason").read_text()
    assert "header" in (failed / "c.txt.reason").read_text()
    assert "no record could be parsed" in (failed / "d.txt.reason").read_text()
    assert "empty" in (failed / "e.txt.reason").read_text()
    assert count_runs(store) == 3
    state = state_of(store, drop.name)
    assert state["degraded"] and "e.txt" in str(state["last_error"])

    # a later good file clears the failure; a new file of a known name does not overwrite
    settled(drop.path / "a.txt", sacct_text(1, 2, 6))
    (again,) = run_drop_dir(drop, store, now=now)
    assert again.status == "done" and again.moved_to == done / "a.txt.1"
    assert again.summary is not None and again.summary.runs_new == 1
    assert not state_of(store, drop.name)["degraded"]


def test_files_being_written_are_left_alone(tmp_path: Path, store: StoreHandle) -> None:
    drop = DropDir(path=tmp_path, format="jsonl", settle_s=30)
    (tmp_path / "fresh.jsonl").write_text(jsonl_line("j1"))  # modified just now
    settled(tmp_path / ".hidden.jsonl", jsonl_line("j2"))
    settled(tmp_path / "upload.jsonl.part", jsonl_line("j3"))
    settled(tmp_path / "upload.tmp", jsonl_line("j4"))
    (tmp_path / "subdir").mkdir()

    assert run_drop_dir(drop, store, now=now) == []
    assert count_runs(store) == 0
    assert (tmp_path / "fresh.jsonl").exists()

    os.replace(tmp_path / "upload.jsonl.part", tmp_path / "upload.jsonl")  # the writer is done
    settled(tmp_path / "upload.jsonl", jsonl_line("j3"))
    (outcome,) = run_drop_dir(drop, store, now=now)
    assert (outcome.file, outcome.status) == ("upload.jsonl", "done")
    assert count_runs(store) == 1


def test_jsonl_with_bad_lines_lands_the_good_ones(tmp_path: Path, store: StoreHandle) -> None:
    drop = DropDir(path=tmp_path, format="jsonl")
    settled(tmp_path / "k.jsonl", "\n".join([jsonl_line("j1"), "{", jsonl_line("j2")]))
    settled(tmp_path / "bad.jsonl", "garbage\n{}\n")
    outcomes = {o.file: o for o in run_drop_dir(drop, store, now=now)}
    assert outcomes["k.jsonl"].status == "done" and outcomes["bad.jsonl"].status == "failed"
    summary = outcomes["k.jsonl"].summary
    assert summary is not None and (summary.runs_new, summary.quarantined) == (2, 1)
    assert "line 2" in (tmp_path / "done" / "k.jsonl.reason").read_text()
    with store.reading() as cur:
        batch_sources = cur.execute("SELECT DISTINCT source FROM ingest_batches").fetchall()
    assert batch_sources == [(f"dropdir:{tmp_path}",)]


@pytest.mark.parametrize(
    ("fmt", "sample"),
    [
        ("pbs", SAMPLES / "pbs" / "input" / "accounting-logs.log"),
        ("lsf", SAMPLES / "lsf" / "input" / "accounting-logs.log"),
        ("sacct_json", SAMPLES / "sacct_json" / "sacct-23.11-v0.0.40.json"),
    ],
)
def test_other_formats_land(tmp_path: Path, store: StoreHandle, fmt: str, sample: Path) -> None:
    drop = DropDir.model_validate({"path": tmp_path / "d", "format": fmt, "cluster": "site"})
    drop.path.mkdir()
    settled(drop.path / sample.name, sample.read_text(encoding="utf-8"))
    (outcome,) = run_drop_dir(drop, store, now=now)
    assert outcome.status == "done", outcome.reason
    assert outcome.summary is not None and outcome.summary.runs_new > 0
    assert count_runs(store) == outcome.summary.runs_new


def test_a_log_format_needs_a_cluster(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a cluster"):
        DropDir(path=tmp_path, format="pbs")


def test_a_crash_between_commit_and_move_loads_nothing_twice(
    tmp_path: Path, store: StoreHandle
) -> None:
    drop = DropDir(path=tmp_path, format="sacct", cluster="lab")
    settled(tmp_path / "a.txt", sacct_text(1, 2) + LINE.format(id=3, state="BOGUS") + "\n")

    def die(src: Path, dst: Path) -> None:
        raise KeyboardInterrupt("killed after the commit")  # what a dying process leaves

    with pytest.raises(KeyboardInterrupt):
        run_drop_dir(drop, store, now=now, move=die)
    assert (tmp_path / "a.txt").exists() and count_runs(store) == 2  # committed, not moved

    (outcome,) = run_drop_dir(drop, store, now=now)  # the restarted process
    assert outcome.status == "done" and outcome.summary is not None
    s = outcome.summary
    assert (s.runs_new, s.runs_changed, s.runs_unchanged) == (0, 0, 2)
    assert count_runs(store) == 2 and not (tmp_path / "a.txt").exists()
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["a.txt", "a.txt.reason"]
    with store.reading() as cur:
        history = cur.execute("SELECT count(*) FROM run_history").fetchall()[0][0]
        quarantined = cur.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert history == 0  # no second version of anything
    assert quarantined == 1  # the bad line once


def test_the_scheduled_job_loads_and_notifies(tmp_path: Path, store: StoreHandle) -> None:
    drop = DropDir(path=tmp_path, format="sacct", cluster="lab", interval_s=1)
    settled(tmp_path / "a.txt", sacct_text(1))
    notified: list[int] = []
    scheduler = BackgroundScheduler(timezone="UTC")
    add_drop_dir_jobs(
        scheduler, [drop], store, on_loaded=lambda: notified.append(1), first_run_after_s=0
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "done" / "a.txt").exists():
            assert time.monotonic() < deadline, "timed out waiting for the drop job"
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert notified == [1] and count_runs(store) == 1
    assert state_of(store, drop.name)["last_success_at"] is not None


def step_line(job: int) -> str:
    """A batch step of job ``job`` (sacct prints the step's own start as its Submit)."""
    return (
        f"{job}.batch|{job}.batch|lab||||||2026-11-20T10:00:01|2026-11-20T10:00:01|"
        "2026-11-20T10:10:01|00:10:00|600||0:0|COMPLETED|1|2|1024M|cpu=2,mem=1024M,node=1|n1||batch"
    )


@pytest.mark.slow
def test_a_large_sacct_file_lands_in_chunks_each_record_once(
    tmp_path: Path, store: StoreHandle
) -> None:
    drop = DropDir(path=tmp_path, format="sacct", cluster="lab")
    lines = [HEADER]
    for job in range(1, 8):
        lines += [LINE.format(id=job, state="BOGUS" if job == 6 else "COMPLETED"), step_line(job)]
    text = "\n".join(lines) + "\n"
    settled(tmp_path / "year.txt", text)

    (outcome,) = run_drop_dir(drop, store, now=now, chunk_lines=4)

    assert outcome.status == "done" and outcome.summary is not None
    s = outcome.summary
    assert (s.lines_read, s.runs_new, s.steps_new, s.quarantined) == (14, 6, 7, 1)
    assert outcome.reason is not None and outcome.reason.startswith("landed as batches ")
    assert "line 12: State: unknown state 'BOGUS'" in outcome.reason  # the file's line number
    with store.reading() as cur:
        batches = cur.execute("SELECT count(*) FROM ingest_batches").fetchall()[0][0]
        steps = cur.execute("SELECT count(*) FROM steps").fetchall()[0][0]
        lines_of_quarantine = cur.execute("SELECT line_no FROM quarantine").fetchall()
    assert batches == 4 and steps == 7 and lines_of_quarantine == [(12,)]
    assert count_runs(store) == 6

    # the same file dropped again under another name: no run twice (its bad line is
    # quarantined again, with that file as its source)
    settled(tmp_path / "year-again.txt", text)
    (again,) = run_drop_dir(drop, store, now=now, chunk_lines=4)
    assert again.summary is not None
    assert (again.summary.runs_new, again.summary.runs_unchanged) == (0, 6)
    with store.reading() as cur:
        history = cur.execute("SELECT count(*) FROM run_history").fetchall()[0][0]
        quarantined = cur.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert (history, quarantined, count_runs(store)) == (0, 2, 6)


def test_a_chunk_the_store_refuses_leaves_the_file_for_the_next_run(
    tmp_path: Path, store: StoreHandle
) -> None:
    drop = DropDir(path=tmp_path, format="sacct", cluster="lab")
    settled(tmp_path / "a.txt", sacct_text(1, 2, 3, 4, 5, 6))
    with store.write() as cur:  # batch id 2 is taken, so the file's second chunk cannot land
        cur.execute(
            "INSERT INTO ingest_batches VALUES (2, 'other', 'slurm', now(), now(), 0, 0, 0, 0, "
            "0, 0, 0, 0, now())"
        )

    (outcome,) = run_drop_dir(drop, store, now=now, chunk_lines=2)

    assert (outcome.status, outcome.moved_to) == ("failed", None)
    # the first chunk (the header and one job) landed
    assert outcome.summary is not None and outcome.summary.runs_new == 1
    assert outcome.changed  # what landed is announced (a recompute follows)
    assert (tmp_path / "a.txt").exists() and count_runs(store) == 1
    state = state_of(store, drop.name)
    assert state["degraded"]
    assert "could not store the batch" in str(state["last_error"])
    assert "after batches 1-1 of the file landed" in str(state["last_error"])

    (again,) = run_drop_dir(drop, store, now=now, chunk_lines=2)  # the next run
    assert again.status == "done" and again.summary is not None
    assert (again.summary.runs_new, again.summary.runs_unchanged) == (5, 1)
    assert count_runs(store) == 6 and not (tmp_path / "a.txt").exists()
    assert not state_of(store, drop.name)["degraded"]


@pytest.mark.parametrize("chunk_lines", [2, 1000])
def test_a_lone_carriage_return_stays_in_its_field(
    tmp_path: Path, store: StoreHandle, chunk_lines: int
) -> None:
    """A drop directory reads a file as UTF-8 and drops the \\r of a \\r\\n line end only (a
    lone \\r is data), whether the file lands in one chunk or several."""
    drop = DropDir(path=tmp_path, format="sacct", cluster="lab")
    odd = LINE.format(id=2, state="COMPLETED").replace("|job", "|a\rb")
    text = "\r\n".join([HEADER, LINE.format(id=1, state="COMPLETED"), odd, step_line(2)])
    settled(tmp_path / "crlf.txt", text + "\r\n")

    (outcome,) = run_drop_dir(drop, store, now=now, chunk_lines=chunk_lines)

    assert outcome.status == "done" and outcome.summary is not None
    assert (outcome.summary.runs_new, outcome.summary.quarantined) == (2, 0)
    with store.reading() as cur:
        names = cur.execute("SELECT job_name FROM runs ORDER BY job_id").fetchall()
    assert names == [("job",), ("a\rb",)]
