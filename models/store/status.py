"""What the status page reads: per-source totals of the ingest batches."""

from __future__ import annotations

import duckdb
import polars as pl

from models.store.db import read_frame


def read_batch_totals(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return one row per source with its batch totals, by source name.

    Columns: source, batches, last_batch_id, last_finished_at, lines_read, runs_landed
    (new + changed runs), quarantined, last_runs_landed and last_quarantined (of the latest
    batch).
    """
    return read_frame(
        con,
        "SELECT source, count(*) AS batches, max(batch_id) AS last_batch_id, "
        "max(finished_at) AS last_finished_at, sum(lines_read) AS lines_read, "
        "sum(runs_new + runs_changed) AS runs_landed, sum(quarantined) AS quarantined, "
        "arg_max(runs_new + runs_changed, batch_id) AS last_runs_landed, "
        "arg_max(quarantined, batch_id) AS last_quarantined "
        "FROM ingest_batches GROUP BY source ORDER BY source",
    )
