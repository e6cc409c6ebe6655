"""A run's current version is its newest, whatever order its records arrive in.

Versions are ordered by when the source observed them (a file's mtime, or ``--observed-at``; a
scheduled pull's time), then by how far the run had got (pending < running < ended), then by
content hash. An old file delivered after a newer pull goes straight into history.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from api.cli import app
from ingest.load import load_sacct_file
from models.store import open_store, read_runs
from models.store.runs import read_run_versions

HEADER = (
    "JobID|JobIDRaw|Cluster|Partition|QOS|Account|User|Submit|Eligible|Start|End|"
    "ElapsedRaw|Timelimit|ExitCode|State|NNodes|NCPUS|AllocTRES|NodeList|JobName"
)
SUBMIT = "2026-11-01T10:00:00"
KEY = f"lab/5/{int(datetime.fromisoformat(SUBMIT + '+00:00').timestamp())}"
RUNNING = (
    f"5|5|lab|cpu|normal|chem|alice|{SUBMIT}|{SUBMIT}|{SUBMIT}|Unknown|1800|01:00:00|0:0|"
    "RUNNING|1|4|billing=4,cpu=4,node=1|n01|sim"
)
ENDED = (
    f"5|5|lab|cpu|normal|chem|alice|{SUBMIT}|{SUBMIT}|{SUBMIT}|2026-11-01T11:00:00|3600|"
    "01:00:00|0:0|COMPLETED|1|4|billing=4,cpu=4,node=1|n01|sim"
)
PULL_1 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)  # sacct saw the job running
PULL_2 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # and then ended


def _file(path: Path, line: str, mtime: datetime | None = None) -> Path:
    path.write_text(f"{HEADER}\n{line}\n", encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def _states(versions: pl.DataFrame) -> list[tuple[int, str, bool]]:
    return list(zip(versions["version"], versions["state"], versions["is_current"], strict=True))


def test_an_old_file_delivered_late_goes_to_history(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    newer = _file(tmp_path / "newer.txt", ENDED, mtime=PULL_2)
    older = _file(tmp_path / "older.txt", RUNNING, mtime=PULL_1)  # the files' mtimes order them
    assert load_sacct_file(con, newer).summary.runs_new == 1
    late = load_sacct_file(con, older).summary
    assert (late.runs_new, late.runs_changed, late.runs_unchanged) == (0, 1, 0)  # one more version

    assert read_runs(con, columns=("run_key", "state"))["state"].to_list() == ["COMPLETED"]
    versions = read_run_versions(con, KEY)
    assert _states(versions) == [(1, "RUNNING", False), (2, "COMPLETED", True)]
    assert versions["observed_at"].to_list() == [PULL_1, PULL_2]
    assert versions["superseded_by_batch"][0] == late.batch_id  # superseded on arrival

    # delivered again, in either order, nothing changes
    for path in (older, newer):
        again = load_sacct_file(con, path).summary
        assert (again.runs_new, again.runs_changed, again.runs_unchanged) == (0, 0, 1)
    assert _states(read_run_versions(con, KEY)) == _states(versions)
    con.close()


def test_the_same_store_whichever_file_comes_first(tmp_path: Path) -> None:
    results = []
    for i, order in enumerate([(RUNNING, ENDED), (ENDED, RUNNING)]):
        con = open_store(tmp_path / f"order-{i}.duckdb")
        for n, line in enumerate(order):
            path = _file(tmp_path / f"{n}.txt", line)
            load_sacct_file(con, path, observed_at=PULL_1 if line == RUNNING else PULL_2)
        versions = read_run_versions(con, KEY)
        results.append((_states(versions), versions["row_hash"].to_list()))
        con.close()
    assert results[0] == results[1]
    assert results[0][0] == [(1, "RUNNING", False), (2, "COMPLETED", True)]


def test_observed_at_the_same_time_the_further_state_wins(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    for line in (ENDED, RUNNING):  # the running record last: still not current
        load_sacct_file(con, _file(tmp_path / "f.txt", line), observed_at=PULL_2)
    assert _states(read_run_versions(con, KEY)) == [(1, "RUNNING", False), (2, "COMPLETED", True)]
    con.close()


def test_the_cli_takes_observed_at(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    ended = _file(tmp_path / "ended.txt", ENDED)  # written now: newer than both pulls
    running = _file(tmp_path / "running.txt", RUNNING)
    for path, when in ((ended, PULL_2), (running, PULL_1)):
        argv = ["--db", str(db), "ingest", "file", str(path), "--observed-at", when.isoformat()]
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
    con = open_store(db)
    assert _states(read_run_versions(con, KEY)) == [(1, "RUNNING", False), (2, "COMPLETED", True)]
    con.close()
    # without the option the file's mtime (now) makes the running record the newest
    running_now = _file(tmp_path / "running-again.txt", RUNNING.replace("1800", "1801"))
    assert runner.invoke(app, ["--db", str(db), "ingest", "file", str(running_now)]).exit_code == 0
    con = open_store(db)
    assert read_run_versions(con, KEY)["elapsed_s"].to_list()[-1] == 1801
    con.close()
