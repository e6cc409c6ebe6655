"""The audit log's hash chain: canonical JSON, entry hashes and chain verification (pure).

An entry is ``(seq, at, kind, actor, payload, payload_sha256, prev_sha256, entry_sha256)``:

- ``payload`` is the canonical JSON text of the payload object (``canonical_json``);
- ``payload_sha256`` = SHA-256 (hex) of the payload text's UTF-8 bytes;
- ``entry_sha256`` = SHA-256 (hex) of the canonical JSON of the header object
  ``{"actor", "at", "kind", "payload_sha256", "prev_sha256", "seq"}``;
- ``prev_sha256`` is the previous entry's ``entry_sha256`` (``GENESIS`` for seq 1).

``docs/audit.md`` states the same rules for an auditor re-implementing them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# The prev_sha256 of the first entry: 64 zeros.
GENESIS = "0" * 64

# The one format of times in the log: UTC, microseconds, a literal Z.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class AuditEntry:
    """One log entry as stored (``payload`` is its canonical JSON text).

    ``payload`` is None in an audit bundle's copy of an entry that concerns other data: the
    chain still verifies from the header fields and ``payload_sha256``.
    """

    seq: int
    at: datetime
    kind: str
    actor: str
    payload: str | None
    payload_sha256: str
    prev_sha256: str
    entry_sha256: str

    def payload_object(self) -> dict[str, Any]:
        """Return the payload parsed from its JSON text ({} when it is not included)."""
        if self.payload is None:
            return {}
        value = json.loads(self.payload)
        return value if isinstance(value, dict) else {}

    def header(self) -> dict[str, Any]:
        """Return the object whose canonical JSON is hashed into ``entry_sha256``."""
        return entry_header(
            seq=self.seq,
            at=self.at,
            kind=self.kind,
            actor=self.actor,
            payload_sha256=self.payload_sha256,
            prev_sha256=self.prev_sha256,
        )


def format_time(at: datetime) -> str:
    """Return ``at`` in the log's time format (``2026-01-31T23:59:59.000000Z``); naive is UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as JSON-ready plain data (Decimal and times as strings)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # Floats are spelt differently by different JSON writers; money is Decimal anyway.
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"audit payload {where}: floats are not allowed ({value!r})")
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit payload {where}: keys must be strings ({key!r})")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ValueError(f"audit payload {where}: {type(value).__name__} cannot be logged")


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value``.

    Keys sorted, no whitespace, non-ASCII as UTF-8 (not escaped), Decimal as its string,
    datetimes in ``TIME_FORMAT``, dates ISO; floats other than whole numbers are refused.
    """
    return json.dumps(_plain(value, "$"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str | bytes) -> str:
    """Return the SHA-256 of ``text`` (UTF-8 when a string) in lowercase hex."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def entry_header(
    *, seq: int, at: datetime, kind: str, actor: str, payload_sha256: str, prev_sha256: str
) -> dict[str, Any]:
    """Return the header object of an entry (what ``entry_sha256`` covers)."""
    return {
        "actor": actor,
        "at": format_time(at),
        "kind": kind,
        "payload_sha256": payload_sha256,
        "prev_sha256": prev_sha256,
        "seq": seq,
    }


def entry_sha256(
    *, seq: int, at: datetime, kind: str, actor: str, payload_sha256: str, prev_sha256: str
) -> str:
    """Return the hash of an entry: SHA-256 of its header's canonical JSON."""
    return sha256_hex(
        canonical_json(
            entry_header(
                seq=seq,
                at=at,
                kind=kind,
                actor=actor,
                payload_sha256=payload_sha256,
                prev_sha256=prev_sha256,
            )
        )
    )


def new_entry(
    *, seq: int, at: datetime, kind: str, actor: str, payload: Mapping[str, Any], prev_sha256: str
) -> AuditEntry:
    """Return the entry that follows a head with ``prev_sha256`` (hashes computed here)."""
    if not kind or not actor:
        raise ValueError("an audit entry needs a kind and an actor")
    text = canonical_json(payload)
    payload_hash = sha256_hex(text)
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    digest = entry_sha256(
        seq=seq,
        at=at,
        kind=kind,
        actor=actor,
        payload_sha256=payload_hash,
        prev_sha256=prev_sha256,
    )
    return AuditEntry(seq, at, kind, actor, text, payload_hash, prev_sha256, digest)


