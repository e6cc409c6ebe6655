"""Reconciliations: a wide pull of a source compared with the store, and the stored reports.

``compare_with_store`` reads what the store holds for the pulled runs *before* the pull lands:
per UTC day (by ``end_at``, by ``submit_at`` for runs that have not ended) the runs of the pull
and of the store, the pulled runs the store lacks (gaps) and those it holds with other content
(same ``run_key``, different content hash, as ``write_batch`` compares them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb
import polars as pl

from models.frames import RUNS, conform
from models.store.runs import _hash_sql

KEYS_KEPT = 1000  # run keys of each kind kept in a stored report


@dataclass(frozen=True)
class DayCount:
    day: date
    source_runs: int
    store_runs: int


@dataclass(frozen=True)
class Comparison:
    """What the store holds of a pull: counts per day, gaps and changed runs (all of them)."""

    days: list[DayCount]
    gap_keys: list[str]
    changed_keys: list[str]


@dataclass(frozen=True)
class Reconciliation:
    """One stored reconciliation of ``source`` over ``[window_start, window_end]``."""

    source: str
    cluster: str | None
    started_at: datetime
    finished_at: datetime
    window_start: datetime
    window_end: datetime
    status: str  # "ok" or "failed"
    error: str | None = None
    source_runs: int = 0
    store_runs: int = 0
    gaps: int = 0
    changed: int = 0
    quarantined: int = 0
    batch_id: int | None = None
    days: list[DayCount] = field(default_factory=list)
    gap_keys: list[str] = field(default_factory=list)
    changed_keys: list[str] = field(default_factory=list)
    reconciliation_id: int | None = None


_DAY = "CAST(coalesce(end_at, submit_at) AS DATE)"


def compare_with_store(
    con: duckdb.DuckDBPyConnection,
    runs: pl.DataFrame,
    *,
    clusters: list[str],
    first_day: date,
    last_day: date,
) -> Comparison:
    """Return how the stored runs of ``clusters`` differ from ``runs`` (``frames.RUNS``).

    Day counts cover ``[first_day, last_day]`` (UTC; the cursor's time zone must be UTC).
    """
    staged = conform(runs, RUNS)
    con.register("pulled", staged.to_arrow())
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE pulled_hashed AS SELECT run_key, {_hash_sql(RUNS)} "
            f"AS row_hash, {_DAY} AS day FROM pulled"
        )
    finally:
        con.unregister("pulled")
    try:
        keys = con.execute(
            "SELECT p.run_key, r.row_hash IS NULL AS gap FROM pulled_hashed p "
            "LEFT JOIN runs r USING (run_key) "
            "WHERE r.row_hash IS NULL OR r.row_hash <> p.row_hash ORDER BY p.run_key"
        ).fetchall()
        rows = con.execute(
            f"WITH s AS (SELECT day, count(*) AS n FROM pulled_hashed GROUP BY day), "
            f"t AS (SELECT {_DAY} AS day, count(*) AS n FROM runs "
            f"WHERE cluster IN (SELECT unnest(?::VARCHAR[])) GROUP BY ALL) "
            f"SELECT d::DATE AS day, coalesce(s.n, 0), coalesce(t.n, 0) "
            f"FROM range(?::DATE, ?::DATE + 1, INTERVAL 1 DAY) AS g(d) "
            f"LEFT JOIN s ON s.day = d::DATE LEFT JOIN t ON t.day = d::DATE ORDER BY day",
            [clusters, first_day, last_day],
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS pulled_hashed")
    return Comparison(
        days=[DayCount(day, int(s), int(t)) for day, s, t in rows],
        gap_keys=[key for key, gap in keys if gap],
        changed_keys=[key for key, gap in keys if not gap],
    )


def write_reconciliation(con: duckdb.DuckDBPyConnection, report: Reconciliation) -> int:
    """Store ``report`` (at most ``KEYS_KEPT`` keys of each kind); return its id."""
    days = json.dumps(
        [
            {"day": d.day.isoformat(), "source_runs": d.source_runs, "store_runs": d.store_runs}
            for d in report.days
        ]
    )
    row = con.execute(
        "INSERT INTO reconciliations VALUES (nextval('reconciliation_ids'), ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING reconciliation_id",
        [
            report.source,
            report.cluster,
            report.started_at,
            report.finished_at,
            report.window_start,
            report.window_end,
            report.status,
            report.error,
            report.source_runs,
            report.store_runs,
            report.gaps,
            report.changed,
            report.quarantined,
            report.batch_id,
            days,
            report.gap_keys[:KEYS_KEPT],
            report.changed_keys[:KEYS_KEPT],
        ],
    ).fetchall()
    return int(row[0][0])


_COLUMNS = (
    "source, cluster, started_at, finished_at, window_start, window_end, status, error, "
    "source_runs, store_runs, gaps, changed, quarantined, batch_id, days, gap_keys, "
    "changed_keys, reconciliation_id"
)


def _report(row: tuple[object, ...]) -> Reconciliation:
    values = list(row)
    values[14] = [
        DayCount(date.fromisoformat(d["day"]), d["source_runs"], d["store_runs"])
        for d in json.loads(str(values[14]))
    ]
    return Reconciliation(*values)  # type: ignore[arg-type]


def read_last_reconciliations(con: duckdb.DuckDBPyConnection) -> dict[str, Reconciliation]:
    """Return the latest reconciliation of each source, by source name."""
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM reconciliations "
        f"QUALIFY row_number() OVER (PARTITION BY source ORDER BY reconciliation_id DESC) = 1"
    ).fetchall()
    return {row[0]: _report(row) for row in rows}
