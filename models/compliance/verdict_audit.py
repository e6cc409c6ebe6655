"""The hash of a verdict batch's rows, recorded in the audit log (pure).

Each verdict row is written as one line of JSON: an object with the ``ROW_FIELDS`` in that
order, written the way Python's ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))``
writes it (null as ``null``; strings JSON-escaped with non-ASCII kept as UTF-8). ``evidence`` is
the stored evidence text, hashed as a JSON *string* (not re-parsed), so the hash covers exactly
the bytes stored.

``rows_sha256`` = SHA-256 (hex) of the UTF-8 bytes of the concatenation of ``line + "\\n"`` over
the batch's rows ordered by ``run_key`` (code point order). An empty batch hashes the empty
string. ``docs/compliance.md`` states the same for an auditor checking it offline.
"""

from __future__ import annotations

import hashlib
import json

import polars as pl

ROW_FIELDS = (
    "run_key",
    "row_hash",
    "grant_id",
    "regime",
    "verdict",
    "rule",
    "offending_node",
    "at",
    "evidence",
)


def verdict_line(row: dict[str, str | None]) -> str:
    """Return the canonical JSON line of one verdict row (``ROW_FIELDS`` in order)."""
    return json.dumps(
        {name: row.get(name) for name in ROW_FIELDS}, ensure_ascii=False, separators=(",", ":")
    )


def verdict_rows_sha256(rows: pl.DataFrame) -> str:
    """Return the hex SHA-256 of the rows' canonical lines, ordered by run_key.

    The lines are made by polars' JSON encoder, whose output equals ``verdict_line``'s for
    every string (a property test holds them together); ``verdict_line`` is the reference.
    """
    lines = (
        rows.select(ROW_FIELDS)
        .cast(dict.fromkeys(ROW_FIELDS, pl.String()))
        .sort("run_key")
        .select(pl.struct(ROW_FIELDS).struct.json_encode())
        .to_series()
    )
    digest = hashlib.sha256()
    if lines.len():
        digest.update((lines.str.join("\n").item() + "\n").encode())
    return digest.hexdigest()


def verdict_rows_sha256_reference(rows: pl.DataFrame) -> str:
    """Return the same hash as ``verdict_rows_sha256``, one ``verdict_line`` at a time."""
    digest = hashlib.sha256()
    ordered = rows.select(ROW_FIELDS).sort("run_key")
    for row in ordered.iter_rows(named=True):
        digest.update(verdict_line(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()
