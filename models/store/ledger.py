"""The ledger in the store: frozen lines of closed periods, people's entries, closed periods
and the hashes of closed statements (see ``models.money.ledger`` for what they mean)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import polars as pl

from models.errors import StoreError
from models.money.frames import LEDGER, MONEY
from models.store.audit import append_audit
from models.store.db import read_frame, transaction

_COLUMNS = ", ".join(f'"{c}"' for c in LEDGER)


@dataclass(frozen=True)
class ClosedPeriod:
    period: str
    closed_at: datetime
    closed_by: str
    policy_version: int
    lines: int
    total: Decimal


def _frame(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    return read_frame(con, query).cast(pl.Schema(LEDGER))


def read_frozen_lines(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return every frozen line (``LEDGER`` columns) of every closed period."""
    return _frame(con, f"SELECT {_COLUMNS} FROM ledger_lines")


def read_entries(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return every refund and manual adjustment as ``LEDGER`` lines."""
    columns = ", ".join(f'"{c}"' if c in _ENTRY_COLUMNS else f'NULL AS "{c}"' for c in LEDGER)
    return _frame(con, f"SELECT {columns} FROM ledger_entries ORDER BY entry_id")


_ENTRY_COLUMNS = {
    "posted_period",
    "kind",
    "refers_period",
    "grant_id",
    "run_key",
    "resource",
    "amount",
    "reason",
    "author",
    "posted_at",
}


def read_closed_periods(con: duckdb.DuckDBPyConnection) -> list[ClosedPeriod]:
    """Return the closed periods, oldest first."""
    rows = con.execute(
        "SELECT period, closed_at, closed_by, policy_version, lines, total "
        "FROM ledger_periods ORDER BY period"
    ).fetchall()
    return [
        ClosedPeriod(period, closed_at.astimezone(UTC), by, version, lines, total)
        for period, closed_at, by, version, lines, total in rows
    ]


def last_closed_period(con: duckdb.DuckDBPyConnection) -> str | None:
    """Return the last closed period, or None when none is closed."""
    rows = con.execute("SELECT max(period) FROM ledger_periods").fetchall()
    return None if not rows else rows[0][0]


def write_period_close(
    con: duckdb.DuckDBPyConnection,
    *,
    period: str,
    lines: pl.DataFrame,
    closed_by: str,
    closed_at: datetime,
    policy_version: int,
    statement_hashes: dict[tuple[str, str], tuple[str, int]],
    made_with: Mapping[str, str] | None = None,
) -> ClosedPeriod:
    """Freeze ``lines`` as ``period``'s, record the close and the statement hashes
    ({(grant, format): (sha256, size)}) with what rendered each format ({format: versions}),
    and an audit entry, in one transaction."""
    made_with = made_with or {}
    frozen = lines.select(list(LEDGER)).with_columns(pl.col("amount").cast(MONEY))
    total = frozen.select(pl.col("amount").sum()).item() if frozen.height else Decimal(0)
    with transaction(con):
        if con.execute("SELECT 1 FROM ledger_periods WHERE period = ?", [period]).fetchall():
            raise StoreError(f"period {period} is already closed")
        con.register("frozen_lines", frozen.to_arrow())
        con.execute(f"INSERT INTO ledger_lines ({_COLUMNS}) SELECT {_COLUMNS} FROM frozen_lines")
        con.unregister("frozen_lines")
        con.execute(
            "INSERT INTO ledger_periods VALUES (?, ?, ?, ?, ?, ?)",
            [period, closed_at, closed_by, policy_version, frozen.height, total],
        )
        for (grant_id, fmt), (sha, size) in sorted(statement_hashes.items()):
            con.execute(
                "INSERT INTO statement_hashes (grant_id, period, format, sha256, size_bytes, "
                "made_with) VALUES (?, ?, ?, ?, ?, ?)",
                [grant_id, period, fmt, sha, size, made_with.get(fmt)],
            )
        append_audit(
            con,
            kind="period_close",
            actor=closed_by,
            at=closed_at,
            payload={
                "period": period,
                "policy_version": policy_version,
                "lines": frozen.height,
                "total": str(total),
                "statements": {
                    f"{grant_id}/{fmt}": sha
                    for (grant_id, fmt), (sha, _) in sorted(statement_hashes.items())
                },
                **({"made_with": dict(sorted(made_with.items()))} if made_with else {}),
            },
        )
    return ClosedPeriod(period, closed_at, closed_by, policy_version, frozen.height, total)


def write_entry(
    con: duckdb.DuckDBPyConnection,
    *,
    posted_period: str,
    kind: str,
    grant_id: str,
    amount: Decimal,
    reason: str,
    author: str,
    posted_at: datetime,
    run_key: str | None = None,
    refers_period: str | None = None,
    resource: str | None = None,
) -> int:
    """Store a refund or manual adjustment (and its audit entry); return its entry id."""
    with transaction(con):
        row = con.execute(
            "INSERT INTO ledger_entries (posted_period, kind, refers_period, grant_id, run_key, "
            "resource, amount, reason, author, posted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING entry_id",
            [
                posted_period,
                kind,
                refers_period,
                grant_id,
                run_key,
                resource,
                amount,
                reason,
                author,
                posted_at.astimezone(UTC),
            ],
        ).fetchall()[0]
        append_audit(
            con,
            kind="adjustment",
            actor=author,
            at=posted_at,
            payload={
                "entry_id": row[0],
                "kind": kind,
                "grant_id": grant_id,
                "posted_period": posted_period,
                "refers_period": refers_period,
                "run_key": run_key,
                "amount": str(amount),
                "reason": reason,
            },
        )
    return int(row[0])


def read_statement_hashes(
    con: duckdb.DuckDBPyConnection, grant_id: str, period: str
) -> dict[str, str]:
    """Return {format: sha256} recorded when ``period`` closed for ``grant_id``."""
    rows = con.execute(
        "SELECT format, sha256 FROM statement_hashes WHERE grant_id = ? AND period = ?",
        [grant_id, period],
    ).fetchall()
    return dict(rows)


def read_statement_makers(con: duckdb.DuckDBPyConnection, period: str) -> dict[str, str]:
    """Return {format: "fairledger 0.1.0, polars 2.2.0, ..."} recorded when ``period`` closed
    (empty for a period closed before the versions were recorded)."""
    rows = con.execute(
        "SELECT DISTINCT format, made_with FROM statement_hashes "
        "WHERE period = ? AND made_with IS NOT NULL ORDER BY format",
        [period],
    ).fetchall()
    return dict(rows)
