"""Over HTTP, a policy whose associations are not a tree answers 422 and stores nothing
(issue 16). No route takes associations to store: ``POST /v1/grants`` writes a new version from
the active one, ``POST /v1/simulate`` reads a ``policy_toml`` without storing it."""

from __future__ import annotations

from pathlib import Path

from live_server import live_server

from api.auth import Role, create_token
from models.policy import Policy, load_policy_text
from models.store import open_store, write_policy
from tests.kit import CYCLIC_POLICY, self_parent_policy, site_policy

GRANT = {"id": "G-1", "funder": "NSF", "budget": "100", "start": "2026-01-01", "end": "2026-12-31"}


def _store(db: Path, policy: Policy) -> str:
    """Record ``policy`` without validating it again; return an admin token."""
    con = open_store(db)
    try:
        write_policy(con, policy, origin="test")
        return create_token(con, Role.admin)[1]
    finally:
        con.close()


def _versions(db: Path) -> int:
    con = open_store(db)
    try:
        return int(con.execute("SELECT count(*) FROM policy_versions").fetchall()[0][0])
    finally:
        con.close()


def test_simulating_a_policy_with_a_cycle_is_422(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    admin = _store(db, load_policy_text(site_policy({"a": ["alice"]})))
    with live_server(tmp_path, db=db) as server:
        answer = server.request(
            "POST", "/v1/simulate", token=admin, json={"policy_toml": CYCLIC_POLICY}
        )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "urn:fairledger:problem:invalid-policy"
    assert body["detail"] == "policy_toml: cluster lab: accounts a -> b -> a form a cycle"
    assert _versions(db) == 1


def test_a_grant_is_not_added_to_a_policy_that_is_not_a_tree(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    admin = _store(db, self_parent_policy())
    with live_server(tmp_path, db=db) as server:
        answer = server.request("POST", "/v1/grants", token=admin, json=GRANT)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == 'policy version 1: cluster lab: account "a" is its own parent'
    assert _versions(db) == 1
