"""Large files land in chunks: each chunk its own atomic batch, the store as after one batch.

``load_sacct_file(..., chunk_lines=N)`` (what ``fairledger ingest file`` does) cuts the file only
before an allocation line, so steps land with their job; line numbers stay those of the file.
"""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from api.cli import app
from bench.gen_sacct import Generator
from ingest.load import LoadProgress, load_sacct_file
from models.errors import StoreError
from models.store import Connection, open_store

HEADER = "JobID|JobIDRaw|Cluster|Partition|Account|User|Submit|Start|End|ElapsedRaw|State|AllocTRES"


def _generated(tmp_path: Path, jobs: int) -> Path:
    """Write a synthetic dump of ``jobs`` jobs with bench/gen_sacct.py's generator."""
    lines = Generator(jobs, 7).run()
    lines[len(lines) // 2 : len(lines) // 2] = ["not|a|job"]  # quarantined: too few fields
    path = tmp_path / "dump.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _alloc(job: int, state: str = "COMPLETED", cpus: int = 4) -> str:
    return (
        f"{job}|{job}|lab|cpu|chem|alice|2026-11-01T00:00:00|2026-11-01T00:00:00|"
        f"2026-11-01T01:00:00|3600|{state}|billing={cpus},cpu={cpus},node=1"
    )


def _step(job: int, step: str) -> str:
    return (
        f"{job}.{step}|{job}.{step}|lab||chem||2026-11-01T00:00:00|2026-11-01T00:00:00|"
        f"2026-11-01T01:00:00|3600|COMPLETED|cpu=4,node=1"
    )


def _content(con: Connection) -> dict[str, list[tuple[object, ...]]]:
    return {
        "runs": con.execute(
            "SELECT run_key, row_hash, source_line FROM runs ORDER BY run_key"
        ).fetchall(),
        "steps": con.execute(
            "SELECT * EXCLUDE (batch_id, ingested_at) FROM steps ORDER BY step_key"
        ).fetchall(),
        "quarantine": con.execute(
            "SELECT line_no, record_id, field, reason, raw FROM quarantine ORDER BY line_no"
        ).fetchall(),
    }


@pytest.mark.slow
def test_chunked_load_stores_what_one_batch_stores(tmp_path: Path) -> None:
    dump = _generated(tmp_path, 3000)
    whole = open_store(tmp_path / "whole.duckdb")
    chunked = open_store(tmp_path / "chunked.duckdb")
    one = load_sacct_file(whole, dump)
    seen: list[LoadProgress] = []
    many = load_sacct_file(chunked, dump, chunk_lines=700, on_progress=seen.append)
    assert len(many.batches) > 5 and len(one.batches) == 1
    assert _content(chunked) == _content(whole)
    assert _content(whole)["runs"] and _content(whole)["steps"] and _content(whole)["quarantine"]
    assert many.summary.lines_read == one.summary.lines_read
    assert many.summary.quarantined == one.summary.quarantined == many.quarantine.height
    assert many.summary.runs_new + many.summary.runs_changed >= one.summary.runs_new
    assert many.summary.steps_new == one.summary.steps_new
    assert sorted(many.quarantine["line_no"]) == sorted(one.quarantine["line_no"])
    # progress: one report per batch, ending at the whole file
    assert [p.batches for p in seen] == list(range(1, len(many.batches) + 1))
    assert seen[-1].bytes_done == seen[-1].bytes_total == dump.stat().st_size
    assert seen[-1].lines_done == len(dump.read_text(encoding="utf-8").split("\n")) - 1
    assert many.describe().startswith(f"{len(many.batches)} batches (")


@pytest.mark.slow
def test_a_second_chunked_load_changes_nothing(tmp_path: Path) -> None:
    dump = _generated(tmp_path, 1500)
    con = open_store(tmp_path / "s.duckdb")
    load_sacct_file(con, dump, chunk_lines=500)
    before = _content(con)
    again = load_sacct_file(con, dump, chunk_lines=500)
    s = again.summary
    assert (s.runs_new, s.runs_changed, s.steps_new, s.steps_changed) == (0, 0, 0, 0)
    assert s.runs_unchanged == len(before["runs"]) and s.steps_unchanged == len(before["steps"])
    assert _content(con) == before


def test_steps_stay_with_their_allocation_across_a_chunk_boundary(tmp_path: Path) -> None:
    lines = [HEADER, _alloc(1), _step(1, "batch"), _step(1, "extern"), _step(1, "0"), _alloc(2)]
    lines += [_step(2, "batch"), _alloc(3), _step(3, "batch"), _step(3, "0"), _step(3, "1")]
    path = tmp_path / "steps.txt"
    path.write_text("\n".join(lines) + "\n")
    con = open_store(tmp_path / "s.duckdb")
    loaded = load_sacct_file(con, path, chunk_lines=2)
    # cuts only before an allocation line: [header, 1 + steps], [2 + step], [3 + steps]
    assert [b.lines_read for b in loaded.batches] == [4, 2, 4]
    assert loaded.summary.quarantined == 0
    assert (loaded.summary.runs_new, loaded.summary.steps_new) == (3, 7)
    pairs = con.execute(
        "SELECT s.step_key, s.batch_id, r.batch_id, s.source_line FROM steps s "
        "JOIN runs r ON r.run_key = s.run_key ORDER BY s.source_line"
    ).fetchall()
    assert len(pairs) == 7
    assert all(step_batch == run_batch for _, step_batch, run_batch, _ in pairs)
    assert [line for *_, line in pairs] == [3, 4, 5, 7, 9, 10, 11]


def test_quarantined_lines_keep_their_line_numbers_in_the_file(tmp_path: Path) -> None:
    lines = [HEADER, _alloc(1), "", _alloc(2, state="BOGUS"), _alloc(3), "", _alloc(4),
             _alloc(5, state="NOPE"), _step(5, "batch"), _alloc(6), "too|few"]  # fmt: skip
    path = tmp_path / "bad.txt"
    path.write_text("\r\n".join(lines) + "\r\n")
    whole = open_store(tmp_path / "whole.duckdb")
    chunked = open_store(tmp_path / "chunked.duckdb")
    load_sacct_file(whole, path)
    loaded = load_sacct_file(chunked, path, chunk_lines=2)
    assert len(loaded.batches) > 2
    stored = chunked.sql("SELECT line_no, raw FROM quarantine ORDER BY line_no").pl()
    assert stored.rows() == [(i + 1, lines[i]) for i in (3, 7, 10)]
    assert loaded.quarantine.sort("line_no")["line_no"].to_list() == [4, 8, 11]
    assert _content(chunked) == _content(whole)
    runs = chunked.sql("SELECT job_id, source_line FROM runs ORDER BY job_id").pl()
    assert runs.rows() == [("1", 2), ("3", 5), ("4", 7), ("6", 10)]


def test_headerless_file_with_fields_is_chunked_with_those_fields(tmp_path: Path) -> None:
    fields = HEADER.split("|")
    lines = [_alloc(1), _step(1, "batch"), _alloc(2), _alloc(3, state="BAD"), _alloc(4)]
    path = tmp_path / "noheader.txt"
    path.write_text("\n".join(lines))  # no newline at the end
    con = open_store(tmp_path / "s.duckdb")
    loaded = load_sacct_file(con, path, fields=fields, chunk_lines=1)
    assert len(loaded.batches) == 4
    assert loaded.quarantine["line_no"].to_list() == [4]
    assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 3
    assert con.execute("SELECT source_line FROM steps").fetchall() == [(2,)]


def test_empty_file_lands_one_empty_batch(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("")
    con = open_store(tmp_path / "s.duckdb")
    loaded = load_sacct_file(con, path, chunk_lines=10)
    assert len(loaded.batches) == 1 and loaded.summary.lines_read == 0
    assert loaded.quarantine.height == 0 and loaded.quarantine.columns == ["source", "line_no",
        "record_id", "field", "reason", "raw"]  # fmt: skip


def test_cli_ingest_file_lands_in_chunks_and_prints_the_totals(tmp_path: Path) -> None:
    lines = [HEADER] + [row for job in range(1, 7) for row in (_alloc(job), _step(job, "batch"))]
    path = tmp_path / "cli.txt"
    path.write_text("\n".join(lines) + "\n")
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(app, ["--db", str(db), "ingest", "file", str(path),
                                      "--chunk-lines", "4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 batches" in result.output
    assert "runs 6 new, 0 changed, 0 unchanged; steps 6 new" in result.output
    con = open_store(db)
    batches = con.execute("SELECT count(*), sum(lines_read) FROM ingest_batches").fetchall()
    assert batches == [(3, 12)]
    assert pl.Series(con.execute("SELECT run_key FROM runs").fetchall()).len() == 6


def test_a_batch_the_store_refuses_stops_the_load_after_the_batches_before_it(
    tmp_path: Path,
) -> None:
    lines = [HEADER, *(_alloc(job) for job in range(1, 7))]
    path = tmp_path / "six.txt"
    path.write_text("\n".join(lines) + "\n")
    con = open_store(tmp_path / "s.duckdb")
    # batch id 2 is taken already, so the second chunk's batch cannot be stored
    con.execute(
        "INSERT INTO ingest_batches VALUES (2, 'other', 'slurm', now(), now(), 0, 0, 0, 0, 0, "
        "0, 0, 0, now())"
    )
    with pytest.raises(StoreError, match="could not store the batch"):
        load_sacct_file(con, path, chunk_lines=2)
    assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 1  # the first chunk
    assert not [t for t in threading.enumerate() if t.name.startswith("parse-ahead")]
    again = load_sacct_file(con, path, chunk_lines=2)  # the next batch ids are free: all land
    assert (again.summary.runs_new, again.summary.runs_unchanged) == (5, 1)
