"""The hash chain (pure): the documented algorithm, and every alteration named."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from models.audit.chain import (
    GENESIS,
    AuditEntry,
    canonical_json,
    new_entry,
    verify_chain,
)

T0 = datetime(2026, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)


def _chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    for i in range(n):
        entry = new_entry(
            seq=i + 1,
            at=T0 + timedelta(seconds=i),
            kind="ingest_batch" if i % 2 else "policy_version",
            actor="ingest",
            payload={"batch_id": i, "amount": Decimal("12.50"), "name": f"naïve {i}"},
            prev_sha256=prev,
        )
        entries.append(entry)
        prev = entry.entry_sha256
    return entries


def _documented_entry_hash(entry: AuditEntry) -> str:
    """The entry hash as docs/audit.md tells an auditor to compute it: hashlib and json only."""
    header = {
        "actor": entry.actor,
        "at": entry.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "kind": entry.kind,
        "payload_sha256": entry.payload_sha256,
        "prev_sha256": entry.prev_sha256,
        "seq": entry.seq,
    }
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_a_clean_chain_verifies_and_matches_the_documented_algorithm() -> None:
    entries = _chain(6)
    check = verify_chain(entries)
    assert check.ok and check.entries == 6 and check.head_sha256 == entries[-1].entry_sha256
    assert entries[0].prev_sha256 == "0" * 64
    for entry in entries:
        assert entry.entry_sha256 == _documented_entry_hash(entry)
        assert entry.payload_sha256 == hashlib.sha256(entry.payload.encode()).hexdigest()
    assert entries[0].payload == '{"amount":"12.50","batch_id":0,"name":"naïve 0"}'


def test_canonical_json_is_sorted_compact_and_refuses_floats() -> None:
    assert canonical_json({"b": [1, None, True], "a": {"z": "é", "y": T0}}) == (
        '{"a":{"y":"2026-05-01T08:30:00.123456Z","z":"é"},"b":[1,null,true]}'
    )
    assert canonical_json({"n": 3.0}) == '{"n":3}'
    with pytest.raises(ValueError, match=r"\$\.rate: floats are not allowed"):
        canonical_json({"rate": 0.1})
    with pytest.raises(ValueError, match="cannot be logged"):
        canonical_json({"x": object()})


def _one_byte(value: object) -> object:
    """Return ``value`` with one byte (one character or one unit) changed."""
    if isinstance(value, int):
        return value + 1
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    assert isinstance(value, str)
    middle = len(value) // 2
    swapped = "0" if value[middle] != "0" else "1"
    return value[:middle] + swapped + value[middle + 1 :]


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("seq", "sequence"),
        ("at", "entry_sha256"),
        ("kind", "entry_sha256"),
        ("actor", "entry_sha256"),
        ("payload", "payload_sha256"),
        ("payload_sha256", "payload_sha256"),
        ("prev_sha256", "prev_sha256"),
        ("entry_sha256", "entry_sha256"),
    ],
)
def test_a_one_byte_change_to_any_field_is_named(column: str, reason: str) -> None:
    entries = _chain(5)
    entries[2] = dataclasses.replace(entries[2], **{column: _one_byte(getattr(entries[2], column))})
    check = verify_chain(entries)
    assert check.problem is not None
    expected_seq = entries[2].seq
    assert (check.problem.seq, check.problem.reason) == (expected_seq, reason)
    assert f"audit entry seq {expected_seq}" in check.problem.message()


def test_a_last_entry_with_an_altered_own_hash_is_named() -> None:
    entries = _chain(3)
    entries[2] = dataclasses.replace(entries[2], entry_sha256="f" * 64)
    check = verify_chain(entries)
    assert check.problem is not None and (check.problem.seq, check.problem.reason) == (
        3,
        "entry_sha256",
    )


def test_a_payload_that_is_not_canonical_is_named() -> None:
    entries = _chain(3)
    text = '{"batch_id": 1}'  # spaces: not canonical, even with a matching hash
    entries[1] = dataclasses.replace(
        entries[1], payload=text, payload_sha256=hashlib.sha256(text.encode()).hexdigest()
    )
    check = verify_chain(entries)
    assert check.problem is not None and (check.problem.seq, check.problem.reason) == (2, "payload")


@pytest.mark.parametrize("deleted", [0, 2])
def test_deleting_an_entry_is_named(deleted: int) -> None:
    entries = _chain(5)
    del entries[deleted]
    check = verify_chain(entries)
    assert check.problem is not None and check.problem.reason == "sequence"
    assert "missing or deleted" in check.problem.detail
    assert check.problem.position == deleted


def test_reordering_entries_is_named() -> None:
    entries = _chain(5)
    entries[1], entries[3] = entries[3], entries[1]
    check = verify_chain(entries)
    assert check.problem is not None and check.problem.reason == "sequence"
    assert check.problem.seq == 4 and "expected seq 2" in check.problem.detail


def test_renumbered_entries_after_a_deletion_are_caught_by_the_links() -> None:
    entries = _chain(5)
    del entries[2]
    renumbered = [dataclasses.replace(e, seq=i + 1) for i, e in enumerate(entries)]
    check = verify_chain(renumbered)
    assert check.problem is not None and check.problem.seq == 3
    assert check.problem.reason == "prev_sha256"


def test_an_entry_without_its_payload_still_chains() -> None:
    entries = _chain(4)
    entries[1] = dataclasses.replace(entries[1], payload=None)
    assert verify_chain(entries).ok
    entries[1] = dataclasses.replace(entries[1], payload_sha256="0" * 64)
    check = verify_chain(entries)
    assert check.problem is not None and (check.problem.seq, check.problem.reason) == (
        2,
        "entry_sha256",
    )
