"""Verifying the store against its audit log: the chain, every run version, every policy version.

Three layers, each naming what does not match:

1. the chain (``models.audit.chain.verify_chain``) over every entry in seq order;
2. each run version's record hash, recomputed from ``runs`` / ``run_history``, against the hash
   recorded when its batch landed (``audit_record_hashes``): names the run and batch;
3. each ``ingest_batch`` entry's ``records_sha256`` against the recorded hashes of its batch
   (catches a recorded hash altered along with its run), and each ``policy_version`` entry
   against the SHA-256 of the stored policy text.

Batches and policy versions stored before the log began (before migration 0007) have no entry
and are counted as not covered, not as faults.
"""

from __future__ import annotations

import duckdb

from models.audit.chain import verify_chain
from models.audit.verify import Finding, VerifyReport, chain_findings, payload_findings
from models.store.audit import read_audit_entries
from models.store.audit_records import aggregate_sql, record_hashes_sql

# How many record mismatches are read back (the report names the first; a tampered store may
# have millions).
_MAX_RECORD_FINDINGS = 1000

# The ingest_batches columns an ingest_batch entry also records.
_SUMMARY = (
    "batch_id",
    "source",
    "scheduler",
    "lines_read",
    "runs_new",
    "runs_changed",
    "runs_unchanged",
    "steps_new",
    "steps_changed",
    "steps_unchanged",
    "quarantined",
)


def _log_started_at(con: duckdb.DuckDBPyConnection) -> object:
    rows = con.execute("SELECT applied_at FROM schema_migrations WHERE version = 7").fetchall()
    return rows[0][0] if rows else None


def verify_store(con: duckdb.DuckDBPyConnection) -> VerifyReport:
    """Return what verifying the store against its audit log found (``ok`` when nothing)."""
    entries = read_audit_entries(con)
    check = verify_chain(entries)
    findings = chain_findings(check)
    head = entries[-1] if entries else None
    after_head = (head.seq if head else 0) + 1

    batch_seq: dict[int, int] = {}
    policy_seq: dict[int, int] = {}
    for entry in entries:
        if entry.kind == "ingest_batch":
            batch_seq[int(entry.payload_object().get("batch_id", -1))] = entry.seq
        elif entry.kind == "policy_version":
            policy_seq[int(entry.payload_object().get("version_id", -1))] = entry.seq

    recorded = {
        int(b): (str(h), int(n))
        for b, h, n in con.execute(
            aggregate_sql("SELECT * FROM audit_record_hashes", group=True)
        ).fetchall()
    }
    policies = {
        int(v): str(h)
        for v, h in con.execute(
            "SELECT version_id, sha256(policy_toml) FROM policy_versions"
        ).fetchall()
    }
    summary = con.sql(f"SELECT {', '.join(_SUMMARY)} FROM ingest_batches").pl()
    batch_rows = {int(row["batch_id"]): row for row in summary.to_dicts()}
    findings += payload_findings(
        entries, batch_hashes=recorded, policy_hashes=policies, batch_rows=batch_rows
    )
    started = _log_started_at(con)
    pre_log = {
        int(b)
        for (b,) in con.execute(
            "SELECT batch_id FROM ingest_batches WHERE finished_at < ?", [started]
        ).fetchall()
    }
    findings += _record_findings(con, batch_seq, after_head, pre_log)

    unlogged = con.execute(
        "SELECT batch_id FROM ingest_batches UNION SELECT DISTINCT batch_id FROM runs "
        "UNION SELECT DISTINCT batch_id FROM run_history ORDER BY 1"
    ).fetchall()
    for (batch,) in unlogged:
        if int(batch) not in batch_seq and int(batch) not in pre_log:
            findings.append(
                Finding(after_head, f"batch {batch}", "stored but has no ingest_batch entry")
            )
    pre_log_policies = {
        int(v)
        for (v,) in con.execute(
            "SELECT version_id FROM policy_versions WHERE loaded_at < ?", [started]
        ).fetchall()
    }
    for version in sorted(policies):
        if version not in policy_seq and version not in pre_log_policies:
            findings.append(
                Finding(
                    after_head,
                    f"policy version {version}",
                    "stored but has no policy_version entry",
                )
            )
    return VerifyReport(
        head_seq=head.seq if head else 0,
        head_sha256=check.head_sha256 if check.ok else (head.entry_sha256 if head else ""),
        counts={
            "entries": len(entries),
            "batches": len(batch_seq),
            "run_versions": sum(n for _, n in recorded.values()),
            "policy_versions": len(policy_seq),
            "batches_before_log": len(pre_log),
            "policy_versions_before_log": len(pre_log_policies),
        },
        findings=sorted(findings, key=lambda f: f.seq),
    )


def _record_findings(
    con: duckdb.DuckDBPyConnection, batch_seq: dict[int, int], after_head: int, pre_log: set[int]
) -> list[Finding]:
    """Return run versions whose recomputed hash has no recorded match, or the reverse."""
    rows = con.execute(
        f"WITH now AS ({record_hashes_sql('')}), "
        "mismatched AS (SELECT coalesce(n.batch_id, r.batch_id) AS batch_id, "
        "coalesce(n.run_key, r.run_key) AS run_key, n.record_sha256 AS found, "
        "r.record_sha256 AS recorded FROM now n FULL OUTER JOIN audit_record_hashes r "
        "ON n.batch_id = r.batch_id AND n.run_key = r.run_key "
        "AND n.record_sha256 = r.record_sha256 "
        "WHERE (n.record_sha256 IS NULL OR r.record_sha256 IS NULL) "
        "AND coalesce(n.batch_id, r.batch_id) NOT IN (SELECT unnest(?::BIGINT[]))) "
        "SELECT batch_id, run_key, list(found) FILTER (found IS NOT NULL), "
        "list(recorded) FILTER (recorded IS NOT NULL) FROM mismatched "
        f"GROUP BY ALL ORDER BY batch_id, run_key LIMIT {_MAX_RECORD_FINDINGS}",
        [sorted(pre_log)],
    ).fetchall()
    findings = []
    for batch, run_key, found, recorded in rows:
        seq = batch_seq.get(int(batch), after_head)
        subject = f"run {run_key} (batch {batch})"
        if found and recorded:
            reason = (
                f"its content hashes to {found[0]}, the hash recorded when batch {batch} "
                f"stored it is {recorded[0]} (the run was altered)"
            )
        elif recorded:
            reason = f"a version recorded with hash {recorded[0]} is missing (deleted)"
        else:
            reason = f"a version hashing to {found[0]} was never recorded (inserted or altered)"
        findings.append(Finding(seq, subject, reason))
    return findings
