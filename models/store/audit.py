"""Appending to the hash-chained audit log and reading it back.

``append_audit`` is called inside the caller's open transaction, so that the entry commits (or
rolls back) with the change it records:

    con.execute("BEGIN TRANSACTION")
    ...  # the change
    append_audit(con, kind="period_close", actor="admin:alice", payload={...})
    con.execute("COMMIT")

Nothing here updates or deletes an entry. ``models.audit.chain`` holds the hashing rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb

from models.audit.chain import GENESIS, AuditEntry, new_entry

_COLUMNS = 'seq, "at", kind, actor, payload, payload_sha256, prev_sha256, entry_sha256'


def append_audit(
    con: duckdb.DuckDBPyConnection,
    *,
    kind: str,
    actor: str,
    payload: Mapping[str, Any],
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry after the current head and return it (hashes filled in).

    Call it inside the caller's transaction. ``payload`` holds strings, integers, booleans,
    nulls, Decimals (written as strings), datetimes (UTC, ``...Z``), lists and string-keyed
    mappings; floats are refused (``ValueError``). ``at`` defaults to now (UTC).
    """
    head = read_audit_head(con)
    entry = new_entry(
        seq=head.seq + 1 if head else 1,
        at=at or datetime.now(UTC),
        kind=kind,
        actor=actor,
        payload=payload,
        prev_sha256=head.entry_sha256 if head else GENESIS,
    )
    con.execute(
        f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            entry.seq,
            entry.at,
            entry.kind,
            entry.actor,
            entry.payload,
            entry.payload_sha256,
            entry.prev_sha256,
            entry.entry_sha256,
        ],
    )
    return entry


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    seq, at, kind, actor, payload, payload_sha, prev_sha, entry_sha = row
    return AuditEntry(
        int(seq), at.astimezone(UTC), kind, actor, payload, payload_sha, prev_sha, entry_sha
    )


def read_audit_head(con: duckdb.DuckDBPyConnection) -> AuditEntry | None:
    """Return the latest entry (the head of the chain), or None when the log is empty."""
    rows = con.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()
    return _entry(rows[0]) if rows else None


def read_audit_entry(con: duckdb.DuckDBPyConnection, seq: int) -> AuditEntry | None:
    """Return the entry with ``seq``, or None when there is none."""
    rows = con.execute(f"SELECT {_COLUMNS} FROM audit_log WHERE seq = ?", [seq]).fetchall()
    return _entry(rows[0]) if rows else None


def read_audit_entries(
    con: duckdb.DuckDBPyConnection,
    *,
    after_seq: int = 0,
    limit: int | None = None,
    kinds: list[str] | None = None,
) -> list[AuditEntry]:
    """Return entries with seq > ``after_seq`` (of ``kinds`` if given), in seq order.

    ``limit`` caps the page; the next page starts after the last seq returned.
    """
    query = f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ?"
    params: list[object] = [after_seq]
    if kinds is not None:
        query += " AND kind IN (SELECT unnest(?::VARCHAR[]))"
        params.append(kinds)
    query += " ORDER BY seq"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return [_entry(row) for row in con.execute(query, params).fetchall()]


def count_audit_entries(con: duckdb.DuckDBPyConnection) -> int:
    """Return how many entries the log holds."""
    return int(con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0])
