"""Audit bundles: the files of a grant's period and their offline verification (pure).

A bundle is a zip of these files (names sorted, fixed timestamps: the same inputs give the same
bytes):

- ``README.txt``: how to verify it with standard tools;
- ``manifest.json``: grant, period, the chain head, counts;
- ``audit_log.jsonl``: every entry from seq 1 to the head, one canonical JSON object a line with
  the header fields and hashes; ``payload`` (the canonical payload text) only for the entries
  that concern this bundle;
- ``runs.jsonl``: every stored version of the grant's runs in the period, one record line each
  (the exact bytes whose SHA-256 is the record hash);
- ``record_hashes/batch-NNNNNNNNNN.txt``: for each ingest batch that stored one of those
  versions, the record hashes of *all* the versions it stored, one ``hash\\n`` a line in the
  documented order (the file's SHA-256 is the batch's ``records_sha256``);
- ``policies/policy-vNNNN.toml``: the policy versions in force in the period (their SHA-256 is
  the ``policy_sha256`` of their entry);
- ``verdicts.jsonl``: the runs' current compliance verdicts (canonical JSON a line);
- ``SHA256SUMS``: ``sha256sum -c`` input for every other file.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.audit.chain import AuditEntry, canonical_json, format_time, verify_chain
from models.audit.records import RECORD_FORMAT, parse_time
from models.audit.verify import Finding, VerifyReport, chain_findings

BUNDLE_FORMAT = "fairledger-audit-bundle/1"
SUMS = "SHA256SUMS"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_BATCH_FILE = re.compile(r"^record_hashes/batch-(\d+)\.txt$")
_POLICY_FILE = re.compile(r"^policies/policy-v(\d+)\.toml$")


def batch_file(batch_id: int) -> str:
    """Return the bundle path of a batch's record hashes."""
    return f"record_hashes/batch-{batch_id:010d}.txt"


def policy_file(version_id: int) -> str:
    """Return the bundle path of a policy version's text."""
    return f"policies/policy-v{version_id:04d}.toml"


@dataclass(frozen=True)
class BundleInputs:
    """What a bundle holds, read from the store.

    ``record_lines``: (run_key, batch_id, record line) of every version of the bundle's runs;
    ``batch_hashes``: {batch_id: record hashes of every version it stored, in order};
    ``policies``: {version_id: policy text}; ``verdicts``: the runs' verdict rows, or None
    when the store has no verdicts table yet; ``relevant``: seqs of the entries whose payload
    is included.
    """

    grant: str
    period: str
    entries: Sequence[AuditEntry]
    relevant: frozenset[int]
    record_lines: Sequence[tuple[str, int, str]]
    batch_hashes: Mapping[int, Sequence[str]]
    policies: Mapping[int, str]
    verdicts: Sequence[Mapping[str, Any]] | None


def _entry_line(entry: AuditEntry, *, with_payload: bool) -> str:
    obj: dict[str, Any] = {**entry.header(), "entry_sha256": entry.entry_sha256}
    if with_payload and entry.payload is not None:
        obj["payload"] = entry.payload
    return canonical_json(obj)


