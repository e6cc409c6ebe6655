"""Quarantine you can act on: a retry parses open records again and lands those that now parse.

The fix shown is a real one: a headerless file (``sacct --noheader``) loaded with ``--fields``
in the wrong order (State and ExitCode swapped) quarantines every line ("unknown state
'0:0'"); retrying with the right order lands them, as a new batch, and marks them resolved by
it. A line that is bad whatever the order stays open with the reason found now.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ingest.load import load_sacct_file
from ingest.quarantine import retry_quarantined
from models.store import open_store, read_runs
from models.store.quarantine import list_quarantine

RIGHT = ["JobID", "JobIDRaw", "Cluster", "Partition", "Account", "User", "Submit", "Start",
         "End", "ElapsedRaw", "ExitCode", "State", "NCPUS", "AllocTRES", "JobName"]  # fmt: skip
WRONG = [*RIGHT[:10], "State", "ExitCode", *RIGHT[12:]]


def _line(job: int, state: str) -> str:
    return (
        f"{job}|{job}|lab|cpu|chem|alice|2026-11-01T00:00:00|2026-11-01T00:00:00|"
        f"2026-11-01T01:00:00|3600|0:0|{state}|4|billing=4,cpu=4,node=1|job{job}"
    )


def test_retry_with_the_right_field_order_lands_what_now_parses(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    path = tmp_path / "noheader.txt"
    path.write_text("\n".join([_line(1, "COMPLETED"), _line(2, "FAILED"), _line(3, "BOGUS")]))
    first = load_sacct_file(con, path, fields=WRONG)
    assert first.summary.runs_new == 0 and first.summary.quarantined == 3
    stored, total = list_quarantine(con, status="open")
    assert total == 3
    assert set(stored["reason"]) == {"unknown state '0:0'"}
    assert stored["fields"][0].to_list() == WRONG  # what a retry needs
    assert set(stored["parser"]) == {"sacct"}

    # retried as recorded: the same mistake, nothing lands, nothing is duplicated
    [same] = retry_quarantined(con)
    assert (same.retried, same.resolved, same.still_open) == (3, 0, 3)
    assert list_quarantine(con)[1] == 3 and read_runs(con).height == 0

    [fixed] = retry_quarantined(con, source=str(path.resolve()), fields=RIGHT)
    assert (fixed.retried, fixed.resolved, fixed.still_open) == (3, 2, 1)
    assert fixed.batch_id is not None

    runs = read_runs(con, columns=("job_id", "state", "source_line", "alloc_cpus"))
    assert runs.sort("job_id").rows() == [("1", "COMPLETED", 1, 4), ("2", "FAILED", 2, 4)]
    every, total = list_quarantine(con)
    assert total == 3  # nothing in quarantine is deleted
    resolved = every.filter(pl.col("status") == "resolved")
    assert resolved["record_id"].to_list() == ["1", "2"]
    assert set(resolved["resolved_by_batch"]) == {fixed.batch_id}
    assert resolved["retries"].to_list() == [2, 2]
    still = every.filter(pl.col("status") == "open").row(0, named=True)
    assert still["record_id"] == "3"
    assert still["reason"] == "unknown state 'BOGUS'"
    assert still["first_reason"] == "unknown state '0:0'"
    assert still["retries"] == 2 and still["resolved_by_batch"] is None

    # the file loaded again the right way: the resolved runs are unchanged, the bad line is
    # already quarantined (open), so nothing new is quarantined
    again = load_sacct_file(con, path, fields=RIGHT)
    assert (again.summary.runs_new, again.summary.runs_unchanged) == (0, 2)
    assert list_quarantine(con)[1] == 3
    # a second retry only looks at what is still open
    [last] = retry_quarantined(con, fields=RIGHT)
    assert (last.retried, last.resolved, last.still_open) == (1, 0, 1)


def test_a_file_with_a_header_records_its_field_order(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    path = tmp_path / "with-header.txt"
    path.write_text("\n".join(["|".join(RIGHT), _line(1, "COMPLETED"), _line(2, "NOPE")]))
    loaded = load_sacct_file(con, path, cluster="other", tz="Europe/Berlin")
    assert loaded.summary.runs_new == 1 and loaded.summary.quarantined == 1
    row = list_quarantine(con)[0].row(0, named=True)
    assert (row["fields"], row["parse_cluster"], row["parse_tz"]) == (
        RIGHT,
        "other",
        "Europe/Berlin",
    )
    assert row["line_no"] == 3 and row["raw"] == _line(2, "NOPE")


def test_a_retried_record_never_replaces_a_newer_one(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    old = tmp_path / "old.txt"
    old.write_text(_line(1, "RUNNING"))  # read while running, with the wrong field order
    assert load_sacct_file(con, old, fields=WRONG).summary.quarantined == 1
    new = tmp_path / "new.txt"
    new.write_text(_line(1, "COMPLETED"))  # the record as it ended, read the right way
    assert load_sacct_file(con, new, fields=RIGHT).summary.runs_new == 1

    [outcome] = retry_quarantined(con, fields=RIGHT)

    assert (outcome.resolved, outcome.still_open) == (1, 0)
    assert read_runs(con, columns=("job_id", "state")).rows() == [("1", "COMPLETED")]
    # it was observed before the stored record: it lands as the older version, in history
    history = con.execute("SELECT state, superseded_by_batch FROM run_history").fetchall()
    assert history == [("RUNNING", outcome.batch_id)]
    row = list_quarantine(con)[0].row(0, named=True)
    assert row["status"] == "resolved" and row["raw"] == _line(1, "RUNNING")


def test_records_of_other_parsers_and_older_stores(tmp_path: Path, monkeypatch) -> None:
    from datetime import UTC, datetime

    from models.frames import QUARANTINE, RUNS, STEPS, conform, empty
    from models.store import connect, migrate
    from models.store import db as store_db
    from models.store.runs import write_batch

    # a store quarantined a sacct line before 0004 recorded parsers: it is known to be sacct's
    con = connect(tmp_path / "old.duckdb")
    shipped = store_db.migrations()
    monkeypatch.setattr(store_db, "migrations", lambda: [m for m in shipped if m.version < 4])
    migrate(con)
    con.execute(
        "INSERT INTO quarantine (quarantine_id, batch_id, source, line_no, field, reason, raw, "
        "quarantined_at) VALUES (nextval('quarantine_ids'), 1, 'f', 1, 'State', "
        "'unknown state ''0:0''', ?, now())",
        [_line(1, "COMPLETED")],
    )
    monkeypatch.setattr(store_db, "migrations", lambda: shipped)
    migrate(con)
    old = list_quarantine(con)[0].row(0, named=True)
    assert (old["parser"], old["fields"], old["first_reason"]) == ("sacct", None, old["reason"])
    # its field order was not recorded: retried only when given one
    [skipped] = retry_quarantined(con)
    assert skipped.retried == 0 and "pass --fields" in skipped.describe()
    [fixed] = retry_quarantined(con, fields=RIGHT)
    assert fixed.resolved == 1 and read_runs(con).height == 1

    # a record of a parser that cannot be retried (none recorded) is left as it is
    bad = conform(pl.DataFrame({"source": ["pbs"], "line_no": [3], "field": ["x"],
                                "reason": ["r"], "raw": ["E;1.pbs;"]}), QUARANTINE)  # fmt: skip
    write_batch(con, source="pbs", scheduler="pbs", runs=empty(RUNS), steps=empty(STEPS),
                quarantine=bad, lines_read=1, started_at=datetime.now(UTC))  # fmt: skip
    [other] = retry_quarantined(con, source="pbs", fields=RIGHT)
    assert other.retried == 0 and "parser was not recorded" in other.describe()
    assert list_quarantine(con, source="pbs")[0]["retries"].to_list() == [0]
