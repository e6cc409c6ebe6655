"""The state of scheduled sources: watermark, last success and attempt, failures.

A source's watermark is the end of the last window it loaded. It is written only by
``advance_watermark``, which ``write_batch`` calls inside the batch's transaction, so the
watermark and the records it covers land together or not at all. A failed attempt records its
error and counts one more consecutive failure without touching the watermark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from models.frames import UTC_TIME, conform

SOURCE_STATES: dict[str, pl.DataType] = {
    "source": pl.String(),
    "cluster": pl.String(),
    "watermark": UTC_TIME,  # end of the last window loaded
    "last_success_at": UTC_TIME,
    "last_attempt_at": UTC_TIME,
    "last_error": pl.String(),  # of the latest failure while failing, else null
    "consecutive_failures": pl.Int32(),
    "degraded": pl.Boolean(),  # consecutive_failures > 0
    "last_batch_id": pl.Int64(),  # the batch the last success stored
}


@dataclass(frozen=True)
class SourceState:
    source: str
    cluster: str | None
    watermark: datetime | None
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    last_batch_id: int | None

    @property
    def degraded(self) -> bool:
        return self.consecutive_failures > 0


_COLUMNS = (
    "source, cluster, watermark, last_success_at, last_attempt_at, last_error, "
    "consecutive_failures, last_batch_id"
)


def ensure_source(con: duckdb.DuckDBPyConnection, source: str, *, cluster: str | None) -> None:
    """Record that ``source`` exists (for ``cluster``), keeping any state it has."""
    con.execute(
        "INSERT INTO source_state (source, cluster) VALUES (?, ?) "
        "ON CONFLICT (source) DO UPDATE SET cluster = excluded.cluster",
        [source, cluster],
    )


def read_source_state(con: duckdb.DuckDBPyConnection, source: str) -> SourceState | None:
    """Return the state of ``source``, or None if it was never recorded."""
    rows = con.execute(f"SELECT {_COLUMNS} FROM source_state WHERE source = ?", [source]).fetchall()
    return SourceState(*rows[0]) if rows else None


def read_watermark(con: duckdb.DuckDBPyConnection, source: str) -> datetime | None:
    """Return the end of the last window ``source`` loaded, or None before its first load."""
    state = read_source_state(con, source)
    return state.watermark if state else None


def read_source_states(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return one row per source (``SOURCE_STATES``), by name."""
    frame = con.sql(
        f"SELECT {_COLUMNS}, consecutive_failures > 0 AS degraded FROM source_state ORDER BY source"
    ).pl()
    return conform(frame, SOURCE_STATES)


def record_source_failure(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    cluster: str | None,
    error: str,
    attempted_at: datetime,
) -> None:
    """Count one more failure of ``source`` with its error; the watermark stays."""
    con.execute(
        "INSERT INTO source_state (source, cluster, last_attempt_at, last_error, "
        "consecutive_failures) VALUES (?, ?, ?, ?, 1) ON CONFLICT (source) DO UPDATE SET "
        "cluster = excluded.cluster, last_attempt_at = excluded.last_attempt_at, "
        "last_error = excluded.last_error, "
        "consecutive_failures = source_state.consecutive_failures + 1",
        [source, cluster, attempted_at, error],
    )


def clear_source_failure(
    con: duckdb.DuckDBPyConnection, *, source: str, cluster: str | None
) -> None:
    """Clear the failures and last error of ``source`` after a success that loads no window of
    its own (a reconciliation); its watermark and last attempt stay."""
    con.execute(
        "INSERT INTO source_state (source, cluster, consecutive_failures) VALUES (?, ?, 0) "
        "ON CONFLICT (source) DO UPDATE SET last_error = NULL, consecutive_failures = 0",
        [source, cluster],
    )


def advance_watermark(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    watermark: datetime,
    attempted_at: datetime,
    batch_id: int,
) -> None:
    """Move ``source``'s watermark to ``watermark`` (never backwards) and clear its failures.

    Runs inside the caller's transaction: ``write_batch`` calls it with the batch it lands.
    """
    con.execute(
        "INSERT INTO source_state (source, watermark, last_success_at, last_attempt_at, "
        "consecutive_failures, last_batch_id) VALUES (?, ?, ?, ?, 0, ?) "
        "ON CONFLICT (source) DO UPDATE SET "
        "watermark = greatest(coalesce(source_state.watermark, excluded.watermark), "
        "excluded.watermark), last_success_at = excluded.last_success_at, "
        "last_attempt_at = excluded.last_attempt_at, last_error = NULL, "
        "consecutive_failures = 0, last_batch_id = excluded.last_batch_id",
        [source, watermark, attempted_at, attempted_at, batch_id],
    )
