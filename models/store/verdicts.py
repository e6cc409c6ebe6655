"""Storing compliance verdict batches and reading current verdicts and their history.

``refresh_verdicts`` is what the server's recompute and the CLI call: it computes a new batch
when the active policy version differs from the last batch's (every regulated run, scope
``full``) or when runs were stored since (those runs only, scope ``incremental``), and writes it
with its audit-log entry in one transaction. Rows are only inserted, never updated or deleted.

A run's *current* verdict is its row in the latest batch computed under the latest batch's
policy version whose ``row_hash`` is the run's current ``row_hash`` (a run whose content changed
so that it no longer charges to a regulated grant has no current verdict).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from models.compliance.frames import VERDICTS
from models.compliance.verdict_audit import verdict_rows_sha256
from models.compliance.verdicts import RUN_COLUMNS, run_verdicts
from models.errors import StoreError
from models.frames import RUNS, conform
from models.money.grants import assign_grants
from models.policy import Policy
from models.store.audit import append_audit
from models.store.db import read_frame
from models.store.run_changes import CHANGED_SINCE_SQL, last_change_batch

# What assign_grants and run_verdicts read from a run.
_READ = ("account", "user", *(c for c in RUN_COLUMNS if c != "grant_id"))


@dataclass(frozen=True)
class VerdictBatch:
    batch_id: int
    computed_at: datetime
    policy_version: int
    scope: str  # "full" or "incremental"
    runs_watermark: int | None
    runs_checked: int
    approved: int
    violation: int
    unknown: int
    rows_sha256: str
    audit_seq: int | None


def _batch(row: tuple[object, ...]) -> VerdictBatch:
    return VerdictBatch(*row)  # type: ignore[arg-type]


_BATCH_COLUMNS = (
    "batch_id, computed_at, policy_version, scope, runs_watermark, runs_checked, approved, "
    "violation, unknown, rows_sha256, audit_seq"
)


def read_latest_verdict_batch(con: duckdb.DuckDBPyConnection) -> VerdictBatch | None:
    """Return the latest verdict batch, or None when none was computed."""
    rows = con.execute(
        f"SELECT {_BATCH_COLUMNS} FROM verdict_batches ORDER BY batch_id DESC LIMIT 1"
    ).fetchall()
    return _batch(rows[0]) if rows else None


def read_verdict_batch(con: duckdb.DuckDBPyConnection, batch_id: int) -> VerdictBatch | None:
    """Return one verdict batch, or None."""
    rows = con.execute(
        f"SELECT {_BATCH_COLUMNS} FROM verdict_batches WHERE batch_id = ?", [batch_id]
    ).fetchall()
    return _batch(rows[0]) if rows else None


def _runs_to_check(con: duckdb.DuckDBPyConnection, since_batch: int | None) -> pl.DataFrame:
    """Return the current runs whose content may have changed after ingest batch
    ``since_batch`` (all when None), with the columns verdicts need and ``row_hash``: contents
    stored by a later batch, and runs a later batch sent a content of to history (what is
    current now may be an older content promoted back, stored by an earlier batch)."""
    select = ", ".join(f'"{c}"' for c in _READ)
    query = f"SELECT {select}, row_hash FROM runs"
    params: list[object] = []
    if since_batch is not None:
        query += f" WHERE run_key IN (SELECT run_key FROM ({CHANGED_SINCE_SQL}))"
        params.append(since_batch)
    frame = con.sql(query, params=params).pl()
    return conform(frame, {**{c: RUNS[c] for c in _READ}, "row_hash": pl.String()})


def verdicts_stale(con: duckdb.DuckDBPyConnection, policy_version: int) -> bool:
    """Return whether the stored verdicts lag the policy version or the runs (cheap)."""
    last = read_latest_verdict_batch(con)
    if last is None:
        return True
    return last.policy_version != policy_version or last_change_batch(con) != last.runs_watermark


def compute_verdicts(runs: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Return the verdicts of ``runs`` under ``policy`` (grants assigned by end time)."""
    charged = assign_grants(runs, policy.grants, at="end_at")
    return run_verdicts(charged, grants=policy.grants, compliance=policy.compliance)


def refresh_verdicts(
    con: duckdb.DuckDBPyConnection,
    *,
    policy_version: int,
    policy: Policy,
    now: datetime,
    actor: str = "fairledger",
) -> VerdictBatch | None:
    """Compute and store a verdict batch if the policy or the runs changed since the last one;
    return it, or None when nothing changed (or the policy has no regulated grant and none
    was ever computed)."""
    if not verdicts_stale(con, policy_version):
        return None
    last = read_latest_verdict_batch(con)
    watermark = last_change_batch(con)
    full = last is None or last.policy_version != policy_version
    if last is None and not any(g.regime for g in policy.grants):
        return None
    since = None if full or last is None else last.runs_watermark
    verdicts = compute_verdicts(_runs_to_check(con, since), policy)
    return write_verdict_batch(
        con,
        verdicts,
        policy_version=policy_version,
        scope="full" if full else "incremental",
        runs_watermark=watermark,
        now=now,
        actor=actor,
    )


