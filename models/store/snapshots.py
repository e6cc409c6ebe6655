"""Storing published factor snapshots and reading them back.

A snapshot's metadata row is kept for ever; its factors are kept for the latest ``keep``
snapshots (``prune_snapshots``), since a site recomputing every few minutes would otherwise
store millions of rows a day.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl

from models.errors import StoreError
from models.fairshare.frames import FACTORS
from models.fairshare.snapshots import FactorSnapshot, SnapshotMeta, build_snapshot
from models.frames import conform

_META = (
    "snapshot_id, as_of, computed_at, policy_version, algorithm, data_watermark_batch, "
    "data_watermark_at, run_count, association_count, content_sha256, etag, factors_pruned_at"
)
_COLUMNS = ", ".join(f'"{name}"' for name in FACTORS)


def next_snapshot_id(con: duckdb.DuckDBPyConnection) -> int:
    """Return a new snapshot id (ids only grow)."""
    return int(con.execute("SELECT nextval('snapshot_ids')").fetchall()[0][0])


def read_active_policy_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """Return the id of the active policy version (what a recompute would use), or None.

    Cheap, unlike reading and validating the policy: a recompute re-reads the policy only when
    this changed.
    """
    rows = con.execute("SELECT max(version_id) FROM policy_versions").fetchall()
    return int(rows[0][0]) if rows[0][0] is not None else None


def read_watermark(
    con: duckdb.DuckDBPyConnection, *, clusters: list[str] | None = None
) -> tuple[int | None, datetime | None, int]:
    """Return (highest batch id, latest ingested_at, number of runs) of the stored runs."""
    query = "SELECT max(batch_id), max(ingested_at), count(*) FROM runs"
    params: list[object] = []
    if clusters is not None:
        query += " WHERE cluster IN (SELECT unnest(?::VARCHAR[]))"
        params.append(clusters)
    batch, at, count = con.execute(query, params).fetchall()[0]
    return (int(batch) if batch is not None else None), at, int(count)


def write_snapshot(con: duckdb.DuckDBPyConnection, snapshot: FactorSnapshot) -> None:
    """Store a published snapshot (its metadata and factors) in one transaction."""
    meta = snapshot.meta
    if meta.snapshot_id is None:
        raise StoreError("an unpublished snapshot (no snapshot_id) cannot be stored")
    rows = snapshot.frame.with_row_index("row_no").with_columns(
        pl.col("row_no").cast(pl.Int32), pl.lit(meta.snapshot_id, pl.Int64).alias("snapshot_id")
    )
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"INSERT INTO factor_snapshots ({_META}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [
                meta.snapshot_id,
                meta.as_of,
                meta.computed_at,
                meta.policy_version,
                meta.algorithm,
                meta.data_watermark_batch,
                meta.data_watermark_at,
                meta.run_count,
                snapshot.count,
                snapshot.content_sha256,
                snapshot.etag,
            ],
        )
        con.register("snapshot_incoming", rows.to_arrow())
        try:
            con.execute(
                f"INSERT INTO snapshot_factors (snapshot_id, row_no, {_COLUMNS}) "
                f"SELECT snapshot_id, row_no, {_COLUMNS} FROM snapshot_incoming"
            )
        finally:
            con.unregister("snapshot_incoming")
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise StoreError(f"could not store snapshot {meta.snapshot_id}: {exc}") from exc


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def read_snapshot(con: duckdb.DuckDBPyConnection, snapshot_id: int) -> FactorSnapshot | None:
    """Return the stored snapshot ``snapshot_id`` rebuilt byte for byte, or None when it is
    unknown or its factors were pruned."""
    rows = con.execute(
        "SELECT as_of, computed_at, policy_version, algorithm, data_watermark_batch, "
        "data_watermark_at, run_count FROM factor_snapshots "
        "WHERE snapshot_id = ? AND factors_pruned_at IS NULL",
        [snapshot_id],
    ).fetchall()
    if not rows:
        return None
    as_of, computed_at, policy_version, algorithm, batch, watermark_at, run_count = rows[0]
    frame = con.sql(
        f"SELECT {_COLUMNS} FROM snapshot_factors WHERE snapshot_id = ? ORDER BY row_no",
        params=[snapshot_id],
    ).pl()
    meta = SnapshotMeta(
        snapshot_id=snapshot_id,
        as_of=as_of.astimezone(UTC),
        computed_at=computed_at.astimezone(UTC),
        policy_version=int(policy_version),
        algorithm=str(algorithm),
        data_watermark_batch=int(batch) if batch is not None else None,
        data_watermark_at=_utc(watermark_at),
        run_count=int(run_count),
    )
    # The same code rebuilds the same bytes, so the ETag is the one published (a test holds
    # this); after an upgrade that changes the serialisation it is the new bytes' ETag.
    return build_snapshot(conform(frame, FACTORS), meta)


def read_latest_snapshot(con: duckdb.DuckDBPyConnection) -> FactorSnapshot | None:
    """Return the latest stored snapshot, or None when none was published yet."""
    rows = con.execute(
        "SELECT max(snapshot_id) FROM factor_snapshots WHERE factors_pruned_at IS NULL"
    ).fetchall()
    if rows[0][0] is None:
        return None
    return read_snapshot(con, int(rows[0][0]))


def list_snapshots(
    con: duckdb.DuckDBPyConnection, *, limit: int = 100, offset: int = 0
) -> tuple[pl.DataFrame, int]:
    """Return (the metadata of stored snapshots, newest first, one page; how many there are).

    Columns: snapshot_id, as_of, computed_at, policy_version, algorithm, data_watermark_batch,
    data_watermark_at, run_count, association_count, content_sha256, etag, factors_pruned_at.
    """
    total = int(con.execute("SELECT count(*) FROM factor_snapshots").fetchall()[0][0])
    page = con.sql(
        f"SELECT {_META} FROM factor_snapshots ORDER BY snapshot_id DESC LIMIT ? OFFSET ?",
        params=[limit, offset],
    ).pl()
    return page, total


def prune_snapshots(con: duckdb.DuckDBPyConnection, *, keep: int) -> int:
    """Drop the factors of all but the latest ``keep`` snapshots; return how many were pruned."""
    try:
        con.execute("BEGIN TRANSACTION")
        old = con.execute(
            "SELECT snapshot_id FROM factor_snapshots WHERE factors_pruned_at IS NULL "
            "ORDER BY snapshot_id DESC OFFSET ?",
            [keep],
        ).fetchall()
        ids = [int(r[0]) for r in old]
        if ids:
            con.execute(
                "DELETE FROM snapshot_factors WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))",
                [ids],
            )
            con.execute(
                "UPDATE factor_snapshots SET factors_pruned_at = now() "
                "WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))",
                [ids],
            )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise StoreError(f"could not prune snapshots: {exc}") from exc
    return len(ids)
