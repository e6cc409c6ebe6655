"""Money over HTTP against a real server on the demo site: grants, statements and their
recorded hashes, period close, adjustments, quotes and unbilled runs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version

import pytest
from live_server import LiveServer, demo_store, live_server


@dataclass
class Money:
    server: LiveServer
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def money(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Money]:
    tmp = tmp_path_factory.mktemp("money")
    db = tmp / "money.duckdb"
    tokens = demo_store(db)
    with live_server(tmp, db=db) as server:
        server.wait_for_snapshot(tokens["admin"])
        yield Money(server, tokens)


def test_grants_list_budgets_charges_and_balances(money: Money) -> None:
    body = money.server.get("/v1/grants", token=money.tokens["finance"]).json()
    ids = {g["id"] for g in body["data"]}
    assert {"NSF-PHY-2231", "NIH-R01-GM123", "DOE-ASCR-ML", "CHEM-STARTUP"} <= ids
    for g in body["data"]:
        assert Decimal(g["budget"]) - Decimal(g["charged"]) == Decimal(g["balance"])
    nsf = next(g for g in body["data"] if g["id"] == "NSF-PHY-2231")
    assert Decimal(nsf["charged"]) > 0 and nsf["accounts"] == ["physics-hpc", "physics-lab"]


def test_a_closed_statement_is_served_with_the_hash_recorded_at_close(money: Money) -> None:
    admin, finance = money.tokens["admin"], money.tokens["finance"]
    first = money.server.get("/v1/periods", token=finance).json()["next_to_close"]
    closed = money.server.request("POST", f"/v1/periods/{first}/close", token=admin)
    assert closed.status_code == 200, closed.text
    recorded = closed.json()["statements"]
    assert {"NSF-PHY-2231/csv", "NSF-PHY-2231/pdf"} <= set(recorded)
    # beside the hashes, the releases that rendered them: why a later re-render could differ
    made_with = closed.json()["made_with"]
    assert set(made_with) == {"csv", "json", "xlsx", "pdf"}
    assert f"fpdf2 {version('fpdf2')}" in made_with["pdf"]
    assert f"xlsxwriter {version('xlsxwriter')}" in made_with["xlsx"]
    assert "fpdf2" not in made_with["csv"] and made_with["csv"].startswith("fairledger ")
    media = {
        "csv": ("text/csv", b"line_type,"),
        "json": ("application/json", b"{"),
        "xlsx": ("application/vnd.openxmlformats", b"PK"),
        "pdf": ("application/pdf", b"%PDF"),
    }
    for fmt, (kind, magic) in media.items():
        answer = money.server.get(
            f"/v1/grants/NSF-PHY-2231/statements/{first}?format={fmt}", token=finance
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(kind)
        assert answer.content.startswith(magic)
        digest = hashlib.sha256(answer.content).hexdigest()
        assert digest == answer.headers["x-statement-sha256"] == recorded[f"NSF-PHY-2231/{fmt}"]
        assert answer.headers["x-statement-made-with"] == made_with[fmt]
    periods = money.server.get("/v1/periods", token=finance).json()
    assert periods["closed"][0]["period"] == first
    assert periods["closed"][0]["made_with"] == made_with
    assert periods["first_open"] == periods["next_to_close"] > first
    again = money.server.request("POST", f"/v1/periods/{first}/close", token=admin)
    assert again.status_code == 409
    assert again.json()["type"] == "urn:fairledger:problem:period-closed"


def test_a_period_that_has_not_ended_cannot_close(money: Money) -> None:
    answer = money.server.request("POST", "/v1/periods/2099-01/close", token=money.tokens["admin"])
    assert answer.status_code == 409 and "has not ended" in answer.json()["detail"]
    bad = money.server.get(
        "/v1/grants/NSF-PHY-2231/statements/2026-13", token=money.tokens["finance"]
    )
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["detail"]
    unknown = money.server.get("/v1/grants/NOPE/statements/2026-10", token=money.tokens["finance"])
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:fairledger:problem:unknown-grant"


def test_adjustments_are_posted_with_reason_and_author(money: Money) -> None:
    finance = money.tokens["finance"]
    posted = money.server.request(
        "POST",
        "/v1/grants/CHEM-STARTUP/adjustments",
        token=finance,
        json={"amount": "-12.50", "reason": "service credit for the outage"},
    )
    assert posted.status_code == 201, posted.text
    entry = posted.json()
    assert entry["amount"] == "-12.50" and entry["kind"] == "manual"
    statement = money.server.get(
        f"/v1/grants/CHEM-STARTUP/statements/{entry['period']}?format=json", token=finance
    ).json()
    assert "service credit for the outage" in str(statement)
    no_reason = money.server.request(
        "POST", "/v1/grants/CHEM-STARTUP/adjustments", token=finance, json={"amount": "1"}
    )
    assert no_reason.status_code == 422


def test_admins_add_grants_and_ids_are_unique(money: Money) -> None:
    admin = money.tokens["admin"]
    grant = {
        "id": "ERC-STG-1",
        "funder": "European Research Council",
        "budget": "1500.00",
        "unit": "EUR",
        "start": "2026-01-01",
        "end": "2030-12-31",
        "members": [{"account": "history-lab", "start": "2026-01-01"}],
    }
    made = money.server.request("POST", "/v1/grants", token=admin, json=grant)
    assert made.status_code == 201, made.text
    listed = money.server.get("/v1/grants", token=money.tokens["auditor"]).json()["data"]
    assert any(g["id"] == "ERC-STG-1" and Decimal(g["charged"]) > 0 for g in listed)
    twice = money.server.request("POST", "/v1/grants", token=admin, json=grant)
    assert twice.status_code == 409 and "already exists" in twice.json()["detail"]


def test_quotes_name_the_paying_grant_and_respect_a_viewers_accounts(money: Money) -> None:
    answer = money.server.get(
        "/v1/quote?cluster=ai&partition=h100&account=ml-lab&hours=10&cpus=16&gpus=2"
        "&gpu_model=h100&mem_gb=64&qos=high",
        token=money.tokens["finance"],
    ).json()
    assert answer["grant_id"] == "DOE-ASCR-ML" and answer["currency"] == "USD"
    assert Decimal(answer["total"]) == sum(Decimal(x["amount"]) for x in answer["lines"])
    viewer = money.tokens["viewer"]
    mine = money.server.get("/v1/quote?cluster=hpc&account=physics-lab&hours=1", token=viewer)
    assert mine.status_code == 200 and mine.json()["grant_id"] == "NSF-PHY-2231"
    theirs = money.server.get("/v1/quote?cluster=hpc&account=ml-lab&hours=1", token=viewer)
    assert theirs.status_code == 404


def test_unbilled_runs_are_listed_with_reasons(money: Money) -> None:
    body = money.server.get("/v1/unbilled?limit=5000", token=money.tokens["auditor"]).json()
    reasons = {r["reason"].split(":")[0].split(" ")[0] for r in body["data"]}
    assert body["total"] > 0 and {"no", "state"} <= reasons
