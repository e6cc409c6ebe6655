"""What the dashboards read from the store: runs overlapping a time window, ingest batches."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from models.frames import RUNS, UTC_TIME, conform

# The run columns the usage-over-time charts need.
USAGE_SERIES_COLUMNS = (
    "cluster",
    "account",
    "user",
    "alloc_cpus",
    "alloc_gpus",
    "start_at",
    "end_at",
)

INGEST_BATCHES: dict[str, pl.DataType] = {
    "batch_id": pl.Int64(),
    "source": pl.String(),
    "finished_at": UTC_TIME,
    "lines_read": pl.Int64(),
    "runs_landed": pl.Int64(),  # new + changed runs
    "quarantined": pl.Int64(),
}


def read_runs_overlapping(
    con: duckdb.DuckDBPyConnection, *, start: datetime, end: datetime
) -> pl.DataFrame:
    """Return the current runs that were allocated at some time in [start, end).

    Columns ``USAGE_SERIES_COLUMNS``; a run still running has a null end_at.
    """
    select = ", ".join(f'"{c}"' for c in USAGE_SERIES_COLUMNS)
    frame = con.sql(
        f"SELECT {select} FROM runs WHERE start_at IS NOT NULL AND start_at < ? "
        "AND (end_at IS NULL OR end_at > ?)",
        params=[end, start],
    ).pl()
    return conform(frame, {c: RUNS[c] for c in USAGE_SERIES_COLUMNS})


def read_ingest_batches(con: duckdb.DuckDBPyConnection, *, since: datetime) -> pl.DataFrame:
    """Return every ingest batch that finished at or after ``since`` (``INGEST_BATCHES``)."""
    frame = con.sql(
        "SELECT batch_id, source, finished_at, lines_read, runs_new + runs_changed AS runs_landed, "
        "quarantined FROM ingest_batches WHERE finished_at >= ? ORDER BY batch_id",
        params=[since],
    ).pl()
    return conform(frame, INGEST_BATCHES)
