"""Every route with every role against a real server: 401 without a token, 403 for a role the
route does not declare, neither for one it does; and every error is one problem+json shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from live_server import LiveServer, live_server

from api.auth import Role, create_token
from api.demo import load_demo
from api.main import create_app
from api.routes import route_access
from api.settings import Settings
from models.store import open_store

ROUTES = route_access(create_app(Settings()))
NO_TOKEN = "no token"
CALLERS = [NO_TOKEN, "bad token", "scheduler", "finance", "auditor", "viewer", "admin"]
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
VIEWER_ACCOUNTS = ["physics"]


@dataclass
class Site:
    server: LiveServer
    tokens: dict[str, str]
    victim: str  # a token id the DELETE route may revoke
    association: tuple[str, str, str]  # one the viewer may see
    hidden: tuple[str, str, str]  # one it may not
    run_key: str  # a stored run (its key has slashes)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("roles")
    db = tmp / "roles.duckdb"
    con = open_store(db)
    try:
        load_demo(con)
        tokens = {
            role.value: create_token(
                con, role, accounts=VIEWER_ACCOUNTS if role is Role.viewer else None
            )[1]
            for role in Role
        }
        tokens["bad token"] = "flt_not-a-token"
        victim, _ = create_token(con, Role.scheduler, note="revoked by the matrix")
        run_key = con.execute("SELECT min(run_key) FROM runs").fetchall()[0][0]
    finally:
        con.close()
    with live_server(tmp, db=db) as server:
        data = server.wait_for_snapshot(tokens["admin"]).json()["data"]
        users = [r for r in data if r["user"] and r["cluster"] == "hpc"]
        seen = next(r for r in users if r["account"] == "physics-lab")
        hidden = next(r for r in users if r["account"] == "ml-lab")
        yield Site(
            server,
            tokens,
            victim,
            (seen["cluster"], seen["account"], seen["user"]),
            (hidden["cluster"], hidden["account"], hidden["user"]),
            run_key,
        )


def _url(path: str, site: Site) -> str:
    cluster, account, user = site.association
    return (
        path.replace("{cluster}", cluster)
        .replace("{account}", account)
        .replace("{user}", user)
        .replace("{token_id}", site.victim)
        .replace("{run_key:path}", site.run_key)
        .replace("{grant_id}", "NSF-PHY-2231")
        .replace("{grant}", "NIH-R01-GM123")  # the demo grant with a regime (HIPAA)
        .replace("{period}", "2099-01")  # a period that has not ended: closing it is refused
        .replace("{page}", "usage")
    )


def _call(site: Site, method: str, path: str, caller: str, **kwargs: object) -> httpx.Response:
    token = None if caller == NO_TOKEN else site.tokens[caller]
    if method == "POST" and "json" not in kwargs:
        kwargs["json"] = {"role": "viewer", "accounts": ["physics"], "note": "matrix"}
    return site.server.request(method, _url(path, site), token=token, **kwargs)  # type: ignore[arg-type]


def assert_problem(answer: httpx.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    body = answer.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"] == "about:blank" or body["type"].startswith("urn:fairledger:problem:")
    return body


# The declared table, written out: changing who may call a route is a deliberate act.
READERS = {"scheduler", "auditor", "admin", "viewer"}
EXPECTED = {
    ("GET", "/"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/v1/health"): None,
    ("GET", "/v1/factors"): READERS,
    ("GET", "/v1/factors/{cluster}/{account}/{user}"): READERS,
    ("GET", "/v1/snapshots"): {"scheduler", "auditor", "admin"},
    ("GET", "/v1/status"): {"auditor", "admin"},
    ("GET", "/v1/tokens"): {"admin"},
    ("POST", "/v1/tokens"): {"admin"},
    ("DELETE", "/v1/tokens/{token_id}"): {"admin"},
    ("GET", "/v1/runs/{run_key:path}/versions"): {"auditor", "admin"},
    ("GET", "/v1/quarantine"): {"auditor", "admin"},
    ("POST", "/v1/ingest"): {"admin"},
    ("GET", "/v1/explain/{cluster}/{account}/{user}"): {"auditor", "admin", "viewer"},
    ("POST", "/v1/simulate"): {"admin"},
    ("GET", "/v1/grants"): {"finance", "auditor", "admin"},
    ("POST", "/v1/grants"): {"admin"},
    ("GET", "/v1/grants/{grant_id}/statements/{period}"): {"finance", "auditor", "admin"},
    ("POST", "/v1/grants/{grant_id}/adjustments"): {"finance", "admin"},
    ("GET", "/v1/periods"): {"finance", "auditor", "admin"},
    ("POST", "/v1/periods/{period}/close"): {"admin"},
    ("GET", "/v1/quote"): {"finance", "auditor", "admin", "viewer"},
    ("GET", "/v1/unbilled"): {"finance", "auditor", "admin"},
    ("GET", "/dashboards"): None,
    ("GET", "/dashboards/assets/vega.js"): None,
    ("GET", "/dashboards/{page}"): None,
    ("GET", "/v1/charts/usage"): {"admin", "auditor", "finance", "viewer"},
    ("GET", "/v1/charts/shares"): {"admin", "auditor", "finance", "viewer"},
    ("GET", "/v1/charts/ingest"): {"admin", "auditor"},
    ("GET", "/v1/charts/burndown"): {"admin", "auditor", "finance", "viewer"},
    ("GET", "/v1/charts/compliance"): {"admin", "auditor", "finance"},
    ("GET", "/v1/compliance/{grant}"): {"auditor", "admin", "finance"},
    ("GET", "/v1/compliance/{grant}/runs/{run_key:path}"): {"auditor", "admin", "finance"},
    ("GET", "/v1/audit/head"): {"auditor", "admin"},
    ("GET", "/v1/audit/entries"): {"auditor", "admin"},
    ("GET", "/v1/audit/bundle/{grant}/{period}"): {"auditor", "admin"},
}


def test_every_route_declares_the_expected_roles() -> None:
    declared = {
        key: None if access.roles is None else {r.value for r in access.roles}
        for key, access in ROUTES.items()
    }
    assert declared == EXPECTED
    assert dict(ROUTES[("GET", "/v1/snapshots")].only) == {"as_of": frozenset({Role.admin})}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=lambda v: str(v))
def test_role_matrix(site: Site, method: str, path: str, caller: str) -> None:
    access = ROUTES[(method, path)]
    answer = _call(site, method, path, caller)
    if access.roles is None:
        assert answer.status_code not in (401, 403), answer.text
    elif caller in (NO_TOKEN, "bad token"):
        body = assert_problem(answer, 401)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert body["type"] == "urn:fairledger:problem:unauthenticated"
    elif Role(caller) in access.roles:
        assert answer.status_code not in (401, 403), answer.text
        if path in ("/v1/runs/{run_key:path}/versions", "/v1/quarantine"):
            assert answer.status_code == 200, answer.text  # a real run key, a real page
        assert answer.status_code < 500, answer.text
    else:
        body = assert_problem(answer, 403)
        assert caller in str(body["detail"])
    if answer.status_code >= 400:
        assert_problem(answer, answer.status_code)


@pytest.mark.parametrize("caller", ["scheduler", "auditor", "viewer", "finance", "admin"])
def test_past_time_recompute_is_admin_only(site: Site, caller: str) -> None:
    answer = _call(site, "GET", "/v1/snapshots?as_of=2026-10-01T00:00:00Z", caller)
    if caller == "admin":
        assert answer.status_code == 200
        body = answer.json()
        assert body["snapshot"]["snapshot_id"] is None  # computed, not published
        assert body["snapshot"]["as_of"] == "2026-10-01T00:00:00Z"
    else:
        assert_problem(answer, 403)


def test_viewer_sees_only_its_accounts_subtree(site: Site) -> None:
    full = site.server.get("/v1/factors", token=site.tokens["auditor"]).json()
    mine = site.server.get("/v1/factors", token=site.tokens["viewer"])
    assert mine.status_code == 200
    rows = mine.json()["data"]
    allowed = {"physics", "physics-lab", "physics-hpc"}
    assert rows and {r["account"] for r in rows} == allowed
    assert len(rows) == len([r for r in full["data"] if r["account"] in allowed])
    assert (
        mine.headers["etag"]
        != site.server.get("/v1/factors", token=site.tokens["auditor"]).headers["etag"]
    )
    one = site.server.get(
        "/v1/factors/{}/{}/{}".format(*site.association), token=site.tokens["viewer"]
    )
    assert one.status_code == 200 and one.json()["user"] == site.association[2]
    hidden = site.server.get(
        "/v1/factors/{}/{}/{}".format(*site.hidden), token=site.tokens["viewer"]
    )
    body = assert_problem(hidden, 404)
    assert site.hidden[2] in str(body["detail"])
    # the same association is there for a role that sees everything
    assert (
        site.server.get(
            "/v1/factors/{}/{}/{}".format(*site.hidden), token=site.tokens["scheduler"]
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nowhere", 404),
        ("POST", "/v1/factors", 405),
        ("GET", "/v1/factors/hpc/nobody/nobody", 404),
        ("GET", "/v1/factors?format=xml", 422),
        ("GET", "/v1/snapshots?limit=0", 422),
        ("GET", "/v1/snapshots?as_of=yesterday", 422),
        ("POST", "/v1/tokens", 422),
        ("DELETE", "/v1/tokens/tnosuchtoken", 404),
        ("GET", "/v1/runs/hpc/1/0/versions", 404),
        ("GET", "/v1/quarantine?status=maybe", 422),
        ("GET", "/v1/quarantine?limit=0", 422),
    ],
)
def test_errors_are_problem_json(site: Site, method: str, path: str, status: int) -> None:
    kwargs = {"json": {"role": "viewer"}} if method == "POST" else {}
    answer = _call(site, method, path, "admin", **kwargs)
    body = assert_problem(answer, status)
    assert body["instance"] == path.split("?")[0]
    if status == 422:
        assert body["type"] == "urn:fairledger:problem:validation"
        assert body["errors"], body


def test_json_is_strict_and_csv_matches(site: Site) -> None:
    answer = site.server.get("/v1/factors", token=site.tokens["scheduler"])

    def refuse(constant: str) -> object:
        raise AssertionError(f"not JSON: {constant}")

    body = json.loads(answer.text, parse_constant=refuse)
    assert any(r["level_fs"] == "inf" for r in body["data"]), "users without usage rank as inf"
    csv = site.server.get("/v1/factors?format=csv", token=site.tokens["scheduler"])
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("cluster,account,user,parent_account,depth,raw_shares")
    assert len(lines) == body["count"] + 1
    assert csv.headers["etag"] != answer.headers["etag"]


def test_tokens_created_and_revoked_over_http_work_at_once(site: Site) -> None:
    admin = site.tokens["admin"]
    made = site.server.request(
        "POST", "/v1/tokens", token=admin, json={"role": "scheduler", "note": "new"}
    )
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["token_id"]
    assert site.server.get("/v1/factors", token=token).status_code == 200
    listed = site.server.get("/v1/tokens", token=admin).json()
    assert token_id in {t["token_id"] for t in listed["data"]}
    assert token not in json.dumps(listed)
    assert site.server.request("DELETE", f"/v1/tokens/{token_id}", token=admin).status_code == 204
    assert_problem(site.server.get("/v1/factors", token=token), 401)
