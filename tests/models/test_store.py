"""The store: migrations with checksums, atomic idempotent batches, one writer at a time."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from models.errors import MigrationError, StoreError
from models.frames import QUARANTINE, RUNS, STEPS, conform
from models.policy import Association, Cluster, Policy
from models.store import (
    connect,
    migrate,
    open_store,
    read_active_policy,
    read_quarantine,
    read_runs,
    write_batch,
    write_policy,
)
from models.store import db as store_db

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _runs(accounts: list[str]) -> pl.DataFrame:
    n = len(accounts)
    return conform(
        pl.DataFrame(
            {
                "run_key": [f"c/{i}/0" for i in range(n)],
                "scheduler": ["slurm"] * n,
                "cluster": ["c"] * n,
                "account": accounts,
                "user": ["u"] * n,
                "tres": [[{"name": "cpu", "count": 2.0}]] * n,
                "start_at": [T0] * n,
                "nodes": [["n1", "n2"]] * n,
                "source": ["f"] * n,
            }
        ),
        RUNS,
    )


def _load(con, runs: pl.DataFrame, *, quarantine: pl.DataFrame | None = None, source="f"):
    return write_batch(
        con,
        source=source,
        scheduler="slurm",
        runs=runs,
        steps=pl.DataFrame(schema=STEPS),
        quarantine=quarantine if quarantine is not None else pl.DataFrame(schema=QUARANTINE),
        lines_read=runs.height,
        started_at=T0,
    )


def test_migrations_apply_once_and_edited_ones_are_refused(tmp_path, monkeypatch):
    con = open_store(tmp_path / "s.duckdb")
    assert migrate(con) == []  # nothing pending the second time
    edited = [
        store_db.Migration(m.version, m.name, m.sql + "\n-- edited") for m in store_db.migrations()
    ]
    monkeypatch.setattr(store_db, "migrations", lambda: edited)
    with pytest.raises(MigrationError, match="was edited after it was applied"):
        migrate(con)


def test_same_batch_twice_changes_nothing(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    bad = conform(
        pl.DataFrame({"source": ["f"], "line_no": [7], "field": ["State"], "reason": ["x"]}),
        QUARANTINE,
    )
    first = _load(con, _runs(["a", "b", "c"]), quarantine=bad)
    second = _load(con, _runs(["a", "b", "c"]), quarantine=bad)
    assert (first.runs_new, first.runs_unchanged) == (3, 0)
    assert (second.runs_new, second.runs_changed, second.runs_unchanged) == (0, 0, 3)
    assert read_runs(con).height == 3
    assert read_quarantine(con).height == 1  # the same bad line is not quarantined twice


def test_changed_record_replaces_and_keeps_the_old_version(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    _load(con, _runs(["a", "b"]))
    summary = _load(con, _runs(["a", "z"]), source="another/file")
    assert (summary.runs_new, summary.runs_changed, summary.runs_unchanged) == (0, 1, 1)
    runs = read_runs(con).sort("run_key")
    assert runs["account"].to_list() == ["a", "z"]
    history = con.execute("SELECT run_key, account FROM run_history").fetchall()
    assert history == [("c/1/0", "b")]


def test_rows_survive_the_round_trip_with_their_types(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    runs = _runs(["a"])
    _load(con, runs)
    back = read_runs(con, columns=tuple(RUNS))
    assert back.schema == runs.schema
    assert back.row(0) == runs.row(0)


def test_a_failed_batch_leaves_nothing(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    broken = _runs(["a"]).with_columns(cluster=pl.lit(None, pl.String))  # NOT NULL violated
    with pytest.raises(StoreError, match="could not store the batch"):
        _load(con, broken)
    assert read_runs(con).height == 0
    assert con.execute("SELECT count(*) FROM ingest_batches").fetchall()[0][0] == 0


def test_policy_versions_are_recorded_once_per_content(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    policy = Policy(
        clusters=[Cluster(name="c")],
        associations=[Association(cluster="c", account="root")],
    )
    assert write_policy(con, policy, origin="a.toml") == (1, True)
    assert write_policy(con, policy, origin="b.toml") == (1, False)
    changed = policy.model_copy(
        update={
            "associations": [
                *policy.associations,
                Association(cluster="c", account="x", parent="root"),
            ]
        }
    )
    assert write_policy(con, changed, origin="c.toml") == (2, True)
    active = read_active_policy(con)
    assert active is not None and active.version_id == 2 and active.policy == changed


def test_second_process_is_told_who_holds_the_file(tmp_path):
    path = tmp_path / "s.duckdb"
    holder = open_store(path)
    probe = (
        "import sys\n"
        "from models.store import connect\n"
        "from models.errors import StoreLocked\n"
        f"try:\n    connect({str(path)!r})\nexcept StoreLocked as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout
    assert "is in use by" in out and "PID" in out and "fairledger serve" in out
    holder.close()
    connect(path).close()  # free again once the holder is gone
