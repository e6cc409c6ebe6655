"""What `make run` does: load the demo site, then serve it with a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from live_server import base_env, cli, live_server


def _token(output: str, role: str) -> str:
    found = re.search(rf"{role} token: (flt_\S+)", output)
    assert found, output
    return found.group(1)


def test_demo_loads_once_and_is_served(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    env = base_env()
    first = subprocess.run(cli("demo", db=db), capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert "6862 new runs" in first.stdout and "0 quarantined" in first.stdout
    assert "http://127.0.0.1:8000/" in first.stdout
    admin, scheduler = _token(first.stdout, "admin"), _token(first.stdout, "scheduler")
    again = subprocess.run(cli("demo", db=db), capture_output=True, text=True, env=env)
    assert "already loaded" in again.stdout
    assert _token(again.stdout, "admin") != admin  # tokens are shown once: new ones are made

    with live_server(tmp_path, db=db) as server:
        body = server.wait_for_snapshot(scheduler).json()
        meta = body["snapshot"]
        # two clusters, 50 accounts each under root, 300 users in 30 groups
        assert meta["run_count"] == 6862
        assert body["count"] == len(body["data"]) == meta["association_count"]
        clusters = {row["cluster"] for row in body["data"]}
        assert clusters == {"hpc", "ai"}
        accounts = {r["account"] for r in body["data"] if r["cluster"] == "hpc" and not r["user"]}
        assert len(accounts) == 51  # root and 50 accounts
        users = {r["user"] for r in body["data"] if r["user"] and r["user"] != "root"}
        assert len(users) == 300
        assert all(r["fairshare"] is None or 0 <= r["fairshare"] <= 1 for r in body["data"]), (
            "every factor in [0, 1]"
        )
        assert len({r["fairshare"] for r in body["data"] if r["user"]}) > 100, "factors spread"

        page = server.get("/")
        assert page.status_code == 200 and "Snapshot" in page.text
        sshare = server.get("/v1/factors?format=sshare", token=admin)
        assert sshare.status_code == 200
        assert "CLUSTER: ai" in sshare.text and "CLUSTER: hpc" in sshare.text
        assert "Account|User|RawShares|NormShares|RawUsage" in sshare.text
        assert re.search(r"\n {4}physics-lab\|u\d{3}\|", sshare.text)

        # while the server holds the store, a CLI writer is refused with a clear message
        refused = subprocess.run(cli("demo", db=db), capture_output=True, text=True, env=env)
        assert refused.returncode == 1 and "fairledger serve" in refused.stderr
        refused = subprocess.run(
            cli("token", "create", "--role", "admin", db=db),
            capture_output=True,
            text=True,
            env=env,
        )
        assert refused.returncode == 1 and "fairledger serve" in refused.stderr
