"""End to end: a real server pulls a fake ``sacct`` on its schedule, recomputes, publishes a new
snapshot with a new ETag, and answers 304 to a scheduler that already has it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from live_server import FAKES, live_server, wait_until

from api.auth import Role, create_token
from models.policy import load_policy_text
from models.store import open_store, write_policy
from tests.kit import site_policy

POLICY = site_policy({"chem": ["alice"], "phys": ["bob"]}, account_shares=50, user_shares=1)
HEADER = (
    "JobID|JobIDRaw|Cluster|Partition|QOS|Account|User|Submit|Eligible|Start|End|Elapsed|"
    "ElapsedRaw|Timelimit|ExitCode|State|NNodes|NCPUS|ReqMem|AllocTRES|NodeList|Reservation|"
    "JobName"
)


def _job(job_id: int, account: str, user: str, start: datetime, seconds: int) -> str:
    def t(x: datetime) -> str:
        return x.strftime("%Y-%m-%dT%H:%M:%S")

    end = start + timedelta(seconds=seconds)
    return (
        f"{job_id}|{job_id}|lab|cpu|normal|{account}|{user}|{t(start)}|{t(start)}|{t(start)}|"
        f"{t(end)}|00:00:00|{seconds}|01:00:00|0:0|COMPLETED|1|4|4000M|"
        f"billing=4,cpu=4,mem=4000M,node=1|n01||job{job_id}"
    )


def test_scheduled_ingest_publishes_a_new_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "serve.duckdb"
    con = open_store(db)
    try:
        write_policy(con, load_policy_text(POLICY), origin="test")
        _, token = create_token(con, Role.scheduler)
        _, admin = create_token(con, Role.admin)
    finally:
        con.close()

    # what the fake sacct prints, call after call: first alice's job, then bob's as well
    # (after the last file it keeps answering with the last one, as an unchanged window does)
    answers = tmp_path / "sacct"
    answers.mkdir()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    alice = _job(101, "chem", "alice", start, 3600)
    bob = _job(102, "phys", "bob", start + timedelta(minutes=5), 1800)
    (answers / "01.txt").write_text(f"{HEADER}\n{alice}\n", encoding="utf-8")
    (answers / "02.txt").write_text(f"{HEADER}\n{alice}\n{bob}\n", encoding="utf-8")
    calls = tmp_path / "sacct.log"
    config = tmp_path / "site.toml"
    config.write_text(
        f'db = "{db}"\n'
        "recompute_interval_s = 3600\n"  # only ingests trigger recomputes in this test
        "[[sources]]\n"
        'name = "lab-sacct"\n'
        'cluster = "lab"\n'
        f'command = "{FAKES / "fake_sacct.py"}"\n'
        "interval_s = 1\n"
        "min_interval_s = 0\n"
        "retries = 0\n",
        encoding="utf-8",
    )
    env = {"FAKE_SACCT_OUTPUT_DIR": str(answers), "FAKE_SACCT_LOG": str(calls)}

    with live_server(tmp_path, config=config, env=env) as server:
        first = server.wait_for_snapshot(token)
        first_etag = first.headers["etag"]

        def both_users_have_usage() -> dict[str, object] | None:
            body = server.get("/v1/factors", token=token).json()
            usage = {r["user"]: r["raw_usage"] for r in body["data"] if r["user"]}
            return body if usage.get("alice") and usage.get("bob") else None

        body = wait_until(both_users_have_usage, timeout=30, what="both jobs to be ingested")
        meta = body["snapshot"]
        assert meta["run_count"] == 2 and meta["data_watermark_batch"] is not None

        # the scheduled pulls keep running; once they only re-read the same window, nothing
        # new is published, so a scheduler holding the ETag gets 304 with no body
        def settled() -> str | None:
            a = server.get("/v1/factors", token=token)
            calls_before = len(calls.read_text().splitlines())
            wait_until(
                lambda: len(calls.read_text().splitlines()) >= calls_before + 2,
                timeout=15,
                what="two more sacct pulls",
            )
            b = server.get("/v1/factors", token=token)
            return a.headers["etag"] if a.headers["etag"] == b.headers["etag"] else None

        etag = wait_until(settled, timeout=60, what="the snapshot to settle")
        assert etag != first_etag
        again = server.get("/v1/factors", token=token, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        old = server.get("/v1/factors", token=token, headers={"If-None-Match": first_etag})
        assert old.status_code == 200 and old.headers["etag"] == etag

        one = server.get("/v1/factors/lab/chem/alice", token=token)
        assert one.status_code == 200
        assert set(one.json()) >= {
            "raw_shares", "norm_shares", "raw_usage", "norm_usage", "effective_usage",
            "fairshare", "level_fs",
        }  # fmt: skip
        assert (
            server.get(
                "/v1/factors/lab/chem/alice", token=token, headers={"If-None-Match": etag}
            ).status_code
            == 304
        )

        snapshots = server.get("/v1/snapshots", token=token).json()
        assert snapshots["count"] >= 2
        assert snapshots["data"][0]["etag"] == etag  # newest first, the one being served
        status = server.get("/v1/status", token=admin).json()
        source = next(s for s in status["sources"] if s["source"] == "lab-sacct")
        assert source["last_success_at"] and not source["degraded"]
        assert source["runs_landed"] == 2 and source["quarantined"] == 0
        assert status["snapshot"]["snapshot_id"] == snapshots["data"][0]["snapshot_id"]

    logged = [json.loads(line) for line in calls.read_text().splitlines()]
    assert logged and all(call["tz"] == "UTC" for call in logged)
    assert {"--allusers", "--duplicates", "--parsable2"} <= set(logged[0]["argv"])


def test_the_stored_snapshot_is_served_at_once_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "restart.duckdb"
    con = open_store(db)
    try:
        write_policy(con, load_policy_text(POLICY), origin="test")
        _, token = create_token(con, Role.scheduler)
        _, admin = create_token(con, Role.admin)
    finally:
        con.close()
    with live_server(tmp_path, db=db) as server:
        etag = server.wait_for_snapshot(token).headers["etag"]
    with live_server(tmp_path, db=db) as server:
        # answered from the stored snapshot at once; with no runs a recompute gives the same
        # factors, so nothing new is published and the ETag a scheduler holds stays valid
        after = server.get("/v1/factors", token=token, headers={"If-None-Match": etag})
        assert after.status_code == 304
        wait_until(
            lambda: server.get("/v1/status", token=admin).json()["recompute"]["last_at"],
            timeout=30,
            what="the first recompute after the restart",
        )
        assert server.get("/v1/factors", token=token).headers["etag"] == etag
        listed = server.get("/v1/snapshots", token=token).json()
        assert listed["count"] == 1 and listed["data"][0]["etag"] == etag