def write_verdict_batch(
    con: duckdb.DuckDBPyConnection,
    verdicts: pl.DataFrame,
    *,
    policy_version: int,
    scope: str,
    runs_watermark: int | None,
    now: datetime,
    actor: str = "fairledger",
) -> VerdictBatch:
    """Store ``verdicts`` (``VERDICTS`` columns and row_hash) as one batch with its audit entry,
    in one transaction; return the batch."""
    rows = conform(verdicts, {**VERDICTS, "row_hash": pl.String()})
    counts = dict(rows.group_by("verdict").len().iter_rows())
    digest = verdict_rows_sha256(rows)
    try:
        con.execute("BEGIN TRANSACTION")
        batch_id = int(con.execute("SELECT nextval('verdict_batch_ids')").fetchall()[0][0])
        con.register("verdicts_incoming", rows.to_arrow())
        try:
            con.execute(
                "INSERT INTO verdicts SELECT ?, run_key, row_hash, grant_id, regime, verdict, "
                'rule, offending_node, "at", evidence FROM verdicts_incoming',
                [batch_id],
            )
        finally:
            con.unregister("verdicts_incoming")
        payload = {
            "batch_id": batch_id,
            "policy_version": policy_version,
            "scope": scope,
            "runs_watermark": runs_watermark,
            "runs_checked": rows.height,
            "approved": int(counts.get("approved", 0)),
            "violation": int(counts.get("violation", 0)),
            "unknown": int(counts.get("unknown", 0)),
            "rows_sha256": digest,
        }
        entry = append_audit(con, kind="verdict_batch", actor=actor, payload=payload, at=now)
        batch = VerdictBatch(
            batch_id,
            now,
            policy_version,
            scope,
            runs_watermark,
            rows.height,
            payload["approved"],  # type: ignore[arg-type]
            payload["violation"],  # type: ignore[arg-type]
            payload["unknown"],  # type: ignore[arg-type]
            digest,
            entry.seq,
        )
        con.execute(
            f"INSERT INTO verdict_batches ({_BATCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?)",
            [
                batch.batch_id,
                batch.computed_at,
                batch.policy_version,
                batch.scope,
                batch.runs_watermark,
                batch.runs_checked,
                batch.approved,
                batch.violation,
                batch.unknown,
                batch.rows_sha256,
                batch.audit_seq,
            ],
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise StoreError(f"could not store the verdict batch: {exc}") from exc
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return batch


# The current verdict of every run (see the module docstring).
_CURRENT = """
WITH latest AS (
    SELECT policy_version FROM verdict_batches ORDER BY batch_id DESC LIMIT 1
), ranked AS (
    SELECT v.*, b.computed_at, b.policy_version,
           row_number() OVER (PARTITION BY v.run_key ORDER BY v.batch_id DESC) AS n
    FROM verdicts v
    JOIN verdict_batches b USING (batch_id)
    JOIN runs r ON r.run_key = v.run_key AND r.row_hash = v.row_hash
    WHERE b.policy_version = (SELECT policy_version FROM latest) {where}
)
SELECT * EXCLUDE (n) FROM ranked WHERE n = 1
"""


def read_grant_summary(con: duckdb.DuckDBPyConnection, grant_id: str) -> dict[str, int]:
    """Return {verdict: number of runs} of the grant's current verdicts."""
    rows = con.execute(
        f"SELECT verdict, count(*) FROM ({_CURRENT.format(where='AND v.grant_id = ?')}) "
        "GROUP BY verdict",
        [grant_id],
    ).fetchall()
    return {str(verdict): int(n) for verdict, n in rows}


def read_grant_verdicts(
    con: duckdb.DuckDBPyConnection,
    grant_id: str,
    *,
    exceptions_only: bool = False,
    verdict: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[pl.DataFrame, int]:
    """Return one page of the grant's current verdicts (by run_key) and how many match.

    ``exceptions_only``: violations and unknowns only; ``verdict``: only that verdict.
    Columns: the ``verdicts`` table's, plus computed_at and policy_version of their batch.
    """
    base = f"SELECT * FROM ({_CURRENT.format(where='AND v.grant_id = ?')}) WHERE true"
    params: list[object] = [grant_id]
    if exceptions_only:
        base += " AND verdict <> 'approved'"
    if verdict is not None:
        base += " AND verdict = ?"
        params.append(verdict)
    total = int(con.execute(f"SELECT count(*) FROM ({base})", params).fetchall()[0][0])
    page = f" LIMIT {int(limit)}" if limit is not None else ""
    frame = con.sql(
        f"SELECT * FROM ({base}) ORDER BY run_key{page} OFFSET {int(offset)}", params=params
    ).pl()
    return frame, total


def read_run_verdicts(con: duckdb.DuckDBPyConnection, run_key: str) -> pl.DataFrame:
    """Return every verdict ever stored for a run, newest first, with its batch's
    computed_at, policy_version and scope, and ``is_current``."""
    current = con.execute(
        f"SELECT batch_id FROM ({_CURRENT.format(where='AND v.run_key = ?')})", [run_key]
    ).fetchall()
    current_batch = current[0][0] if current else None
    frame = read_frame(
        con,
        "SELECT v.*, b.computed_at, b.policy_version, b.scope FROM verdicts v "
        "JOIN verdict_batches b USING (batch_id) WHERE v.run_key = ? ORDER BY v.batch_id DESC",
        params=[run_key],
    )
    is_current = (pl.col("batch_id") == pl.lit(current_batch, dtype=pl.Int64)).fill_null(False)
    return frame.with_columns(is_current=is_current)
