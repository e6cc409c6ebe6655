"""One real server on the demo site for the dashboard tests, and tokens of every role."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from live_server import LiveServer, demo_store, live_server, wait_until

VIEWER_ACCOUNTS = ["physics"]
VIEWER_SEES = {"physics", "physics-lab", "physics-hpc"}  # physics and the accounts below it


@dataclass
class Site:
    server: LiveServer
    tokens: dict[str, str]  # role -> token


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The demo site served by a real ``fairledger serve``, with its first snapshot published."""
    tmp = tmp_path_factory.mktemp("dashboards")
    db = tmp / "demo.duckdb"
    tokens = demo_store(db, viewer_accounts=VIEWER_ACCOUNTS)
    with live_server(tmp, db=db) as server:
        server.wait_for_snapshot(tokens["admin"])

        def verdicts_stored() -> bool:  # the server stores them after its first recompute
            answer = server.get("/v1/compliance/DOE-ASCR-ML", token=tokens["auditor"])
            return answer.status_code == 200 and answer.json()["computed_at"] is not None

        wait_until(verdicts_stored, timeout=60, what="the first compliance verdicts")
        yield Site(server, tokens)
