"""Audit bundles: deterministic, verifiable offline by the README's procedure with hashlib
alone, and any alteration of any file named."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_data import build_store

from models.audit.bundle import SUMS, unzip_files, verify_bundle
from models.store import Connection, open_store
from models.store.audit import read_audit_head
from models.store.audit_bundle import build_bundle


@pytest.fixture
def audit_site(tmp_path: Path) -> Iterator[tuple[Path, Connection]]:
    """The audit store of ``audit_data`` (a connection, not the shared ``store`` handle) and its
    path."""
    path = tmp_path / "audit.duckdb"
    con = build_store(path)
    yield path, con
    con.close()


def _resum(files: dict[str, bytes]) -> dict[str, bytes]:
    """Return ``files`` with SHA256SUMS rewritten to match (what a careful forger does)."""
    out = {name: data for name, data in files.items() if name != SUMS}
    out[SUMS] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(out.items())
    ).encode()
    return out


def test_the_same_store_gives_the_same_bytes(audit_site: tuple[Path, Connection]) -> None:
    path, con = audit_site
    first = build_bundle(con, "NIH-7", "2026-03")
    assert build_bundle(con, "NIH-7", "2026-03") == first
    con.close()
    reopened = open_store(path)
    try:
        assert build_bundle(reopened, "NIH-7", "2026-03") == first
    finally:
        reopened.close()


def test_the_bundle_holds_the_grants_runs_of_the_period(
    audit_site: tuple[Path, Connection],
) -> None:
    _, con = audit_site
    files = unzip_files(build_bundle(con, "NIH-7", "2026-03"))
    runs = [json.loads(line) for line in files["runs.jsonl"].splitlines()]
    assert [r["run_key"] for r in runs] == [
        "hpc/101/1",  # both versions: the original and the revision
        "hpc/101/1",
        "hpc/102/1",
        "hpc/105/1",
        "hpc/106/1",
    ]  # not hpc/103/1 (another grant's account) nor hpc/104/1 (ended in April)
    manifest = json.loads(files["manifest.json"])
    head = read_audit_head(con)
    assert head is not None and manifest["head_sha256"] == head.entry_sha256
    assert manifest["counts"]["runs"] == 4 and manifest["counts"]["run_versions"] == 5
    assert sorted(files) == [
        "README.txt",
        SUMS,
        "audit_log.jsonl",
        "manifest.json",
        "policies/policy-v0001.toml",
        "record_hashes/batch-0000000001.txt",
        "record_hashes/batch-0000000002.txt",
        "runs.jsonl",
        "verdicts.jsonl",
    ]
    assert verify_bundle(files).ok
    with pytest.raises(ValueError, match="not in the active policy"):
        build_bundle(con, "NOPE", "2026-03")
    with pytest.raises(ValueError, match="expected YYYY-MM"):
        build_bundle(con, "NIH-7", "March")


def _readme_procedure(files: dict[str, bytes]) -> str:
    """Verify a bundle as its README says, with hashlib and json only; return the head."""
    sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    # 1. sha256sum -c SHA256SUMS
    for line in files[SUMS].decode().splitlines():
        digest, name = line.split("  ", 1)
        assert sha(files[name]) == digest, f"{name}: FAILED"
    # 3. the chain
    prev = "0" * 64
    entries = []
    for n, line in enumerate(files["audit_log.jsonl"].decode().splitlines(), 1):
        e = json.loads(line)
        assert e["seq"] == n
        if "payload" in e:
            assert sha(e["payload"].encode()) == e["payload_sha256"]
        assert e["prev_sha256"] == prev
        head = {k: e[k] for k in ("actor", "at", "kind", "payload_sha256", "prev_sha256", "seq")}
        text = json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert sha(text.encode()) == e["entry_sha256"]
        prev = e["entry_sha256"]
        entries.append(e)
    # 2. the head
    assert json.loads(files["manifest.json"])["head_sha256"] == prev
    payloads = [(e["kind"], json.loads(e["payload"])) for e in entries if "payload" in e]
    # 4. batches
    known = set()
    for name, data in files.items():
        if name.startswith("record_hashes/batch-"):
            batch = int(name.removeprefix("record_hashes/batch-").removesuffix(".txt"))
            (payload,) = [p for k, p in payloads if k == "ingest_batch" and p["batch_id"] == batch]
            assert sha(data) == payload["records_sha256"]
            assert data.count(b"\n") == payload["run_versions"]
            known.update(data.decode().split())
    # 5. runs
    for line in files["runs.jsonl"].split(b"\n")[:-1]:
        assert sha(line) in known
    # 6. policies
    for name, data in files.items():
        if name.startswith("policies/policy-v"):
            version = int(name.removeprefix("policies/policy-v").removesuffix(".toml"))
            (payload,) = [
                p for k, p in payloads if k == "policy_version" and p["version_id"] == version
            ]
            assert sha(data) == payload["policy_sha256"]
    return prev


def test_the_readme_procedure_verifies_a_bundle_with_hashlib_alone(
    audit_site: tuple[Path, Connection],
) -> None:
    _, con = audit_site
    files = unzip_files(build_bundle(con, "NIH-7", "2026-03"))
    head = read_audit_head(con)
    assert head is not None and _readme_procedure(files) == head.entry_sha256
    readme = files["README.txt"].decode()
    assert "sha256sum -c SHA256SUMS" in readme and "grant NIH-7, period 2026-03" in readme
    forged = dict(files)
    forged["runs.jsonl"] = forged["runs.jsonl"].replace(b'"alloc_cpus":4', b'"alloc_cpus":2', 1)
    with pytest.raises(AssertionError):
        _readme_procedure(_resum(forged))


BUNDLE_FILES = [
    "README.txt",
    SUMS,
    "audit_log.jsonl",
    "manifest.json",
    "policies/policy-v0001.toml",
    "record_hashes/batch-0000000001.txt",
    "record_hashes/batch-0000000002.txt",
    "runs.jsonl",
]


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_a_one_byte_change_to_any_file_is_named(
    audit_site: tuple[Path, Connection], name: str
) -> None:
    _, con = audit_site
    files = unzip_files(build_bundle(con, "NIH-7", "2026-03"))
    data = bytearray(files[name])
    middle = len(data) // 2
    data[middle] = ord("0") if data[middle] != ord("0") else ord("1")
    files[name] = bytes(data)
    report = verify_bundle(files)
    assert not report.ok and report.first is not None
    if name == SUMS:  # the altered line no longer matches the file it lists
        assert "SHA256SUMS" in report.first.message()
    else:
        assert report.first.message().startswith(f"bundle file {name}: ")


def test_an_added_verdict_line_is_named(audit_site: tuple[Path, Connection]) -> None:
    _, con = audit_site
    files = unzip_files(build_bundle(con, "NIH-7", "2026-03"))
    files["verdicts.jsonl"] += b'{"run_key":"hpc/101/1","verdict":"approved"}\n'
    report = verify_bundle(files)
    assert report.first is not None
    assert report.first.message().startswith("bundle file verdicts.jsonl: its SHA-256 is")


def test_forgeries_that_fix_sha256sums_are_still_named(audit_site: tuple[Path, Connection]) -> None:
    _, con = audit_site
    files = unzip_files(build_bundle(con, "NIH-7", "2026-03"))
    log = files["audit_log.jsonl"].splitlines(keepends=True)

    deleted = _resum({**files, "audit_log.jsonl": b"".join(log[:1] + log[2:])})
    first = verify_bundle(deleted).first
    assert first is not None and first.message().startswith("audit entry seq 3: expected seq 2")

    reordered = _resum({**files, "audit_log.jsonl": b"".join([log[1], log[0], *log[2:]])})
    first = verify_bundle(reordered).first
    assert first is not None and first.message().startswith("audit entry seq 2: expected seq 1")

    truncated = _resum({**files, "audit_log.jsonl": b"".join(log[:-1])})
    first = verify_bundle(truncated).first
    assert first is not None and "head_sha256" in first.message()

    runs = files["runs.jsonl"].replace(b'"job_name":"late"', b'"job_name":"LATE"')
    first = verify_bundle(_resum({**files, "runs.jsonl": runs})).first
    assert first is not None
    assert first.message().startswith("bundle file runs.jsonl: line 5 (run hpc/106/1) hashes to")

    policy = files["policies/policy-v0001.toml"].replace(b"1000", b"9000")
    first = verify_bundle(_resum({**files, "policies/policy-v0001.toml": policy})).first
    assert first is not None
    assert first.message().startswith("bundle file policies/policy-v0001.toml: hashes to")

    dropped = b"".join(files["record_hashes/batch-0000000002.txt"].splitlines(True)[1:])
    first = verify_bundle(_resum({**files, "record_hashes/batch-0000000002.txt": dropped})).first
    assert first is not None
    assert first.message().startswith("bundle file record_hashes/batch-0000000002.txt: hashes")
