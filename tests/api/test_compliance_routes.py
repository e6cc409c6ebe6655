"""Compliance routes against a real server on the demo site: the summary and its exception
pages agree with the pure verdicts, a run's evidence and history, a policy change recomputes
while keeping old verdicts, and each batch's rows hash to what the audit log recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from live_server import LiveServer, live_server, wait_until

from api.auth import Role, create_token
from api.demo import load_demo
from models.audit.chain import verify_chain
from models.compliance.verdict_audit import verdict_rows_sha256
from models.store import open_store, read_active_policy
from models.store.audit import read_audit_entries
from models.store.verdicts import _runs_to_check, compute_verdicts

GRANT = "NIH-R01-GM123"  # the demo grant with the HIPAA regime


@dataclass
class Site:
    server: LiveServer
    tokens: dict[str, str]
    db: Path
    expected: pl.DataFrame  # the pure verdicts of the grant's runs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("compliance")
    db = tmp / "site.duckdb"
    con = open_store(db)
    try:
        load_demo(con)
        tokens = {r.value: create_token(con, r)[1] for r in (Role.auditor, Role.admin)}
        active = read_active_policy(con)
        assert active is not None
        expected = compute_verdicts(_runs_to_check(con, None), active.policy).filter(
            pl.col("grant_id") == GRANT
        )
    finally:
        con.close()
    config = tmp / "site.toml"
    config.write_text(f'db = "{db}"\nrecompute_interval_s = 1\n', encoding="utf-8")
    with live_server(tmp, config=config) as server:
        server.wait_for_snapshot(tokens["admin"])
        yield Site(server, tokens, db, expected)


def _summary(site: Site, query: str = "") -> httpx.Response:
    return site.server.get(f"/v1/compliance/{GRANT}{query}", token=site.tokens["auditor"])


def _ready(site: Site) -> dict[str, object]:
    def computed() -> dict[str, object] | None:
        body = _summary(site).json()
        return body if body.get("computed_at") else None

    found: dict[str, object] = wait_until(computed, timeout=30, what="a first verdict batch")
    return found


def test_summary_and_exception_pages_match_the_pure_verdicts(site: Site) -> None:
    body = _ready(site)
    want = dict(site.expected.group_by("verdict").len().iter_rows())
    assert body["regime"] == "HIPAA"
    assert body["counts"] == {k: want.get(k, 0) for k in ("approved", "violation", "unknown")}
    assert want.get("violation"), "the demo's lapsed GPU certification gives violations"
    exceptions = site.expected.filter(pl.col("verdict") != "approved").sort("run_key")
    pages: list[dict[str, object]] = []
    offset: int | None = 0
    while offset is not None:
        page = _summary(site, f"?limit=7&offset={offset}").json()["exceptions"]
        assert page["count"] == exceptions.height and len(page["data"]) <= 7
        pages.extend(page["data"])
        offset = page["next_offset"]
    assert [p["run_key"] for p in pages] == exceptions.get_column("run_key").to_list()
    assert [(p["verdict"], p["rule"], p["offending_node"]) for p in pages] == list(
        exceptions.select("verdict", "rule", "offending_node").iter_rows()
    )
    only = _summary(site, "?verdict=violation&limit=1000").json()["exceptions"]
    assert only["count"] == want["violation"]
    assert {p["verdict"] for p in only["data"]} == {"violation"}


def test_run_evidence_and_unknown_grants_or_runs(site: Site) -> None:
    _ready(site)
    row = site.expected.filter(pl.col("verdict") == "violation").row(0, named=True)
    answer = site.server.get(
        f"/v1/compliance/{GRANT}/runs/{row['run_key']}", token=site.tokens["auditor"]
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    current = body["current"]
    assert (current["verdict"], current["rule"], current["offending_node"]) == (
        "violation",
        row["rule"],
        row["offending_node"],
    )
    assert current["evidence"] == json.loads(row["evidence"])
    assert body["history"][0] == current
    for path, detail in (
        ("/v1/compliance/NO-SUCH-GRANT", "no grant NO-SUCH-GRANT"),
        (f"/v1/compliance/{GRANT}/runs/hpc/1/0", "no verdict for run hpc/1/0"),
    ):
        missing = site.server.get(path, token=site.tokens["auditor"])
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert detail in missing.json()["detail"]
    assert _summary(site, "?limit=0").status_code == 422


def test_policy_change_recomputes_keeps_history_and_audit_hashes_match(site: Site) -> None:
    first = _ready(site)
    grant = {
        "id": "NEW-1",
        "funder": "test",
        "budget": "1",
        "start": str(datetime.now(UTC).date() - timedelta(days=1)),
        "end": str(datetime.now(UTC).date() + timedelta(days=30)),
        "members": [{"account": "nobody-here", "start": str(datetime.now(UTC).date())}],
    }
    added = site.server.request("POST", "/v1/grants", token=site.tokens["admin"], json=grant)
    assert added.status_code == 201, added.text

    def recomputed() -> dict[str, object] | None:
        body = _summary(site).json()
        return body if body["policy_version"] != first["policy_version"] else None

    after = wait_until(recomputed, timeout=30, what="a verdict batch under the new policy")
    assert after["counts"] == first["counts"]
    run_key = site.expected.row(0, named=True)["run_key"]
    body = site.server.get(
        f"/v1/compliance/{GRANT}/runs/{run_key}", token=site.tokens["auditor"]
    ).json()
    versions = [v["policy_version"] for v in body["history"]]
    assert versions[0] == after["policy_version"] and first["policy_version"] in versions
    assert body["current"]["batch_id"] == body["history"][0]["batch_id"]

    site.server.process.terminate()
    site.server.process.wait(timeout=30)
    con = open_store(site.db)
    try:
        entries = read_audit_entries(con, kinds=None)
        assert verify_chain(entries).ok
        logged = [json.loads(e.payload) for e in entries if e.kind == "verdict_batch"]
        assert len(logged) >= 2
        for payload in logged:
            rows = con.sql(
                "SELECT * FROM verdicts WHERE batch_id = ?", params=[payload["batch_id"]]
            ).pl()
            assert rows.height == payload["runs_checked"]
            assert verdict_rows_sha256(rows) == payload["rows_sha256"]
        # altering one stored verdict no longer matches its audit entry
        con.execute(
            "UPDATE verdicts SET verdict = 'approved', rule = NULL WHERE verdict = 'violation' "
            "AND batch_id = ?",
            [logged[0]["batch_id"]],
        )
        rows = con.sql(
            "SELECT * FROM verdicts WHERE batch_id = ?", params=[logged[0]["batch_id"]]
        ).pl()
        assert verdict_rows_sha256(rows) != logged[0]["rows_sha256"]
    finally:
        con.close()
