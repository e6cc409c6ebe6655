"""Reading what an audit bundle of a grant and period holds (``models.audit.bundle`` builds it).

The grant's runs in the period are the current runs whose ``end_at`` falls in the period and
whose account charges to the grant at that time under the active policy
(``models.money.grants.assign_grants``): the charging rule's default, end time.
"""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from models.audit.bundle import BundleInputs, bundle_files, zip_bytes
from models.money.grants import assign_grants, period_bounds
from models.store.audit import read_audit_entries
from models.store.audit_records import read_record_lines
from models.store.policies import read_active_policy

# Payload keys that tie an entry to a grant or a period.
_GRANT_KEYS = ("grant", "grant_id")


def _grant_run_keys(con: duckdb.DuckDBPyConnection, grant: str, period: str) -> list[str]:
    start, end = period_bounds(period)
    active = read_active_policy(con)
    if active is None or grant not in {g.id for g in active.policy.grants}:
        raise ValueError(f"grant {grant!r} is not in the active policy")
    runs = con.sql(
        'SELECT run_key, cluster, account, "user", end_at FROM runs '
        "WHERE end_at >= ? AND end_at < ? ORDER BY run_key",
        params=[start, end],
    ).pl()
    charged = assign_grants(runs, list(active.policy.grants), at="end_at")
    return charged.filter(pl.col("grant_id") == grant)["run_key"].to_list()


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows)


def _verdicts(
    con: duckdb.DuckDBPyConnection, grant: str, run_keys: set[str]
) -> list[dict[str, Any]] | None:
    """Return the current verdicts of the runs, or None when the store has no verdicts table."""
    if not (_has_table(con, "verdicts") and _has_table(con, "verdict_batches")):
        return None
    from models.store.verdicts import read_grant_verdicts

    frame, _ = read_grant_verdicts(con, grant)
    frame = frame.filter(pl.col("run_key").is_in(sorted(run_keys)))
    return frame.sort("run_key").to_dicts()


def read_bundle_inputs(con: duckdb.DuckDBPyConnection, grant: str, period: str) -> BundleInputs:
    """Return what the bundle of ``grant`` in ``period`` holds; ValueError for an unknown grant
    or a period that is not ``YYYY-MM``."""
    start, end = period_bounds(period)
    keys = _grant_run_keys(con, grant, period)
    lines = read_record_lines(con, keys)
    record_lines = [
        (str(k), int(b), str(line))
        for k, b, line in lines.select("run_key", "batch_id", "record_line").iter_rows()
    ]
    entries = read_audit_entries(con)
    logged = {
        int(e.payload_object()["batch_id"]): e.seq
        for e in entries
        if e.kind == "ingest_batch" and "batch_id" in e.payload_object()
    }
    batches = sorted({b for _, b, _ in record_lines} & set(logged))
    hashes = con.execute(
        "SELECT batch_id, record_sha256 FROM audit_record_hashes "
        "WHERE batch_id IN (SELECT unnest(?::BIGINT[])) ORDER BY batch_id, run_key, record_sha256",
        [batches],
    ).fetchall()
    batch_hashes: dict[int, list[str]] = {b: [] for b in batches}
    for batch, digest in hashes:
        batch_hashes[int(batch)].append(str(digest))

    active = read_active_policy(con)
    in_force = con.execute(
        "SELECT version_id, policy_toml FROM policy_versions WHERE version_id = ? OR "
        "(loaded_at < ? AND (loaded_at >= ? OR version_id = (SELECT max(version_id) "
        "FROM policy_versions WHERE loaded_at < ?))) ORDER BY version_id",
        [active.version_id if active else -1, end, start, start],
    ).fetchall()
    policies = {int(v): str(text) for v, text in in_force}

    verdicts = _verdicts(con, grant, set(keys))
    verdict_batches = {int(v["batch_id"]) for v in verdicts or []}
    relevant = set()
    for entry in entries:
        payload = entry.payload_object()
        if (
            (entry.kind == "ingest_batch" and payload.get("batch_id") in batch_hashes)
            or (entry.kind == "policy_version" and payload.get("version_id") in policies)
            or (entry.kind == "verdict_batch" and payload.get("batch_id") in verdict_batches)
            or any(payload.get(key) == grant for key in _GRANT_KEYS)
            or (payload.get("period") == period and not set(_GRANT_KEYS) & set(payload))
        ):
            relevant.add(entry.seq)
    return BundleInputs(
        grant=grant,
        period=period,
        entries=entries,
        relevant=frozenset(relevant),
        record_lines=record_lines,
        batch_hashes=batch_hashes,
        policies=policies,
        verdicts=verdicts,
    )


def build_bundle(con: duckdb.DuckDBPyConnection, grant: str, period: str) -> bytes:
    """Return the zip of the audit bundle of ``grant`` in ``period`` (same store, same bytes)."""
    return zip_bytes(bundle_files(read_bundle_inputs(con, grant, period)))
