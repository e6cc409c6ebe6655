"""Writing ingest batches (runs, steps, quarantined records) and reading runs back.

A batch lands in one transaction: its runs and steps are upserted by key, its quarantined
records (with how they were parsed), the outcome of a quarantine retry, the source's watermark
and its summary row are written, or nothing is. A record whose content hash equals the stored
one changes nothing; one that differs replaces the stored row, whose earlier content is kept in
``run_history`` (``read_run_versions`` numbers them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from models.errors import StoreError
from models.frames import QUARANTINE, RUNS, conform
from models.store.audit_records import record_ingest_batch
from models.store.db import read_frame, read_snapshot
from models.store.policies import PolicyVersion, require_active_policy
from models.store.quarantine import ParsedWith, QuarantineRetry, write_quarantined, write_retry
from models.store.sources import advance_watermark
from models.store.staging import (
    PROGRESS_SQL,
    PROVENANCE,
    first_per_sql,
    record_batches,
    staged_frame,
)
from models.store.steps import upsert_steps


@dataclass(frozen=True)
class BatchSummary:
    batch_id: int
    lines_read: int
    runs_new: int
    runs_changed: int
    runs_unchanged: int
    steps_new: int
    steps_changed: int
    steps_unchanged: int
    quarantined: int


def _hash_sql(schema: dict[str, pl.DataType]) -> str:
    """Return the SQL of a row's content hash: MD5 of a JSON object of its content columns.

    JSON quotes and escapes every string, nests lists and structs and writes null as ``null``,
    so two different contents never share an encoding (a value may hold any character). Times
    enter as microseconds since the epoch, so the session's time zone does not matter.
    Migration 0009 recomputed the stored hashes with this expression: changing it (or adding a
    content column) needs a migration that recomputes them again.
    """
    parts = [
        f'"{name}" := epoch_us("{name}")'
        if isinstance(dtype, pl.Datetime)
        else f'"{name}" := "{name}"'
        for name, dtype in schema.items()
        if name not in PROVENANCE
    ]
    return f"md5(to_json(struct_pack({', '.join(parts)})))"


def _upsert(
    con: duckdb.DuckDBPyConnection,
    *,
    table: str,
    key: str,
    frame: pl.DataFrame,
    schema: dict[str, pl.DataType],
    batch_id: int,
    observed_at: datetime,
    history: str,
) -> tuple[int, int, int]:
    """Merge ``frame`` into ``table`` by ``key``; return (new, changed, unchanged) key counts.

    A key's current content is its *newest* version whatever the order they arrive in: the
    greatest (observed_at, lifecycle progress, row_hash), a content's ``observed_at`` being the
    latest time any delivery of it was observed (``frame``'s own ``observed_at`` column where
    it has one, else ``observed_at``). Every other distinct content goes to ``history``.
    ``changed`` counts keys that gained a version or whose current content changed. (Steps,
    which keep no history, land by ``models.store.steps``.)
    """
    staged = staged_frame(frame, schema, observed_at)
    hashed = (
        f"SELECT *, {_hash_sql(schema)} AS row_hash, ?::BIGINT AS batch_id, "
        f"now() AS ingested_at FROM incoming"
    )
    unique = staged[key].n_unique() == staged.height
    if not unique:
        # One row per (key, content): the latest observation, and of those the later line.
        staged = staged.with_row_index("_line")
        hashed = first_per_sql(hashed, partition=f"{key}, row_hash", order="observed_at DESC")
    con.register("incoming", record_batches(staged))
    try:
        keys = f"SEMI JOIN (SELECT DISTINCT {key} FROM incoming) s ON t.{key} = s.{key}"
        stored = (
            f"SELECT {key} AS k, row_hash, observed_at, {PROGRESS_SQL} AS progress, "
            f"true AS was_current FROM {table} t {keys} "
            f"UNION ALL SELECT {key}, row_hash, observed_at, {PROGRESS_SQL}, false "
            f"FROM {history} t {keys}"
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE stored AS {stored}")
        if unique and not con.execute("SELECT count(*) FROM stored").fetchall()[0][0]:
            # Every key is new and comes once (a first load): each row is its run's only
            # version, so it goes straight into the table, hashed on the way.
            con.execute(f"INSERT INTO {table} BY NAME {hashed}", [batch_id])
            con.execute("DROP TABLE stored")
            return staged.height, 0, 0
        con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS {hashed}", [batch_id])
    finally:
        con.unregister("incoming")
    # A stored content observed again later: its observed_at moves to the later time.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE bumped AS SELECT s.{key} AS k, s.row_hash, "
        f"s.observed_at FROM staged s JOIN stored t ON t.k = s.{key} AND t.row_hash = s.row_hash "
        f"WHERE t.observed_at IS NULL OR s.observed_at > t.observed_at"
    )
    bumped = con.execute("SELECT count(*) FROM bumped").fetchall()[0][0]
    if bumped:
        for target in (table, history):
            con.execute(
                f"UPDATE {target} SET observed_at = b.observed_at FROM bumped b "
                f"WHERE {target}.{key} = b.k AND {target}.row_hash = b.row_hash"
            )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE ranked AS SELECT *, row_number() OVER ("
        f"PARTITION BY k ORDER BY observed_at DESC NULLS LAST, progress DESC, row_hash DESC"
        f") = 1 AS is_current FROM ("
        f"SELECT k, row_hash, max(observed_at) AS observed_at, max(progress) AS progress, "
        f"bool_or(was_stored) AS was_stored, bool_or(was_current) AS was_current FROM ("
        f"SELECT k, row_hash, observed_at, progress, true AS was_stored, was_current FROM stored "
        f"UNION ALL SELECT {key}, row_hash, observed_at, {PROGRESS_SQL}, false, false "
        f"FROM staged) GROUP BY k, row_hash)"
    )
    new, changed, unchanged = con.execute(
        "WITH per_key AS (SELECT k, NOT bool_or(was_stored) AS is_new, "
        "bool_or(was_stored) AND (bool_or(NOT was_stored) OR bool_or(was_current <> is_current)) "
        "AS is_changed "
        "FROM ranked GROUP BY k) "
        "SELECT count(*) FILTER (is_new), count(*) FILTER (is_changed), "
        "count(*) FILTER (NOT is_new AND NOT is_changed) FROM per_key"
    ).fetchall()[0]
    if changed:
        _move_versions(con, table=table, key=key, history=history, batch_id=batch_id)
    if new or changed:
        # Contents stored for the first time: the current one to the table, others to history.
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT s.* FROM staged s JOIN ranked r "
            f"ON r.k = s.{key} AND r.row_hash = s.row_hash WHERE NOT r.was_stored AND r.is_current"
        )
        con.execute(
            f"INSERT INTO {history} BY NAME SELECT s.*, now() AS superseded_at, "
            f"?::BIGINT AS superseded_by_batch FROM staged s JOIN ranked r "
            f"ON r.k = s.{key} AND r.row_hash = s.row_hash "
            f"WHERE NOT r.was_stored AND NOT r.is_current",
            [batch_id],
        )
    for temp in ("staged", "stored", "bumped", "ranked"):
        con.execute(f"DROP TABLE {temp}")
    return int(new), int(changed), int(unchanged)


def _move_versions(
    con: duckdb.DuckDBPyConnection, *, table: str, key: str, history: str, batch_id: int
) -> None:
    """Move stored contents that stopped being current to ``history`` and stored contents of
    ``history`` that became current back to ``table``."""
    demoted = (
        f"(SELECT k, row_hash FROM ranked WHERE was_current AND NOT is_current) d "
        f"ON d.k = t.{key} AND d.row_hash = t.row_hash"
    )
    promoted = (
        f"(SELECT k, row_hash FROM ranked WHERE was_stored AND NOT was_current AND is_current) p "
        f"ON p.k = t.{key} AND p.row_hash = t.row_hash"
    )
    con.execute(
        f"INSERT INTO {history} BY NAME SELECT t.*, now() AS superseded_at, "
        f"?::BIGINT AS superseded_by_batch FROM {table} t SEMI JOIN {demoted}",
        [batch_id],
    )
    con.execute(
        f"INSERT INTO {table} BY NAME SELECT t.* EXCLUDE (superseded_at, superseded_by_batch) "
        f"FROM {history} t SEMI JOIN {promoted}"
    )
    con.execute(
        f"DELETE FROM {history} t USING (SELECT k, row_hash FROM ranked "
        f"WHERE was_stored AND NOT was_current AND is_current) p "
        f"WHERE p.k = t.{key} AND p.row_hash = t.row_hash"
    )
    con.execute(
        f"DELETE FROM {table} t USING (SELECT k, row_hash FROM ranked "
        f"WHERE was_current AND NOT is_current) d WHERE d.k = t.{key} AND d.row_hash = t.row_hash"
    )


def write_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    scheduler: str,
    runs: pl.DataFrame,
    steps: pl.DataFrame,
    quarantine: pl.DataFrame,
    lines_read: int,
    started_at: datetime,
    watermark: tuple[str, datetime] | None = None,
    parsed_with: ParsedWith | None = None,
    retry: QuarantineRetry | None = None,
    observed_at: datetime | None = None,
) -> BatchSummary:
    """Land one parsed batch atomically; return what it changed.

    ``observed_at`` is when the source saw these records (default ``started_at``; a frame's own
    ``observed_at`` column wins for its rows): it orders a run's versions, so a record observed
    earlier than the stored one goes to history instead of replacing it (see ``_upsert``).

    With ``watermark`` (source name, end of the window read), the source's watermark advances
    in the same transaction (``sources.advance_watermark``): both land or neither does.
    ``parsed_with`` is recorded with each quarantined record (what a retry needs to parse it
    again). With ``retry``, the records it names are marked resolved by this batch or given
    their new reason, in the same transaction.
    """
    when = observed_at or started_at
    try:
        con.execute("BEGIN TRANSACTION")
        batch_id = int(con.execute("SELECT nextval('batch_ids')").fetchall()[0][0])
        if watermark is not None:
            advance_watermark(
                con,
                source=watermark[0],
                watermark=watermark[1],
                attempted_at=started_at,
                batch_id=batch_id,
            )
        runs_counts = _upsert(
            con,
            table="runs",
            key="run_key",
            frame=runs,
            schema=RUNS,
            batch_id=batch_id,
            observed_at=when,
            history="run_history",
        )
        steps_counts = upsert_steps(con, steps, batch_id=batch_id, observed_at=when)
        quarantined = conform(quarantine, QUARANTINE)
        if quarantined.height:
            write_quarantined(con, quarantined, batch_id=batch_id, parsed_with=parsed_with)
        if retry is not None:
            write_retry(con, retry, batch_id=batch_id)
        summary = BatchSummary(
            batch_id, lines_read, *runs_counts, *steps_counts, quarantined.height
        )
        con.execute(
            "INSERT INTO ingest_batches (batch_id, source, scheduler, started_at, finished_at, "
            "lines_read, runs_new, runs_changed, runs_unchanged, steps_new, steps_changed, "
            "steps_unchanged, quarantined, observed_at) "
            "VALUES (?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                batch_id,
                source,
                scheduler,
                started_at,
                lines_read,
                *runs_counts,
                *steps_counts,
                quarantined.height,
                when,
            ],
        )
        record_ingest_batch(
            con, batch_id=batch_id, source=source, scheduler=scheduler, counts=vars(summary)
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise StoreError(f"could not store the batch from {source}: {exc}") from exc
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return summary


# The run columns the usage and fair-share models read.
USAGE_COLUMNS = (
    "run_key",
    "cluster",
    "account",
    "user",
    "partition",
    "qos",
    "state",
    "tres",
    "alloc_cpus",
    "start_at",
    "end_at",
    "elapsed_s",
    # which runs are one requeued job (the policy's fairshare.count_requeued_runs)
    "job_id_raw",
    "submit_at",
)

# The run columns fair-share itself needs (``compute_factors`` and the check for associations
# missing from the policy): the usage columns without run_key, state and elapsed_s. At 10M runs
# reading these instead of ``USAGE_COLUMNS`` saves the unique run_key strings (see
# docs/benchmarks.md, "Scale: 10M runs").
FACTOR_COLUMNS = tuple(c for c in USAGE_COLUMNS if c not in ("run_key", "state", "elapsed_s"))


def read_runs(
    con: duckdb.DuckDBPyConnection,
    *,
    columns: tuple[str, ...] = USAGE_COLUMNS,
    clusters: list[str] | None = None,
) -> pl.DataFrame:
    """Return the current version of every run (of ``clusters`` if given) with ``columns``
    (each once, in their first order)."""
    columns = tuple(dict.fromkeys(columns))
    select = ", ".join(f'"{c}"' for c in columns)
    query = f"SELECT {select} FROM runs"
    params: list[object] = []
    if clusters is not None:
        query += " WHERE cluster IN (SELECT unnest(?::VARCHAR[]))"
        params.append(clusters)
    frame = con.sql(query, params=params).pl()
    return conform(frame, {c: RUNS[c] for c in columns})


def has_batch_from(con: duckdb.DuckDBPyConnection, source: str) -> bool:
    """Return whether a batch from ``source`` was ever stored."""
    rows = con.execute("SELECT 1 FROM ingest_batches WHERE source = ? LIMIT 1", [source])
    return bool(rows.fetchall())


def read_run_versions(con: duckdb.DuckDBPyConnection, run_key: str) -> pl.DataFrame:
    """Return every stored content of a run, oldest first (empty for an unknown run).

    Columns: ``version`` (1 = first stored), the ``RUNS`` columns, ``row_hash``, ``batch_id``
    (the batch that first stored this content), ``ingested_at``, ``superseded_at`` and
    ``superseded_by_batch`` (null for the current version) and ``is_current``.
    """
    return read_frame(
        con, "SELECT * FROM run_versions WHERE run_key = ? ORDER BY version", params=[run_key]
    )


def read_policy_and_runs(
    con: duckdb.DuckDBPyConnection, *, columns: tuple[str, ...] = USAGE_COLUMNS
) -> tuple[PolicyVersion, pl.DataFrame]:
    """Return the active policy version and the current runs of its clusters with ``columns``,
    read in one transaction; NoActivePolicy when no policy was ever loaded."""
    with read_snapshot(con):
        active = require_active_policy(con)
        clusters = [c.name for c in active.policy.clusters]
        return active, read_runs(con, columns=columns, clusters=clusters)
