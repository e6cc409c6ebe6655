"""`POST /v1/ingest` on a real server: pushed JSON Lines land as one batch, bad lines are
quarantined with their line, field and reason, a re-post changes nothing, and the limits hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from live_server import demo_store, live_server
from test_roles import assert_problem

from api.auth import Role, create_token
from models.frames import QUARANTINE, RUNS, STEPS, conform, empty
from models.store import open_store
from models.store.runs import write_batch

NDJSON = {"Content-Type": "application/x-ndjson"}
LIMIT = 4096


def record(job_id: str, **changes: Any) -> str:
    base: dict[str, Any] = {
        "scheduler": "flux",
        "cluster": "tioga",
        "job_id": job_id,
        "user": "ana",
        "account": "climate",
        "submit_at": "2026-11-01T10:00:00Z",
        "start_at": "2026-11-01T10:05:00Z",
        "end_at": "2026-11-01T11:05:00Z",
        "state": "COMPLETED",
        "alloc_cpus": 8,
    }
    return json.dumps({**base, **changes})


def test_push_lands_quarantines_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "push.duckdb"
    con = open_store(db)
    try:
        admin_id, admin = create_token(con, Role.admin)
        _, auditor = create_token(con, Role.auditor)
        _, scheduler = create_token(con, Role.scheduler)
    finally:
        con.close()
    body = "\n".join(
        [
            record("a1"),
            "not json",
            record("a2", state="DONE"),
            "",
            record("a3", alloc_cpus=-1),
            record("a4", end_at=None, state="RUNNING"),
        ]
    )
    env = {"FAIRLEDGER_INGEST_MAX_BYTES": str(LIMIT)}
    with live_server(tmp_path, db=db, env=env) as server:

        def post(text: Any, token: str = admin, **kwargs: Any) -> Any:
            headers = kwargs.pop("headers", NDJSON)
            return server.request(
                "POST", "/v1/ingest", token=token, content=text, headers=headers, **kwargs
            )

        first = post(body)
        assert first.status_code == 200, first.text
        summary = first.json()
        assert summary["source"] == f"push:{admin_id}"
        assert (summary["lines_read"], summary["runs_new"], summary["quarantined"]) == (5, 2, 3)
        bad = {(q["line"], q["field"]) for q in summary["quarantine"]}
        assert bad == {(2, ""), (3, "state"), (5, "alloc_cpus")}
        assert "not JSON" in summary["quarantine"][0]["reason"]

        again = post(body).json()  # the same records again: nothing changes
        assert (again["runs_new"], again["runs_changed"], again["runs_unchanged"]) == (0, 0, 2)
        assert again["batch_id"] > summary["batch_id"]

        # the running run ended: a new version of it, under a named source
        ended = record("a4", end_at="2026-11-01T12:00:00Z")
        revised = post(ended, params={"source": "flux-tioga"}, headers={
            "Content-Type": "application/jsonl; charset=utf-8"}).json()  # fmt: skip
        assert (revised["source"], revised["runs_changed"], revised["runs_new"]) == (
            "flux-tioga", 1, 0)  # fmt: skip
        key = "tioga/a4/1793527200"  # 2026-11-01T10:00:00Z
        versions = server.get(f"/v1/runs/{key}/versions", token=auditor).json()
        assert versions["count"] == 2

        status = server.get("/v1/status", token=auditor).json()
        sources = {s["source"]: s for s in status["sources"]}
        assert sources[f"push:{admin_id}"]["batches"] == 2
        assert sources["flux-tioga"]["last_success_at"] is not None
        assert not sources["flux-tioga"]["degraded"]

        # limits and refusals, each a problem document
        big = "\n".join(record(f"b{i}") for i in range(LIMIT // 100))
        assert len(big) > LIMIT
        assert_problem(post(big), 413)
        chunks = (big[i : i + 500].encode() for i in range(0, len(big), 500))
        assert_problem(post(chunks), 413)  # streamed without a Content-Length
        assert_problem(post(record("c1"), headers={"Content-Type": "application/json"}), 415)
        assert_problem(post("\n\n"), 422)
        assert_problem(post(body, token=scheduler), 403)
        assert_problem(post(body, token=auditor), 403)
        assert_problem(server.request("POST", "/v1/ingest", content=body, headers=NDJSON), 401)
        # nothing of a refused body was stored (the token id in a source name may contain "b1")
        stored = server.get("/v1/quarantine", token=auditor).json()["data"]
        assert not [q for q in stored if q["record_id"] == "b1" or '"b1"' in (q["raw"] or "")]
        assert len(stored) == 3  # the three bad lines of the first batch, nothing since


def test_one_huge_record_never_takes_finance_down(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    tokens = demo_store(db)
    ended = datetime.now(UTC) - timedelta(days=1)  # the demo's grants run until two years on
    times = {"submit_at": f"{ended - timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ}",
             "start_at": f"{ended - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
             "end_at": f"{ended:%Y-%m-%dT%H:%M:%SZ}"}  # fmt: skip
    # one run read before the bounds existed, written straight into the store
    stored = {"run_key": "hpc/old1/1", "scheduler": "slurm", "cluster": "hpc", "job_id": "old1",
              "job_id_raw": "old1", "user": "u001", "account": "physics-hpc", "partition": "cpu",
              "state": "COMPLETED", "submit_at": ended, "start_at": ended, "end_at": ended,
              "elapsed_s": 3600, "alloc_cpus": 4, "alloc_mem_mb": float("inf")}  # fmt: skip
    con = open_store(db)
    try:
        write_batch(con, source="old.txt", scheduler="slurm",
                    runs=conform(pl.DataFrame([stored]), RUNS), steps=empty(STEPS),
                    quarantine=empty(QUARANTINE), lines_read=1, started_at=ended)  # fmt: skip
    finally:
        con.close()
    body = "\n".join(
        record(job, cluster="hpc", account="physics-hpc", partition="cpu", **times, **size)
        for job, size in (("huge", {"alloc_mem_mb": 1e19}), ("fine", {"alloc_mem_mb": 4096}))
    )
    with live_server(tmp_path, db=db) as server:
        pushed = server.request("POST", "/v1/ingest", token=tokens["admin"], content=body,
                                headers=NDJSON)  # fmt: skip
        assert pushed.status_code == 200, pushed.text
        summary = pushed.json()
        assert (summary["runs_new"], summary["quarantined"]) == (1, 1)
        assert [(q["line"], q["field"]) for q in summary["quarantine"]] == [(1, "alloc_mem_mb")]
        for path in ("/v1/grants", "/v1/periods", "/v1/unbilled?limit=5000",
                     f"/v1/grants/NSF-PHY-2231/statements/{ended:%Y-%m}"):  # fmt: skip
            answer = server.get(path, token=tokens["finance"])
            assert answer.status_code == 200, (path, answer.text)
        unbilled = server.get("/v1/unbilled?limit=5000", token=tokens["finance"]).json()["data"]
        reasons = {r["run_key"]: r["reason"] for r in unbilled}
        assert reasons["hpc/old1/1"] == "alloc_mem_mb inf is beyond what can be charged"
