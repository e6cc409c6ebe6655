"""The content hash is unambiguous, and a store upgraded from the old hash sees nothing new.

Before migration 0009 ``row_hash`` was the md5 of the columns cast to text, joined by "\\x1f",
with "\\N" for null: a null job name and the name ``\\N`` (or a reservation ``r`` with the
name ``x<US>y`` and a reservation ``r<US>x`` with the name ``y``) gave one hash, so a real
revision was ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ingest.load import load_sacct_file
from ingest.sources.sacct import parse_sacct
from models.frames import QUARANTINE, RUNS, STEPS, conform
from models.store import db, open_store, write_batch
from models.store.runs import read_run_versions

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HEADER = (
    "JobID|JobIDRaw|Cluster|Partition|QOS|Account|User|Submit|Eligible|Start|End|"
    "ElapsedRaw|Timelimit|ExitCode|State|NNodes|NCPUS|AllocTRES|NodeList|JobName"
)
LINES = [
    "71|71|lab|cpu|normal|chem|alice|2026-11-01T10:00:00|2026-11-01T10:00:00|"
    "2026-11-01T10:00:00|2026-11-01T11:00:00|3600|01:00:00|0:0|COMPLETED|1|4|"
    "billing=4,cpu=4,mem=4000M,node=1|n01|\\N",
    "71.batch|71.batch|lab||||||2026-11-01T10:00:00|2026-11-01T10:00:00|2026-11-01T11:00:00|"
    "3600||0:0|COMPLETED|1|4|cpu=4,mem=4000M,node=1|n01|batch",
    "72|72|lab|cpu|normal|chem|bob|2026-11-01T10:00:00|2026-11-01T10:00:00|"
    "2026-11-01T10:00:00|Unknown|3600|01:00:00|0:0|RUNNING|2|8|"
    "billing=8,cpu=8,mem=8000M,node=2|n[01-02]|sim é|x",
]


def _old_hash_sql(schema: dict[str, pl.DataType]) -> str:
    """The hash before migration 0009 (what an upgraded store holds)."""
    parts = [
        f"coalesce(CAST(\"{name}\" AS VARCHAR), '\\N')"
        for name in schema
        if name not in ("source", "source_line")
    ]
    return f"md5(concat_ws('\x1f', {', '.join(parts)}))"


def _run(job_name: str | None, reservation: str | None = None) -> pl.DataFrame:
    row = {
        "run_key": f"lab/9/{int(T0.timestamp())}",
        "scheduler": "slurm",
        "cluster": "lab",
        "job_id": "9",
        "state": "COMPLETED",
        "submit_at": T0,
        "start_at": T0,
        "end_at": T0 + timedelta(hours=1),
        "reservation": reservation,
        "job_name": job_name,
    }
    return conform(pl.DataFrame([row], schema={k: RUNS[k] for k in row}), RUNS)


def _land(con: duckdb.DuckDBPyConnection, runs: pl.DataFrame, hour: int) -> tuple[int, int, int]:
    s = write_batch(
        con,
        source="push",
        scheduler="slurm",
        runs=runs,
        steps=pl.DataFrame(schema=STEPS),
        quarantine=pl.DataFrame(schema=QUARANTINE),
        lines_read=1,
        started_at=T0 + timedelta(hours=hour),
    )
    return s.runs_new, s.runs_changed, s.runs_unchanged


def test_contents_that_shared_the_old_hash_are_two_versions(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    pairs = [
        (_run(None), _run("\\N")),  # a null and the text \N
        (_run("x\x1fy", "r"), _run("y", "r\x1fx")),  # the separator inside a value
    ]
    old = duckdb.connect()
    for first, second in pairs:  # the old scheme gave each pair one hash
        hashes = {
            old.sql(f"SELECT {_old_hash_sql(RUNS)} FROM frame").fetchall()[0][0]
            for frame in (first, second)
        }
        assert len(hashes) == 1
    assert _land(con, pairs[0][0], 1) == (1, 0, 0)
    assert _land(con, pairs[0][1], 2) == (0, 1, 0)  # the revision is seen now
    assert _land(con, pairs[1][0], 3) == (0, 1, 0)
    assert _land(con, pairs[1][1], 4) == (0, 1, 0)
    versions = read_run_versions(con, f"lab/9/{int(T0.timestamp())}")
    assert versions["job_name"].to_list() == [None, "\\N", "x\x1fy", "y"]
    assert versions["reservation"].to_list() == [None, None, "r", "r\x1fx"]
    assert versions["row_hash"].n_unique() == 4
    assert _land(con, pairs[1][1], 5) == (0, 0, 1)  # the same content again: nothing
    con.close()


def _old_store(path: Path, monkeypatch: pytest.MonkeyPatch) -> duckdb.DuckDBPyConnection:
    """A store migrated up to 0008 holding the file's runs and steps under the old hash, with
    one run stored as A, B, A (three rows then, two versions now)."""
    every = db.migrations()
    monkeypatch.setattr(db, "migrations", lambda: [m for m in every if m.version < 9])
    con = open_store(path)
    monkeypatch.undo()
    batch = parse_sacct("\n".join([HEADER, *LINES]) + "\n", source=str(path.parent / "f.txt"))
    assert batch.runs.height == 2 and batch.steps.height == 1 and batch.quarantine.height == 0
    runs, steps = batch.runs, batch.steps
    edited = runs.filter(pl.col("job_id") == "71").with_columns(pl.lit(7).alias("alloc_cpus"))
    for n, (table, frame, schema) in enumerate(
        [("run_history", runs.filter(pl.col("job_id") == "71"), RUNS),
         ("run_history", edited, RUNS), ("runs", runs, RUNS), ("steps", steps, STEPS)]
    ):  # fmt: skip
        con.register("frame", conform(frame, schema).to_arrow())
        extra = ", now(), 1" if table == "run_history" else ""
        con.execute(
            f"INSERT INTO {table} SELECT *, {_old_hash_sql(schema)}, {n + 1}, "
            f"now() - INTERVAL {4 - n} HOUR{extra} FROM frame"
        )
        con.unregister("frame")
    return con


def test_an_upgraded_store_sees_the_same_file_as_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = _old_store(tmp_path / "s.duckdb", monkeypatch)
    old = dict(con.execute("SELECT run_key, row_hash FROM runs").fetchall())
    assert "0009_order_run_versions.sql" in db.migrate(con)
    new = dict(con.execute("SELECT run_key, row_hash FROM runs").fetchall())
    assert new.keys() == old.keys() and all(new[k] != old[k] for k in new)
    key = next(k for k in new if "/71/" in k)
    versions = read_run_versions(con, key)
    assert versions["alloc_cpus"].to_list() == [7, 4]  # A, B, A: two versions, A current
    assert versions["is_current"].to_list() == [False, True]

    path = tmp_path / "f.txt"
    path.write_text("\n".join([HEADER, *LINES]) + "\n", encoding="utf-8")
    summary = load_sacct_file(con, path).summary
    assert (summary.runs_new, summary.runs_changed, summary.runs_unchanged) == (0, 0, 2)
    assert (summary.steps_new, summary.steps_changed, summary.steps_unchanged) == (0, 0, 1)
    assert dict(con.execute("SELECT run_key, row_hash FROM runs").fetchall()) == new
    assert read_run_versions(con, key).height == 2
    con.close()