def bundle_files(inputs: BundleInputs) -> dict[str, bytes]:
    """Return {path: bytes} of every file of the bundle, SHA256SUMS and README included."""
    files: dict[str, bytes] = {}
    files["audit_log.jsonl"] = "".join(
        _entry_line(e, with_payload=e.seq in inputs.relevant) + "\n" for e in inputs.entries
    ).encode()
    files["runs.jsonl"] = "".join(
        line + "\n" for _, _, line in sorted(inputs.record_lines)
    ).encode()
    for batch, hashes in inputs.batch_hashes.items():
        files[batch_file(batch)] = "".join(h + "\n" for h in hashes).encode()
    for version, text in inputs.policies.items():
        files[policy_file(version)] = text.encode()
    verdicts = inputs.verdicts or []
    files["verdicts.jsonl"] = "".join(canonical_json(v) + "\n" for v in verdicts).encode()
    head = inputs.entries[-1] if inputs.entries else None
    manifest = {
        "format": BUNDLE_FORMAT,
        "grant": inputs.grant,
        "period": inputs.period,
        "record_format": RECORD_FORMAT,
        "head_seq": head.seq if head else 0,
        "head_sha256": head.entry_sha256 if head else None,
        "head_at": format_time(head.at) if head else None,
        "counts": {
            "entries": len(inputs.entries),
            "entries_with_payload": len(inputs.relevant),
            "runs": len({key for key, _, _ in inputs.record_lines}),
            "run_versions": len(inputs.record_lines),
            "batches": len(inputs.batch_hashes),
            "policy_versions": len(inputs.policies),
            "verdicts": len(verdicts),
        },
        "verdicts_included": inputs.verdicts is not None,
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files["README.txt"] = readme_text(inputs.grant, inputs.period).encode()
    files[SUMS] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode()
    return files


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """Return a zip of ``files`` with sorted names and fixed times (same files, same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name], compresslevel=6)
    return out.getvalue()


def unzip_files(data: bytes) -> dict[str, bytes]:
    """Return {path: bytes} of a zip's files; ValueError when ``data`` is not a readable zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile as exc:
        raise ValueError(str(exc)) from exc


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file(name: str) -> str:
    return f"bundle file {name}"


def _sums_findings(files: Mapping[str, bytes]) -> list[Finding]:
    if SUMS not in files:
        return [Finding(0, _file(SUMS), "missing")]
    listed: dict[str, str] = {}
    findings = []
    for number, line in enumerate(files[SUMS].decode("utf-8", "replace").splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
        if match is None:
            findings.append(Finding(0, _file(SUMS), f"line {number} is not '<sha256>  <name>'"))
            continue
        listed[match.group(2)] = match.group(1)
    for name, digest in sorted(listed.items()):
        if name not in files:
            findings.append(Finding(0, _file(name), "listed in SHA256SUMS but missing"))
        elif _sha(files[name]) != digest:
            findings.append(
                Finding(
                    0,
                    _file(name),
                    f"its SHA-256 is {_sha(files[name])}, SHA256SUMS lists {digest} "
                    "(the file or SHA256SUMS was altered)",
                )
            )
    for name in sorted(set(files) - set(listed) - {SUMS}):
        findings.append(Finding(0, _file(name), "not listed in SHA256SUMS"))
    return findings


def _read_entries(data: bytes) -> tuple[list[AuditEntry], list[Finding]]:
    entries = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        try:
            obj = json.loads(line)
            entries.append(
                AuditEntry(
                    seq=int(obj["seq"]),
                    at=parse_time(obj["at"]),
                    kind=str(obj["kind"]),
                    actor=str(obj["actor"]),
                    payload=obj.get("payload"),
                    payload_sha256=str(obj["payload_sha256"]),
                    prev_sha256=str(obj["prev_sha256"]),
                    entry_sha256=str(obj["entry_sha256"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            what = f"line {number} is not a log entry ({type(exc).__name__}: {exc})"
            return entries, [Finding(0, _file("audit_log.jsonl"), what)]
    return entries, []


def verify_bundle(files: Mapping[str, bytes]) -> VerifyReport:
    """Return what checking a bundle's files offline found (``ok`` when everything matches).

    Checks, and reports in this order: SHA256SUMS, the chain of ``audit_log.jsonl`` up to the
    manifest's head, each batch's record hashes against its entry, each policy text against its
    entry, and each run version against its batch's hashes.
    """
    findings = _sums_findings(files)
    entries, problems = _read_entries(files.get("audit_log.jsonl", b""))
    findings += problems
    check = verify_chain(entries)
    findings += chain_findings(check)
    head = entries[-1] if entries else None
    try:
        manifest = json.loads(files.get("manifest.json", b"{}"))
    except ValueError:
        manifest = {}
        findings.append(Finding(0, _file("manifest.json"), "not JSON"))
    if head is not None and manifest.get("head_sha256") != head.entry_sha256:
        findings.append(
            Finding(
                head.seq,
                _file("manifest.json"),
                f"head_sha256 {manifest.get('head_sha256')} is not the last entry's hash "
                f"{head.entry_sha256}",
            )
        )
    findings += _content_findings(files, entries)
    return VerifyReport(
        head_seq=head.seq if head else 0,
        head_sha256=head.entry_sha256 if head else "",
        counts={
            "entries": len(entries),
            "files": len(files),
            "run_versions": len(files.get("runs.jsonl", b"").splitlines()),
        },
        findings=findings,
    )


def _content_findings(files: Mapping[str, bytes], entries: Iterable[AuditEntry]) -> list[Finding]:
    batches: dict[int, tuple[int, dict[str, Any]]] = {}
    policies: dict[int, tuple[int, dict[str, Any]]] = {}
    for entry in entries:
        payload = entry.payload_object()
        if entry.kind == "ingest_batch" and "batch_id" in payload:
            batches[int(payload["batch_id"])] = (entry.seq, payload)
        elif entry.kind == "policy_version" and "version_id" in payload:
            policies[int(payload["version_id"])] = (entry.seq, payload)
    findings = []
    known: set[str] = set()
    for name in sorted(files):
        if match := _BATCH_FILE.match(name):
            batch = int(match.group(1))
            if batch not in batches:
                findings.append(Finding(0, _file(name), f"no ingest_batch entry for batch {batch}"))
                continue
            seq, payload = batches[batch]
            lines = files[name].decode("utf-8", "replace").splitlines()
            known.update(lines)
            if _sha(files[name]) != payload.get("records_sha256"):
                findings.append(
                    Finding(
                        seq,
                        _file(name),
                        f"hashes to {_sha(files[name])}, the entry of batch {batch} (seq {seq}) "
                        f"records {payload.get('records_sha256')}",
                    )
                )
            elif len(lines) != payload.get("run_versions"):
                findings.append(Finding(seq, _file(name), "line count differs from run_versions"))
        elif match := _POLICY_FILE.match(name):
            version = int(match.group(1))
            seq, payload = policies.get(version, (0, {}))
            if _sha(files[name]) != payload.get("policy_sha256"):
                findings.append(
                    Finding(
                        seq,
                        _file(name),
                        f"hashes to {_sha(files[name])}, the policy_version entry records "
                        f"{payload.get('policy_sha256')}",
                    )
                )
    for number, line in enumerate(files.get("runs.jsonl", b"").split(b"\n")[:-1], 1):
        if _sha(line) not in known:
            try:
                run_key = json.loads(line).get("run_key")
            except ValueError:
                run_key = None
            findings.append(
                Finding(
                    0,
                    _file("runs.jsonl"),
                    f"line {number} (run {run_key}) hashes to {_sha(line)}, which no included "
                    "batch recorded",
                )
            )
    return findings


def readme_text(grant: str, period: str) -> str:
    """Return the bundle's README: what it holds and how to verify it by hand."""
    return _README.replace("{grant}", grant).replace("{period}", period)


_README = """\
fairledger audit bundle: grant {grant}, period {period}
=========================================================

What is here
------------
manifest.json         grant, period, the audit log head (head_seq, head_sha256), counts
audit_log.jsonl       every audit log entry from seq 1 to the head, one JSON object a line:
                      seq, at, kind, actor, payload_sha256, prev_sha256, entry_sha256, and
                      "payload" (the payload's exact JSON text) for the entries about this bundle
runs.jsonl            every stored version of the grant's runs that ended in the period, one
                      record line each (the exact bytes that were hashed)
record_hashes/batch-N.txt
                      the record hashes of every run version ingest batch N stored, one a line
policies/policy-vN.toml
                      the policy versions in force in the period
verdicts.jsonl        the runs' current compliance verdicts (see manifest.json
                      "verdicts_included": false means the store had no verdicts yet)
SHA256SUMS            SHA-256 of every other file

The algorithm is documented in full in fairledger's docs/audit.md. SHA-256 is written in
lowercase hex everywhere. "Canonical JSON" is what Python's
json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes.

How to verify (standard tools: sha256sum, Python 3 with hashlib and json)
-------------------------------------------------------------------------
1. Files arrived intact:
       unzip bundle.zip -d bundle && cd bundle && sha256sum -c SHA256SUMS
   Every line must say OK.

2. The head is the one you recorded: compare manifest.json "head_sha256" with the head you
   recorded earlier from GET /v1/audit/head (or `fairledger audit verify`). It must also be
   the entry_sha256 of the last line of audit_log.jsonl.

3. The chain: for each line of audit_log.jsonl, in order (seq 1, 2, 3, ... with no gap):
   a. if it has "payload": sha256(payload as UTF-8) == payload_sha256;
   b. prev_sha256 == entry_sha256 of the line before (64 zeros for seq 1);
   c. entry_sha256 == sha256 of the canonical JSON of the object with exactly the keys
      actor, at, kind, payload_sha256, prev_sha256, seq (as they appear on the line).
   In Python:
       import hashlib, json
       prev = "0" * 64
       for n, line in enumerate(open("audit_log.jsonl", encoding="utf-8"), 1):
           e = json.loads(line)
           assert e["seq"] == n
           if "payload" in e:
               assert hashlib.sha256(e["payload"].encode()).hexdigest() == e["payload_sha256"]
           assert e["prev_sha256"] == prev
           head = {k: e[k] for k in ("actor", "at", "kind", "payload_sha256", "prev_sha256", "seq")}
           text = json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
           assert hashlib.sha256(text.encode()).hexdigest() == e["entry_sha256"]
           prev = e["entry_sha256"]

4. Each batch's record hashes are the ones the log recorded: for record_hashes/batch-N.txt,
   find the "ingest_batch" entry whose payload has "batch_id": N; then
       sha256sum record_hashes/batch-N.txt      == payload "records_sha256"
       wc -l < record_hashes/batch-N.txt        == payload "run_versions"

5. Each run version is one a batch recorded: the SHA-256 of each line of runs.jsonl (the line's
   bytes without its newline) must appear in one of the record_hashes files:
       while IFS= read -r line; do printf '%s' "$line" | sha256sum | cut -d' ' -f1; done \\
           < runs.jsonl | grep -vxF -f <(cat record_hashes/*.txt)
   must print nothing.

6. Each policy version is the one the log recorded: sha256sum policies/policy-vN.toml equals
   the "policy_sha256" of the "policy_version" entry whose payload has "version_id": N.

`fairledger audit verify --bundle bundle.zip` performs all of these checks.
"""
