"""A first load (every key new) goes straight into the tables; what it stores is what the
general upsert stores for the same records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ingest.sources.sacct import SACCT_FORMAT, SacctBatch, parse_sacct
from models.store import Connection, open_store, write_batch

T0 = datetime(2026, 11, 2, tzinfo=UTC)
HEADER = "|".join(SACCT_FORMAT)
RUN = (
    "{id}|{id}|lab|cpu|normal|chem|alice|2026-11-01T10:00:00|2026-11-01T10:00:00|"
    "2026-11-01T10:00:00|2026-11-01T11:00:00|01:00:00|3600|02:00:00|0:0|COMPLETED|2|8|8G|"
    "billing=8,cpu=8,mem=8G,node=2,gres/gpu:a100=2|n[01-02]||sim é|x"
)
STEP = (
    "{id}.batch|{id}.batch|lab|||chem||2026-11-01T10:00:00|2026-11-01T10:00:00|"
    "2026-11-01T10:00:00|2026-11-01T11:00:00|01:00:00|3600||0:0|COMPLETED|1|8||"
    "cpu=8,mem=8G,node=1|n01||batch"
)


def parsed(*ids: int) -> SacctBatch:
    lines = [HEADER] + [line.format(id=i) for i in ids for line in (RUN, STEP)]
    return parse_sacct("\n".join(lines), source="dump.txt")


def land(con: Connection, batch: SacctBatch) -> tuple[int, ...]:
    summary = write_batch(
        con, source="dump.txt", scheduler="slurm", runs=batch.runs, steps=batch.steps,
        quarantine=batch.quarantine, lines_read=batch.lines_read, started_at=T0,
    )  # fmt: skip
    return summary.runs_new, summary.runs_changed, summary.steps_new, summary.steps_changed


def stored(con: Connection, table: str, key: str, keys: list[str]) -> pl.DataFrame:
    frame = con.sql(
        f"SELECT * EXCLUDE (batch_id, ingested_at) FROM {table} "
        f"WHERE {key} IN (SELECT unnest(?::VARCHAR[])) ORDER BY {key}",
        params=[keys],
    ).pl()
    return frame


def test_a_first_load_stores_what_the_general_upsert_stores(tmp_path: Path) -> None:
    batch = parsed(11, 12, 13)
    first = open_store(tmp_path / "first.duckdb")
    general = open_store(tmp_path / "general.duckdb")
    land(general, parsed(11))  # one key already stored: the batch below takes the general path

    assert land(first, batch) == (3, 0, 3, 0)
    assert land(general, batch) == (2, 0, 2, 0)
    run_keys, step_keys = batch.runs["run_key"].to_list(), batch.steps["step_key"].to_list()
    assert stored(first, "runs", "run_key", run_keys).equals(
        stored(general, "runs", "run_key", run_keys)
    )
    assert stored(first, "steps", "step_key", step_keys).equals(
        stored(general, "steps", "step_key", step_keys)
    )
    assert first.sql("SELECT count(*) FROM run_history").fetchall() == [(0,)]


def test_a_first_load_with_a_key_twice_keeps_one_version_current(tmp_path: Path) -> None:
    once = parsed(21)
    twice = SacctBatch(
        runs=pl.concat([once.runs, once.runs.with_columns(pl.lit("renamed").alias("job_name"))]),
        steps=once.steps,
        quarantine=once.quarantine,
        lines_read=once.lines_read,
    )
    con = open_store(tmp_path / "store.duckdb")

    assert land(con, twice) == (1, 0, 1, 0)
    assert con.sql("SELECT count(*) FROM runs").fetchall() == [(1,)]
    assert con.sql("SELECT count(*) FROM run_history").fetchall() == [(1,)]
