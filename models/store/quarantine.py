"""Quarantined records: written with the batch that read them, read back, retried.

A record a parser refused is kept with where it came from, why, and how it was parsed
(``ParsedWith``), so a retry after a parser or policy fix can parse it again; a retry's outcome
(``QuarantineRetry``) is written with the batch that lands the records it fixed. Nothing here is
ever deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from models.store.db import read_frame


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


def write_quarantined(
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


def write_retry(con: duckdb.DuckDBPyConnection, retry: QuarantineRetry, *, batch_id: int) -> None:
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


def read_quarantine(con: duckdb.DuckDBPyConnection, *, batch_id: int | None = None) -> pl.DataFrame:
    """Return quarantined records (of one batch if given), oldest first."""
    query = "SELECT * FROM quarantine"
    params: list[object] = []
    if batch_id is not None:
        query += " WHERE batch_id = ?"
        params.append(batch_id)
    return read_frame(con, query + " ORDER BY quarantine_id", params=params)


def read_observed_at(
    con: duckdb.DuckDBPyConnection, quarantine_ids: Sequence[int]
) -> dict[int, datetime]:
    """Return {quarantine id: when its record was observed}: the observed_at of the batch that
    quarantined it, or when it was quarantined if that batch recorded none."""
    rows = con.execute(
        "SELECT q.quarantine_id, coalesce(b.observed_at, q.quarantined_at) FROM quarantine q "
        "LEFT JOIN ingest_batches b ON b.batch_id = q.batch_id "
        "WHERE q.quarantine_id IN (SELECT unnest(?::BIGINT[]))",
        [list(quarantine_ids)],
    ).fetchall()
    return {int(qid): when for qid, when in rows}


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
