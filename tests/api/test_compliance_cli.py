"""``fairledger compliance verdicts`` on the demo site: refreshes, then prints the grant's
verdicts as JSON, CSV or a table; an unknown grant exits 1 naming it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from live_server import base_env, cli

from api.demo import load_demo
from models.store import open_store

GRANT = "NIH-R01-GM123"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compliance-cli") / "demo.duckdb"
    con = open_store(path)
    try:
        load_demo(con)
    finally:
        con.close()
    return path


def run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli("compliance", "verdicts", *args, db=db),
        env=base_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_json_csv_and_table_agree(db: Path) -> None:
    answer = run(db, GRANT, "--format", "json")
    assert answer.returncode == 0, answer.stderr
    document = json.loads(answer.stdout)
    counts = document["summary"]
    assert document["count"] == sum(counts.values()) == len(document["data"])
    assert counts.get("violation") and counts.get("approved")
    violations = [r for r in document["data"] if r["verdict"] == "violation"]
    assert all(r["rule"] for r in violations)
    assert all(r["evidence"]["regime"] == "HIPAA" for r in document["data"])

    exceptions = run(db, GRANT, "--exceptions", "--format", "csv", "--no-refresh")
    assert exceptions.returncode == 0, exceptions.stderr
    rows = list(csv.DictReader(io.StringIO(exceptions.stdout)))
    wanted = [r["run_key"] for r in document["data"] if r["verdict"] != "approved"]
    assert [r["run_key"] for r in rows] == wanted
    assert {r["verdict"] for r in rows} <= {"violation", "unknown"}

    table = run(db, GRANT, "--exceptions")
    assert table.returncode == 0, table.stderr
    first = table.stdout.splitlines()[0].split("\t")
    assert first[:4] == [
        rows[0]["run_key"],
        "violation",
        rows[0]["rule"],
        rows[0]["offending_node"],
    ]
    assert f"grant {GRANT}: {counts['approved']} approved, {counts['violation']} violation" in (
        table.stderr
    )


def test_unknown_grant_exits_1(db: Path) -> None:
    answer = run(db, "NO-SUCH")
    assert answer.returncode == 1
    assert "no grant NO-SUCH in the active policy" in answer.stderr
