"""`fairledger quarantine list|retry` on the command line, then `GET /v1/quarantine` and
`GET /v1/runs/{run_key}/versions` from a real server over the same store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from live_server import base_env, cli, live_server
from test_roles import assert_problem

from api.auth import Role, create_token
from models.store import open_store

RIGHT = "JobID,JobIDRaw,Cluster,Partition,Account,User,Submit,Start,End,ElapsedRaw,ExitCode,State"
WRONG = RIGHT.replace("ExitCode,State", "State,ExitCode")  # the mistake a retry fixes


def _line(job: int, end: str, state: str) -> str:
    return (
        f"{job}|{job}|lab|cpu|chem|alice|2026-11-01T00:00:00|2026-11-01T00:00:00|"
        f"2026-11-01T{end}:00|3600|0:0|{state}"
    )


def _run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args, db=db), capture_output=True, text=True, env=base_env())


def test_quarantine_retry_from_the_cli_and_both_routes(tmp_path: Path) -> None:
    db = tmp_path / "q.duckdb"
    path = tmp_path / "noheader.txt"
    path.write_text("\n".join([_line(1, "01:00", "COMPLETED"), _line(2, "01:00", "BOGUS")]))
    loaded = _run(db, "ingest", "file", str(path), "--fields", WRONG)
    assert loaded.returncode == 3, loaded.stderr
    listed = _run(db, "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("\topen\t") == 2
    assert "unknown state '0:0'" in listed.stdout

    retried = _run(db, "quarantine", "retry", "--fields", RIGHT)
    assert retried.returncode == 3, retried.stderr  # one record is still open
    assert "2 retried, 1 resolved by batch 2, 1 still open" in retried.stdout
    resolved = _run(db, "quarantine", "list", "--status", "resolved")
    assert "\tresolved (batch 2)\t" in resolved.stdout and "[1]" in resolved.stdout
    still = _run(db, "quarantine", "list")
    assert still.stdout.count("\topen\t") == 1 and "unknown state 'BOGUS'" in still.stdout

    # a revision of job 1: it ended later than first recorded
    revised = tmp_path / "revised.txt"
    revised.write_text(_line(1, "02:00", "COMPLETED"))
    assert _run(db, "ingest", "file", str(revised), "--fields", RIGHT).returncode == 0

    con = open_store(db)
    try:
        _, auditor = create_token(con, Role.auditor)
        _, scheduler = create_token(con, Role.scheduler)
    finally:
        con.close()
    with live_server(tmp_path, db=db) as server:
        every = server.get("/v1/quarantine?status=all", token=auditor).json()
        assert every["count"] == 2 and len(every["data"]) == 2
        assert [r["status"] for r in every["data"]] == ["resolved", "open"]
        assert every["data"][0]["resolved_by_batch"] == 2
        assert every["data"][1]["first_reason"] == "unknown state '0:0'"
        assert every["data"][1]["fields"] == WRONG.split(",")
        page = server.get("/v1/quarantine?status=all&limit=1&offset=1", token=auditor).json()
        assert page["count"] == 2 and [r["record_id"] for r in page["data"]] == ["2"]
        source = str(path.resolve())
        mine = server.get("/v1/quarantine", params={"source": source, "status": "open"},
                          token=auditor).json()  # fmt: skip
        assert mine["count"] == 1
        assert server.get("/v1/quarantine?source=elsewhere", token=auditor).json()["count"] == 0
        assert_problem(server.get("/v1/quarantine?status=maybe", token=auditor), 422)
        assert_problem(server.get("/v1/quarantine", token=scheduler), 403)

        key = "lab/1/1793491200"  # 2026-11-01T00:00:00Z
        versions = server.get(f"/v1/runs/{key}/versions", token=auditor)
        assert versions.status_code == 200, versions.text
        body = versions.json()
        assert body["run_key"] == key and body["count"] == 2
        assert [v["version"] for v in body["data"]] == [1, 2]
        assert [v["elapsed_s"] for v in body["data"]] == [3600, 3600]
        assert [v["end_at"] for v in body["data"]] == [
            "2026-11-01T01:00:00Z",
            "2026-11-01T02:00:00Z",
        ]
        assert [v["is_current"] for v in body["data"]] == [False, True]
        assert body["data"][0]["batch_id"] == 2  # landed by the retry
        assert body["data"][0]["superseded_by_batch"] == body["data"][1]["batch_id"] == 3
        missing = server.get("/v1/runs/lab/999/0/versions", token=auditor)
        assert "lab/999/0" in str(assert_problem(missing, 404)["detail"])
