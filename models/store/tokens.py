"""Storing API tokens: only their SHA-256 is kept, with a role and, for viewers, accounts."""

from __future__ import annotations

import duckdb
import polars as pl

from models.errors import StoreError
from models.store.db import read_frame


def write_token(
    con: duckdb.DuckDBPyConnection,
    *,
    token_id: str,
    token_sha256: str,
    role: str,
    accounts: list[str] | None,
    note: str | None = None,
) -> None:
    """Record a token by its hash."""
    try:
        con.execute(
            "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, now(), NULL)",
            [token_id, token_sha256, role, accounts, note],
        )
    except duckdb.Error as exc:
        raise StoreError(f"could not store token {token_id}: {exc}") from exc


def read_tokens(con: duckdb.DuckDBPyConnection, *, revoked: bool = False) -> pl.DataFrame:
    """Return the tokens (without revoked ones unless asked), oldest first.

    Columns: token_id, token_sha256, role, accounts (list of str or null), note, created_at,
    revoked_at.
    """
    query = "SELECT * FROM api_tokens"
    if not revoked:
        query += " WHERE revoked_at IS NULL"
    return read_frame(con, query + " ORDER BY created_at, token_id")


def revoke_token(con: duckdb.DuckDBPyConnection, token_id: str) -> bool:
    """Mark a token revoked; return False when there is no such live token."""
    rows = con.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = ? AND revoked_at IS NULL "
        "RETURNING token_id",
        [token_id],
    ).fetchall()
    return bool(rows)
