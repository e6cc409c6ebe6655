"""`fairledger audit verify|bundle|head` run as a user would, and the audit routes on a real
server: a clean store verifies, an altered one fails naming the run, bundles are byte-identical
and verify offline, an altered bundle fails naming the file."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from live_server import base_env, cli, live_server

from api.auth import Role, create_token
from models.audit.bundle import unzip_files, verify_bundle
from models.store import open_store

GRANT = "NIH-R01-GM123"  # the demo grant with a regime


def _run(db: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args, db=db), capture_output=True, text=True, env=base_env())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Return a demo store and the latest period with runs of the grant."""
    db = tmp_path_factory.mktemp("audit") / "demo.duckdb"
    loaded = _run(db, "demo")
    assert loaded.returncode == 0, loaded.stderr
    con = open_store(db)
    try:
        period = con.execute("SELECT strftime(max(end_at), '%Y-%m') FROM runs").fetchall()[0][0]
    finally:
        con.close()
    return db, str(period)


def test_verify_prints_the_head_of_a_clean_store(demo: tuple[Path, str]) -> None:
    db, _ = demo
    head = _run(db, "audit", "head")
    assert head.returncode == 0, head.stderr
    seq, digest, _at = head.stdout.strip().split("\t")
    verified = _run(db, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"OK store: head seq {seq} {digest} (entries {seq}, ")
    report = json.loads(_run(db, "audit", "verify", "--json").stdout)
    assert report["ok"] and report["head_sha256"] == digest and report["findings"] == []


def test_verify_names_an_altered_run_and_exits_1(demo: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = demo
    copy = tmp_path / "altered.duckdb"
    copy.write_bytes(db.read_bytes())
    con = open_store(copy)
    try:
        run_key = con.execute("SELECT min(run_key) FROM runs").fetchall()[0][0]
        con.execute("UPDATE runs SET alloc_cpus = alloc_cpus + 1 WHERE run_key = ?", [run_key])
    finally:
        con.close()
    failed = _run(copy, "audit", "verify")
    assert failed.returncode == 1, failed.stdout
    assert failed.stderr.startswith(f"FAILED store: run {run_key} (batch 1): its content hashes")


def test_bundles_are_byte_identical_and_verify_offline(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    db, period = demo
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    for target in (first, second):
        made = _run(db, "audit", "bundle", GRANT, period, "-o", str(target))
        assert made.returncode == 0, made.stderr
    assert first.read_bytes() == second.read_bytes()
    files = unzip_files(first.read_bytes())
    assert json.loads(files["manifest.json"])["counts"]["runs"] > 0
    checked = _run(None, "audit", "verify", "--bundle", str(first))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"OK bundle {first}: head seq ")

    # Rewrite one byte of runs.jsonl inside the zip.
    runs = bytearray(files["runs.jsonl"])
    runs[len(runs) // 2] ^= 0x01
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as out:
        for name, data in files.items():
            out.writestr(name, bytes(runs) if name == "runs.jsonl" else data)
    failed = _run(None, "audit", "verify", "--bundle", str(forged))
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"FAILED bundle {forged}: bundle file runs.jsonl: its SHA-256")

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    refused = _run(None, "audit", "verify", "--bundle", str(junk))
    assert refused.returncode == 1 and "not a readable zip" in refused.stderr


def test_bundle_refuses_an_unknown_grant_or_period(demo: tuple[Path, str], tmp_path: Path) -> None:
    db, period = demo
    unknown = _run(db, "audit", "bundle", "NO-SUCH", period, "-o", str(tmp_path / "x.zip"))
    assert unknown.returncode == 2 and "grant 'NO-SUCH' is not in the active policy" in (
        unknown.stderr
    )
    bad = _run(db, "audit", "bundle", GRANT, "2026-13", "-o", str(tmp_path / "x.zip"))
    assert bad.returncode == 2 and "expected YYYY-MM" in bad.stderr
    assert not (tmp_path / "x.zip").exists()


def test_audit_routes_on_a_real_server(demo: tuple[Path, str], tmp_path: Path) -> None:
    db, period = demo
    copy = tmp_path / "served.duckdb"
    copy.write_bytes(db.read_bytes())
    con = open_store(copy)
    try:
        token = create_token(con, Role.auditor)[1]
    finally:
        con.close()
    with live_server(tmp_path, db=copy) as server:
        head = server.get("/v1/audit/head", token=token)
        assert head.status_code == 200, head.text
        page = server.get("/v1/audit/entries?limit=1", token=token).json()
        assert page["count"] >= 2 and len(page["data"]) == 1 and page["next_after_seq"] == 1
        assert page["data"][0]["seq"] == 1 and page["data"][0]["prev_sha256"] == "0" * 64
        rest = server.get("/v1/audit/entries?after_seq=1&limit=1000", token=token).json()
        assert [e["seq"] for e in rest["data"]] == list(range(2, rest["count"] + 1))
        zipped = server.get(f"/v1/audit/bundle/{GRANT}/{period}", token=token)
        assert zipped.status_code == 200, zipped.text
        assert zipped.headers["content-type"] == "application/zip"
        files = unzip_files(zipped.content)
        report = verify_bundle(files)
        assert report.ok, [f.message() for f in report.findings]
        now = server.get("/v1/audit/head", token=token).json()
        assert json.loads(files["manifest.json"])["head_seq"] == now["seq"]
        assert zipfile.ZipFile(io.BytesIO(zipped.content)).testzip() is None
        missing = server.get(f"/v1/audit/bundle/NO-SUCH/{period}", token=token)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert "NO-SUCH" in missing.json()["detail"]
        bad = server.get(f"/v1/audit/bundle/{GRANT}/March", token=token)
        assert bad.status_code == 422
