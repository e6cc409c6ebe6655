"""What verifying the audit log found, and the checks of entries against recomputed hashes (pure).

A ``VerifyReport`` lists ``Finding``s in the order of the log: the first finding names the first
entry (or the record, policy version or bundle file under it) that does not match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.audit.chain import AuditEntry, ChainCheck
from models.audit.records import EMPTY_SHA256


@dataclass(frozen=True)
class Finding:
    """One thing that does not match: ``subject`` names it, ``reason`` says how."""

    seq: int  # the log entry it belongs to (0: before the first entry / not in the log)
    subject: str
    reason: str

    def message(self) -> str:
        """Return ``subject: reason``."""
        return f"{self.subject}: {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verification: the head, what was checked, and the findings."""

    head_seq: int
    head_sha256: str
    counts: Mapping[str, int]
    findings: Sequence[Finding] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """Return the first finding (they come in log order), or None when everything matches."""
        return self.findings[0] if self.findings else None


def chain_findings(check: ChainCheck) -> list[Finding]:
    """Return the chain's problem (if any) as a finding."""
    if check.problem is None:
        return []
    problem = check.problem
    return [Finding(problem.seq, f"audit entry seq {problem.seq}", problem.detail)]


def payload_findings(
    entries: Sequence[AuditEntry],
    *,
    batch_hashes: Mapping[int, tuple[str, int]],
    policy_hashes: Mapping[int, str],
    batch_rows: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Return entries whose payload does not match what was recomputed.

    ``batch_hashes``: {batch_id: (records_sha256, run versions)} recomputed for the batches;
    ``policy_hashes``: {version_id: SHA-256 of the stored policy text}. A policy version absent
    from ``policy_hashes`` is reported missing; a batch absent from ``batch_hashes`` has none.
    ``batch_rows``: {batch_id: its ``ingest_batches`` row}; each field the entry also records
    (source, counts) must be equal.
    """
    findings = []
    for entry in entries:
        payload = entry.payload_object()
        subject = f"audit entry seq {entry.seq} ({entry.kind})"
        if entry.kind == "ingest_batch":
            batch = int(payload.get("batch_id", -1))
            if batch_rows is not None:
                findings += _summary_findings(entry.seq, batch, payload, batch_rows.get(batch))
            digest, count = batch_hashes.get(batch, (EMPTY_SHA256, 0))
            if count != payload.get("run_versions"):
                findings.append(
                    Finding(
                        entry.seq,
                        subject,
                        f"batch {batch} has {count} run versions, the entry records "
                        f"{payload.get('run_versions')}",
                    )
                )
            elif digest != payload.get("records_sha256"):
                findings.append(
                    Finding(
                        entry.seq,
                        subject,
                        f"the run versions of batch {batch} hash to {digest}, the entry records "
                        f"{payload.get('records_sha256')}",
                    )
                )
        elif entry.kind == "policy_version":
            version = int(payload.get("version_id", -1))
            policy = policy_hashes.get(version)
            if policy is None:
                findings.append(Finding(entry.seq, subject, f"policy version {version} is missing"))
            elif policy != payload.get("policy_sha256"):
                findings.append(
                    Finding(
                        entry.seq,
                        subject,
                        f"policy version {version} hashes to {policy}, the entry records "
                        f"{payload.get('policy_sha256')}",
                    )
                )
    return findings


def _summary_findings(
    seq: int, batch: int, payload: Mapping[str, Any], row: Mapping[str, Any] | None
) -> list[Finding]:
    """Return a finding when the batch's summary row is missing or differs from its entry."""
    subject = f"ingest batch {batch} (summary row)"
    if row is None:
        return [Finding(seq, subject, "missing from ingest_batches")]
    for key, value in row.items():
        if key in payload and payload[key] != value:
            return [
                Finding(
                    seq,
                    subject,
                    f"{key} is {value!r}, audit entry seq {seq} records {payload[key]!r}",
                )
            ]
    return []