@dataclass(frozen=True)
class ChainProblem:
    """The first entry of a chain that does not verify, and why."""

    seq: int  # the entry's stored seq (or the expected seq when one is missing)
    position: int  # 0-based index of the entry in the sequence given
    reason: str  # "sequence", "payload_sha256", "prev_sha256", "entry_sha256", "payload"
    detail: str

    def message(self) -> str:
        """Return a one-line description naming the entry and the mismatch."""
        return f"audit entry seq {self.seq}: {self.reason} mismatch: {self.detail}"


@dataclass(frozen=True)
class ChainCheck:
    """What verifying a chain found: entries checked, the head hash, the first problem."""

    entries: int
    head_sha256: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(
    entries: Iterable[AuditEntry], *, start_seq: int = 1, start_prev: str = GENESIS
) -> ChainCheck:
    """Return the result of checking ``entries`` in the order given, stopping at the first fault.

    An entry whose payload is None (left out of a bundle) is checked from its header alone.

    Checks, per entry: its seq follows the previous one (no gap, no reordering: the first is
    ``start_seq``), its payload is canonical JSON and hashes to ``payload_sha256``, its
    ``prev_sha256`` is the previous entry's hash (``start_prev`` for the first), and its header
    hashes to ``entry_sha256``.
    """
    expected_seq = start_seq
    prev = start_prev
    count = 0
    for position, entry in enumerate(entries):
        count = position + 1
        problem = _entry_problem(entry, position, expected_seq=expected_seq, prev=prev)
        if problem is not None:
            return ChainCheck(position, prev, problem)
        prev = entry.entry_sha256
        expected_seq += 1
    return ChainCheck(count, prev, None)


def _entry_problem(
    entry: AuditEntry, position: int, *, expected_seq: int, prev: str
) -> ChainProblem | None:
    """Return the first problem of one entry given what precedes it, or None."""
    if entry.seq != expected_seq:
        what = "missing or deleted" if entry.seq > expected_seq else "repeated or reordered"
        found = f"found seq {entry.seq} (entries {what})"
        detail = f"expected seq {expected_seq} at position {position + 1}, {found}"
        return ChainProblem(entry.seq, position, "sequence", detail)
    if entry.payload is not None:
        actual_payload = sha256_hex(entry.payload)
        if actual_payload != entry.payload_sha256:
            detail = f"the payload hashes to {actual_payload}, the entry records"
            return ChainProblem(
                entry.seq, position, "payload_sha256", f"{detail} {entry.payload_sha256}"
            )
        problem = _payload_problem(entry.seq, entry.payload, position)
        if problem is not None:
            return problem
    if entry.prev_sha256 != prev:
        detail = f"the entry records prev {entry.prev_sha256}, the previous entry's hash is {prev}"
        return ChainProblem(entry.seq, position, "prev_sha256", detail)
    actual_entry = sha256_hex(canonical_json(entry.header()))
    if actual_entry != entry.entry_sha256:
        detail = f"the header hashes to {actual_entry}, the entry records {entry.entry_sha256}"
        return ChainProblem(entry.seq, position, "entry_sha256", detail)
    return None


def _payload_problem(seq: int, payload: str, position: int) -> ChainProblem | None:
    """Return a problem when the payload text is not the canonical JSON of an object."""
    try:
        value = json.loads(payload)
    except ValueError as exc:
        return ChainProblem(seq, position, "payload", f"not JSON: {exc}")
    try:
        canonical = canonical_json(value) if isinstance(value, dict) else None
    except ValueError as exc:
        return ChainProblem(seq, position, "payload", str(exc))
    if canonical != payload:
        return ChainProblem(seq, position, "payload", "not a canonical JSON object")
    return None
