"""Writing ingest batches (runs, steps, quarantined records) and reading runs back.

A batch lands in one transaction: its runs and steps are upserted by key, its quarantined
records (with how they were parsed), the outcome of a quarantine retry, the source's watermark
and its summary row are written, or nothing is. A record whose content hash equals the stored
one changes nothing; one that differs replaces the stored row, whose earlier content is kept in
``run_history`` (``read_run_versions`` numbers them all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from models.errors import StoreError
from models.frames import QUARANTINE, RUNS, STEPS, conform
from models.store.audit_records import record_ingest_batch
from models.store.sources import advance_watermark

# Columns that describe where and when a record was read, not what it says: they do not enter
# the content hash, so the same record read from another file is the same version.
_PROVENANCE = {"source", "source_line"}


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


@dataclass(frozen=True)
class ParsedWith:
    """How a batch was parsed, kept with its quarantined records so they can be parsed again.

    ``fields`` is the field order the parser used (a file's header, or the order given for a
    headerless file); ``cluster`` and ``tz`` the options it ran with.
    """

    parser: str
    fields: tuple[str, ...] | None = None
    cluster: str | None = None
    tz: str | None = None


@dataclass(frozen=True)
class QuarantineRetry:
    """What a retry of quarantined records found, written with the batch that lands them.

    ``resolved``: ids of records that now parse (their runs and steps are the batch's);
    ``still_bad``: (id, field, reason) of those that do not, with the reason found now.
    """

    resolved: Sequence[int] = ()
    still_bad: Sequence[tuple[int, str, str]] = ()


def _hash_sql(schema: dict[str, pl.DataType]) -> str:
    parts = [
        f"coalesce(CAST(\"{name}\" AS VARCHAR), '\\N')"
        for name in schema
        if name not in _PROVENANCE
    ]
    return f"md5(concat_ws('\x1f', {', '.join(parts)}))"


def _upsert(
    con: duckdb.DuckDBPyConnection,
    *,
    table: str,
    key: str,
    frame: pl.DataFrame,
    schema: dict[str, pl.DataType],
    batch_id: int,
    history: str | None,
) -> tuple[int, int, int]:
    """Upsert ``frame`` into ``table`` by ``key``; return (new, changed, unchanged) counts."""
    staged = conform(frame, schema).unique(subset=[key], keep="last", maintain_order=True)
    con.register("incoming", staged.to_arrow())
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *, {_hash_sql(schema)} AS row_hash, "
            f"?::BIGINT AS batch_id, now() AS ingested_at FROM incoming",
            [batch_id],
        )
    finally:
        con.unregister("incoming")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE classified AS "
        f"SELECT s.{key} AS k, t.row_hash IS NULL AS is_new, "
        f"t.row_hash IS NOT NULL AND t.row_hash <> s.row_hash AS is_changed "
        f"FROM staged s LEFT JOIN {table} t ON t.{key} = s.{key}"
    )
    new, changed, unchanged = con.execute(
        "SELECT count(*) FILTER (is_new), count(*) FILTER (is_changed), "
        "count(*) FILTER (NOT is_new AND NOT is_changed) FROM classified"
    ).fetchall()[0]
    if changed:
        if history:
            con.execute(
                f"INSERT INTO {history} SELECT t.*, now(), ? FROM {table} t "
                f"WHERE t.{key} IN (SELECT k FROM classified WHERE is_changed)",
                [batch_id],
            )
        con.execute(
            f"DELETE FROM {table} WHERE {key} IN (SELECT k FROM classified WHERE is_changed)"
        )
    if new or changed:
        con.execute(
            f"INSERT INTO {table} SELECT s.* FROM staged s "
            f"SEMI JOIN (SELECT k FROM classified WHERE is_new OR is_changed) c ON c.k = s.{key}"
        )
    con.execute("DROP TABLE staged")
    con.execute("DROP TABLE classified")
    return int(new), int(changed), int(unchanged)


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
) -> BatchSummary:
    """Land one parsed batch atomically; return what it changed.

    With ``watermark`` (source name, end of the window read), the source's watermark advances
    in the same transaction (``sources.advance_watermark``): both land or neither does.
    ``parsed_with`` is recorded with each quarantined record (what a retry needs to parse it
    again). With ``retry``, the records it names are marked resolved by this batch or given
    their new reason, in the same transaction.
    """
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
            history="run_history",
        )
        steps_counts = _upsert(
            con,
            table="steps",
            key="step_key",
            frame=steps,
            schema=STEPS,
            batch_id=batch_id,
            history=None,
        )
        quarantined = conform(quarantine, QUARANTINE)
        if quarantined.height:
            _quarantine(con, quarantined, batch_id=batch_id, parsed_with=parsed_with)
        if retry is not None:
            _record_retry(con, retry, batch_id=batch_id)
        summary = BatchSummary(
            batch_id, lines_read, *runs_counts, *steps_counts, quarantined.height
        )
        con.execute(
            "INSERT INTO ingest_batches VALUES (?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                batch_id,
                source,
                scheduler,
                started_at,
                lines_read,
                *runs_counts,
                *steps_counts,
                quarantined.height,
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


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    quarantined: pl.DataFrame,
    *,
    batch_id: int,
    parsed_with: ParsedWith | None,
) -> None:
    p = parsed_with
    con.register("q_incoming", quarantined.to_arrow())
    try:
        con.execute(
            "INSERT INTO quarantine (quarantine_id, batch_id, source, line_no, record_id, "
            "field, reason, raw, quarantined_at, parser, fields, parse_cluster, parse_tz, "
            "first_reason, retries) SELECT nextval('quarantine_ids'), ?, "
            "source, line_no, record_id, field, reason, raw, now(), ?, ?::VARCHAR[], ?, ?, "
            "reason, 0 FROM q_incoming q "
            # The same bad record read again is not quarantined twice, whatever line it is on
            # (overlapping scheduled pulls put it elsewhere).
            "WHERE NOT EXISTS (SELECT 1 FROM quarantine o WHERE o.status = 'open' "
            "AND o.source = q.source "
            "AND o.raw IS NOT DISTINCT FROM q.raw AND o.field = q.field)",
            [
                batch_id,
                p.parser if p else None,
                list(p.fields) if p and p.fields is not None else None,
                p.cluster if p else None,
                p.tz if p else None,
            ],
        )
    finally:
        con.unregister("q_incoming")


def _record_retry(con: duckdb.DuckDBPyConnection, retry: QuarantineRetry, *, batch_id: int) -> None:
    """Mark retried records resolved by ``batch_id``, or give them the reason found now."""
    if retry.resolved:
        con.execute(
            "UPDATE quarantine SET status = 'resolved', resolved_at = now(), "
            "resolved_by_batch = ?, retries = coalesce(retries, 0) + 1, last_retry_at = now() "
            "WHERE quarantine_id IN (SELECT unnest(?::BIGINT[])) AND status = 'open'",
            [batch_id, list(retry.resolved)],
        )
    if retry.still_bad:
        frame = pl.DataFrame(
            list(retry.still_bad),
            schema={"quarantine_id": pl.Int64, "field": pl.String, "reason": pl.String},
            orient="row",
        )
        con.register("q_retry", frame.to_arrow())
        try:
            con.execute(
                "UPDATE quarantine SET field = r.field, reason = r.reason, "
                "first_reason = coalesce(quarantine.first_reason, quarantine.reason), "
                "retries = coalesce(quarantine.retries, 0) + 1, last_retry_at = now() "
                "FROM q_retry r WHERE quarantine.quarantine_id = r.quarantine_id "
                "AND quarantine.status = 'open'"
            )
        finally:
            con.unregister("q_retry")


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
    """Return the current version of every run (of ``clusters`` if given) with ``columns``."""
    select = ", ".join(f'"{c}"' for c in columns)
    query = f"SELECT {select} FROM runs"
    params: list[object] = []
    if clusters is not None:
        query += " WHERE cluster IN (SELECT unnest(?::VARCHAR[]))"
        params.append(clusters)
    frame = con.sql(query, params=params).pl()
    return conform(frame, {c: RUNS[c] for c in columns})


def read_quarantine(con: duckdb.DuckDBPyConnection, *, batch_id: int | None = None) -> pl.DataFrame:
    """Return quarantined records (of one batch if given), oldest first."""
    query = "SELECT * FROM quarantine"
    params: list[object] = []
    if batch_id is not None:
        query += " WHERE batch_id = ?"
        params.append(batch_id)
    return con.sql(query + " ORDER BY quarantine_id", params=params).pl()


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
    return con.sql(
        "SELECT * FROM run_versions WHERE run_key = ? ORDER BY version", params=[run_key]
    ).pl()


def read_stored_batches(
    con: duckdb.DuckDBPyConnection, *, run_keys: Sequence[str], step_keys: Sequence[str]
) -> dict[str, int]:
    """Return {key: batch that stored its current content} for the given stored runs and steps."""
    rows = con.execute(
        "SELECT run_key, batch_id FROM runs WHERE run_key IN (SELECT unnest(?::VARCHAR[])) "
        "UNION ALL "
        "SELECT step_key, batch_id FROM steps WHERE step_key IN (SELECT unnest(?::VARCHAR[]))",
        [list(run_keys), list(step_keys)],
    ).fetchall()
    return {str(key): int(batch) for key, batch in rows}


def list_quarantine(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str | None = None,
    status: str | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[pl.DataFrame, int]:
    """Return one page of quarantined records (oldest first) and how many match in all.

    ``status`` is ``open`` or ``resolved`` (None: both); ``ids`` limits to those records.
    """
    where: list[str] = []
    params: list[object] = []
    if source is not None:
        where.append("source = ?")
        params.append(source)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if ids is not None:
        where.append("quarantine_id IN (SELECT unnest(?::BIGINT[]))")
        params.append(list(ids))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = int(con.execute(f"SELECT count(*) FROM quarantine{clause}", params).fetchall()[0][0])
    page = f" LIMIT {int(limit)}" if limit is not None else ""
    frame = con.sql(
        f"SELECT * FROM quarantine{clause} ORDER BY quarantine_id{page} OFFSET {int(offset)}",
        params=params,
    ).pl()
    return frame, total
