"""Crash safety: a batch lands whole or not at all, together with its watermark.

A worker process loads a large synthetic sacct dump (``bench/gen_sacct.py``) as a series of
windows, the way the scheduler pulls a source: each window's batch and the source's new
watermark land in one ``write_batch`` transaction, and a restarted worker resumes after the
stored watermark. The test SIGKILLs the worker at random (seeded) moments many times, most of
them while a batch is being written, restarts it, and checks that the store then holds exactly
the source's records: every run and step once, none missing, one batch per window, the watermark
at the last window, and no quarantined record twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ingest.sources.sacct import parse_sacct
from models.store import open_store

ROOT = Path(__file__).resolve().parents[2]
JOBS = 50_000
WINDOWS = 10
KILLS = 15
SEED = 20261129
SOURCE = "crash-test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# The worker: load every window after the stored watermark, one transaction each. It says
# "write i" before a batch's transaction and "landed i" after its commit, so the test knows
# where it killed.
WORKER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.sources.sacct import parse_sacct
from models.store import open_store, write_batch
from models.store.sources import read_watermark

db, source, t0, *chunks = sys.argv[1:]
t0 = datetime.fromisoformat(t0)
con = open_store(db)
print("ready", flush=True)
for i, chunk in enumerate(chunks):
    end = t0 + timedelta(hours=i)
    mark = read_watermark(con, source)
    if mark is not None and mark >= end:
        continue
    batch = parse_sacct(Path(chunk).read_text(encoding="utf-8"), source=source)
    print("write", i, flush=True)
    write_batch(con, source=source, scheduler="slurm", runs=batch.runs, steps=batch.steps,
                quarantine=batch.quarantine, lines_read=batch.lines_read,
                started_at=datetime.now(UTC), watermark=(source, end))
    print("landed", i, flush=True)
con.close()
print("done", flush=True)
"""


def _chunks(dump: Path, out: Path) -> list[Path]:
    """Split the dump into WINDOWS files at allocation lines (a job keeps its steps), each with
    the header and one garbage line to quarantine."""
    header, *lines = dump.read_text(encoding="utf-8").splitlines()
    size = len(lines) // WINDOWS
    paths = []
    start = 0
    for i in range(WINDOWS):
        end = len(lines) if i == WINDOWS - 1 else start + size
        while end < len(lines) and "." in lines[end].split("|")[1]:
            end += 1  # a step stays with its allocation line
        body = [*lines[start:end], f"garbage line of window {i}"]
        path = out / f"window-{i:02d}.txt"
        path.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
        paths.append(path)
        start = end
    return paths


def _worker(db: Path, script: Path, chunks: list[Path]) -> subprocess.Popen[str]:
    argv = [sys.executable, str(script), str(db), SOURCE, T0.isoformat(), *map(str, chunks)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_sacct.py"), str(JOBS), str(dump), "--seed", "7"],
        check=True,
        capture_output=True,
    )
    chunks = _chunks(dump, tmp_path)
    expected = [parse_sacct(c.read_text(encoding="utf-8"), source=SOURCE) for c in chunks]
    run_keys = pl.concat([b.runs["run_key"] for b in expected])
    step_keys = pl.concat([b.steps["step_key"] for b in expected])
    bad = pl.concat([b.quarantine.select("raw", "field") for b in expected])
    assert run_keys.n_unique() == run_keys.len() == JOBS  # the windows share no run
    assert bad.height >= WINDOWS

    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    db = tmp_path / "crash.duckdb"
    rng = random.Random(SEED)
    in_flight = 0  # kills that landed between "write" and "landed" of a batch
    started = time.monotonic()
    for kill in range(KILLS):
        worker = _worker(db, script, chunks)
        assert worker.stdout is not None
        said = [worker.stdout.readline()]
        assert said == ["ready\n"], worker.communicate()[1]
        if kill % 2:  # anywhere: parsing, between batches, writing
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # inside a transaction: a random moment after the 1st or 2nd batch began
            writes = rng.randrange(1, 3)
            while writes and said[-1] and not said[-1].startswith("done"):
                said.append(worker.stdout.readline())
                writes -= said[-1].startswith("write")
            time.sleep(rng.uniform(0.0, 0.3))
        worker.send_signal(signal.SIGKILL)
        out, _ = worker.communicate()
        words = "".join(said).split() + out.split()
        if worker.returncode == -signal.SIGKILL and len(words) > 1 and words[-2] == "write":
            in_flight += 1
    worker = _worker(db, script, chunks)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert out.splitlines()[-1] == "done"
    elapsed = time.monotonic() - started

    con = open_store(db)
    try:
        stored_runs = con.sql("SELECT run_key FROM runs").pl()["run_key"]
        stored_steps = con.sql("SELECT step_key FROM steps").pl()["step_key"]
        batches = con.sql(
            "SELECT batch_id, runs_new, runs_changed, steps_new, quarantined "
            "FROM ingest_batches WHERE source = ? ORDER BY batch_id",
            params=[SOURCE],
        ).pl()
        state = con.execute(
            "SELECT watermark, last_batch_id, consecutive_failures FROM source_state "
            "WHERE source = ?",
            [SOURCE],
        ).fetchall()
        quarantined = con.sql("SELECT raw, field FROM quarantine WHERE source = ?", params=[SOURCE])
        quarantine = quarantined.pl()
        history = con.execute("SELECT count(*) FROM run_history").fetchall()[0][0]
    finally:
        con.close()

    # every record of the source exactly once
    assert stored_runs.len() == stored_runs.n_unique() == run_keys.len()
    assert set(stored_runs) == set(run_keys)
    assert stored_steps.len() == stored_steps.n_unique() == step_keys.len()
    assert set(stored_steps) == set(step_keys)
    assert history == 0  # nothing was stored twice with other content
    # one batch per window, each landed whole, together with its watermark
    assert batches.height == WINDOWS
    assert batches["runs_new"].to_list() == [b.runs.height for b in expected]
    assert batches["steps_new"].to_list() == [b.steps.height for b in expected]
    assert batches["runs_changed"].sum() == 0
    assert state == [(T0 + timedelta(hours=WINDOWS - 1), batches["batch_id"][-1], 0)]
    # quarantine: every bad record once
    assert quarantine.height == bad.height
    assert quarantine.sort("raw", "field").equals(bad.sort("raw", "field"))
    assert in_flight >= KILLS // 4, f"only {in_flight} kills hit a batch being written"
    print(f"{KILLS} kills, {in_flight} during a batch, {elapsed:.1f} s")  # noqa: T201 - with -s
