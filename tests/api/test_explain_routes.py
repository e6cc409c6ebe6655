"""Explain and simulate over HTTP against a real server on the demo site."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, base_env, cli, demo_store, live_server

from api.demo import load_demo
from models.store import open_store, read_active_policy

AS_OF = "2026-10-01T00:00:00Z"


@dataclass
class Site:
    server: LiveServer
    tokens: dict[str, str]
    seen: tuple[str, str, str]  # a user in the viewer's accounts
    hidden: tuple[str, str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("explain")
    db = tmp / "explain.duckdb"
    tokens = demo_store(db)
    with live_server(tmp, db=db) as server:
        data = server.wait_for_snapshot(tokens["admin"]).json()["data"]
        users = [r for r in data if r["user"] and r["cluster"] == "hpc"]
        seen = next(r for r in users if r["account"] == "physics-lab")
        hidden = next(r for r in users if r["account"] == "ml-lab")
        yield Site(
            server,
            tokens,
            (seen["cluster"], seen["account"], seen["user"]),
            (hidden["cluster"], hidden["account"], hidden["user"]),
        )


def _explain(site: Site, who: tuple[str, str, str], role: str, query: str = "") -> httpx.Response:
    return site.server.get("/v1/explain/{}/{}/{}".format(*who) + query, token=site.tokens[role])


def test_the_path_is_the_recomputed_factors(site: Site) -> None:
    answer = _explain(site, site.seen, "admin", f"?as_of={AS_OF}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    factors = site.server.get(f"/v1/snapshots?as_of={AS_OF}", token=site.tokens["admin"]).json()
    rows = {(r["account"], r["user"]): r for r in factors["data"] if r["cluster"] == "hpc"}
    assert body["path"][0]["account"] == "root" and body["path"][-1]["user"] == site.seen[2]
    for level in body["path"]:
        row = rows[(level["account"], level["user"])]
        for name in ("norm_shares", "raw_usage", "effective_usage", "level_fs"):
            assert level[name] == row[name], (level, name)  # the same floats, not approximately
    mine = rows[(site.seen[1], site.seen[2])]
    assert body["fairshare"] == pytest.approx(mine["fairshare"])
    higher = [r for r in rows.values() if r["user"] and r["fairshare"] > mine["fairshare"]]
    assert body["rank"] == len(higher) + 1


def test_a_viewer_explains_only_its_accounts(site: Site) -> None:
    assert _explain(site, site.seen, "viewer").status_code == 200
    hidden = _explain(site, site.hidden, "viewer")
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert _explain(site, site.hidden, "auditor").status_code == 200
    assert _explain(site, site.seen, "scheduler").status_code == 403


def test_an_unknown_association_is_404(site: Site) -> None:
    answer = _explain(site, ("hpc", "physics-lab", "nobody"), "admin")
    assert answer.status_code == 404
    assert "nobody" in answer.json()["detail"]


def test_simulate_the_same_policy_changes_nothing(site: Site) -> None:
    answer = site.server.request(
        "POST", "/v1/simulate", token=site.tokens["admin"], json={"as_of": AS_OF}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == len(body["data"]) > 0
    assert all(r["raw_usage_change"] == 0 for r in body["data"])
    assert all(r["rank_change"] in (0, None) for r in body["data"])


def test_simulate_a_shorter_half_life_lowers_usage(site: Site) -> None:
    answer = site.server.request(
        "POST",
        "/v1/simulate",
        token=site.tokens["admin"],
        json={"as_of": AS_OF, "half_life_s": 3600},
    )
    assert answer.status_code == 200, answer.text
    root = next(r for r in answer.json()["data"] if r["account"] == "root" and not r["user"])
    assert root["raw_usage_other"] < root["raw_usage_current"]


def test_simulate_refuses_bad_input(site: Site) -> None:
    admin = site.tokens["admin"]
    bad = site.server.request("POST", "/v1/simulate", token=admin, json={"policy_toml": "x ="})
    assert bad.status_code == 422
    unknown = site.server.request(
        "POST",
        "/v1/simulate",
        token=admin,
        json={"shares": [{"cluster": "hpc", "account": "nowhere", "shares": 3}]},
    )
    assert unknown.status_code == 404
    assert (
        site.server.request("POST", "/v1/simulate", token=site.tokens["auditor"], json={})
    ).status_code == 403


def _fairledger(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args, db=db), capture_output=True, text=True, env=base_env())


def test_the_command_line_explains_and_simulates(tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    con = open_store(db)
    try:
        load_demo(con)
        policy = read_active_policy(con)
    finally:
        con.close()
    assert policy is not None
    shown = _fairledger(db, "explain", "u001", "--as-of", AS_OF)
    assert shown.returncode == 0, shown.stderr
    assert "hpc/physics-hpc/u001" in shown.stdout and "rank " in shown.stdout
    assert "0|root|" in shown.stdout and "4|physics-hpc|u001|" in shown.stdout
    assert "recovery" in shown.stdout
    missing = _fairledger(db, "explain", "nobody")
    assert missing.returncode == 1 and "nobody" in missing.stderr
    other = tmp_path / "other.toml"
    shorter = policy.policy.decay.model_copy(update={"half_life_s": 3600.0})
    other.write_text(policy.policy.model_copy(update={"decay": shorter}).to_toml())
    table = _fairledger(
        db, "simulate", "--policy", str(other), "--as-of", AS_OF, "--format", "json"
    )
    assert table.returncode == 0, table.stderr
    body = json.loads(table.stdout)
    assert body["count"] == len(body["data"]) > 0
    roots = [r for r in body["data"] if r["account"] == "root" and not r["user"]]
    assert roots and all(r["raw_usage_other"] < r["raw_usage_current"] for r in roots)


def test_simulate_other_rate_cards_shows_charge_changes_and_a_chart(site: Site) -> None:
    admin = site.tokens["admin"]
    same = site.server.request("POST", "/v1/simulate", token=admin, json={"as_of": AS_OF}).json()
    assert same["grants"] and all(Decimal(g["charges_change"]) == 0 for g in same["grants"])
    # the same policy with every price doubled: each grant's charges double, to the cent or so
    with_cards = _active_policy_text(site)
    doubled = _double_prices(with_cards)
    answer = site.server.request(
        "POST", "/v1/simulate", token=admin, json={"policy_toml": doubled, "chart": True}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    for g in body["grants"]:
        current, other = Decimal(g["charges_current"]), Decimal(g["charges_other"])
        assert Decimal(g["charges_change"]) == other - current
        if g["grant_id"] is not None:
            assert abs(other - 2 * current) <= Decimal("0.01") * 5000  # per-line rounding only
            assert other > current > 0
    users = [r for r in body["data"] if r["user"] and r["charges_current"] not in (None, "0")]
    assert users and all(Decimal(r["charges_change"]) >= 0 for r in users)
    chart = body["chart"]
    assert chart["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    assert len(chart["hconcat"]) == 2


def _active_policy_text(site: Site) -> str:
    from api.demo import demo_policy

    del site
    return demo_policy()  # what the fixture's load_demo recorded today


def _double_prices(text: str) -> str:
    import re

    return re.sub(
        r'price = "([0-9.]+)"',
        lambda m: f'price = "{Decimal(m.group(1)) * 2}"',
        text,
    )


def test_the_command_line_draws_the_what_if_chart(tmp_path: Path) -> None:
    db = tmp_path / "chart.duckdb"
    con = open_store(db)
    try:
        load_demo(con)
        policy = read_active_policy(con)
    finally:
        con.close()
    assert policy is not None
    other = tmp_path / "other.toml"
    other.write_text(
        policy.policy.model_copy(
            update={
                "charging": policy.policy.charging.model_copy(
                    update={"uncharged_states": ["NODE_FAIL", "BOOT_FAIL", "FAILED", "CANCELLED"]}
                )
            }
        ).to_toml()
    )
    svg = tmp_path / "whatif.svg"
    made = _fairledger(db, "simulate", "--policy", str(other), "--chart", str(svg))
    assert made.returncode == 0, made.stderr
    assert "grant_id" in made.stdout  # the per-grant table follows the association table
    text = svg.read_text()
    assert text.startswith("<svg") and "Charge change per grant" in text
    assert text.count("<path") > 10  # points and bars were drawn
