"""`fairledger token create|list|revoke`: shown once, stored hashed, viewers need accounts."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from live_server import base_env, cli

from models.store import open_store
from models.store.tokens import read_tokens


def _run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args, db=db), capture_output=True, text=True, env=base_env())


def test_tokens_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    made = _run(db, "token", "create", "--role", "viewer", "--accounts", "physics,chem")
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    assert token.startswith("flt_") and len(token) == 47
    listed = _run(db, "token", "list")
    assert listed.returncode == 0 and "viewer\tphysics,chem" in listed.stdout
    assert token not in listed.stdout
    con = open_store(db)
    try:
        stored = read_tokens(con).row(0, named=True)
    finally:
        con.close()
    assert stored["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(stored)
    revoked = _run(db, "token", "revoke", stored["token_id"])
    assert revoked.returncode == 0 and _run(db, "token", "list").stdout == ""


def test_bad_token_requests_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    viewer = _run(db, "token", "create", "--role", "viewer")
    assert viewer.returncode == 1 and "needs --accounts" in viewer.stderr
    scoped = _run(db, "token", "create", "--role", "admin", "--accounts", "physics")
    assert scoped.returncode == 1 and "only a viewer" in scoped.stderr
    unknown = _run(db, "token", "create", "--role", "root")
    assert unknown.returncode == 1 and "unknown role 'root'" in unknown.stderr
    assert _run(db, "token", "revoke", "tnothing").returncode == 1
