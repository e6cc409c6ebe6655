"""What landing runs and steps share: the columns that are provenance, a record's progress,
and handing a polars frame to DuckDB so that its scan runs on all threads."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa

from models.frames import UTC_TIME, conform

# Columns that describe where and when a record was read, not what it says: they are not part
# of its content, so the same record read from another file is the same version.
PROVENANCE = frozenset({"source", "source_line"})


def progress_sql(alias: str | None = None) -> str:
    """Return SQL of how far a record (of ``alias`` where given) had got in its run's life:
    0 not started (pending), 1 started and not ended (running), 2 ended. Between versions
    observed at the same time the further one is newer."""
    p = f"{alias}." if alias else ""
    return (
        f"(CASE WHEN {p}end_at IS NOT NULL THEN 2 WHEN {p}start_at IS NOT NULL THEN 1 ELSE 0 END)"
    )


PROGRESS_SQL = progress_sql()

# Rows per Arrow record batch handed to DuckDB: with several batches its scan (and the content
# hash computed on the way) runs on all its threads instead of one.
_BATCH_ROWS = 122_880


def record_batches(frame: pl.DataFrame) -> pa.Table:
    """Return ``frame`` as an Arrow table cut into record batches of ``_BATCH_ROWS`` rows."""
    table = frame.to_arrow()
    return pa.Table.from_batches(table.to_batches(max_chunksize=_BATCH_ROWS), schema=table.schema)


def staged_frame(
    frame: pl.DataFrame, schema: dict[str, pl.DataType], observed_at: datetime
) -> pl.DataFrame:
    """Return ``frame`` conformed to ``schema`` plus ``observed_at``: its own column where it
    has one, else (and for its nulls) ``observed_at``."""
    return conform(frame, {**schema, "observed_at": UTC_TIME}).with_columns(
        pl.col("observed_at").fill_null(pl.lit(observed_at, UTC_TIME))
    )


def first_per_sql(select: str, *, partition: str, order: str) -> str:
    """Return SQL keeping one row of ``select`` per ``partition``: the first by ``order``, then
    the later line (``select`` has a ``_line`` column: the row's position in its frame)."""
    return (
        f"SELECT * EXCLUDE (_line, _n) FROM (SELECT *, row_number() OVER (PARTITION BY "
        f"{partition} ORDER BY {order}, _line DESC) AS _n FROM ({select}) incoming) WHERE _n = 1"
    )
