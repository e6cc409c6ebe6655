"""Reconciliation of ``sacct_json`` (the fake sacct) and ``slurmrestd`` (a real HTTP server in
the test) sources, fed Slurm 22.05.8's recorded output, into a DuckDB file: the window asked
for, gaps reported and filled, a changed run reported and revised, runs counted per day, the
watermark kept, failures reported and degrading the source, refused jobs quarantined with the
kind as their parser."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from json_source_fakes import Slurmrestd, answers
from json_source_fakes import json_source as fake_json_source

from api.service import Service
from api.settings import Reconcile, SacctSource, Settings
from ingest.jobs import run_sacct_source
from ingest.quarantine import retry_quarantined
from ingest.reconcile import reconcile_sacct_source
from ingest.sources.sacct import SACCT_STATES
from models.store.handle import StoreHandle
from models.store.reconciliations import DayCount, Reconciliation, read_last_reconciliations
from models.store.sources import SourceState, read_source_state

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "integration" / "slurm" / "recorded" / "sacct_json"
SACCT_JSON = (RECORDED / "first" / "sacct.json").read_text(encoding="utf-8")
REST_JSON = (RECORDED / "after_restart" / "slurmrestd.json").read_text(encoding="utf-8")
T0 = datetime(2026, 11, 29, 3, 0, 0, tzinfo=UTC)  # the regular pull, after the recorded jobs
LATER = T0 + timedelta(hours=1)  # the reconciliation
TOKEN = "eyJhbGciOiJIUzI1NiJ9.secret.token"
# the recorded jobs 19 and 20 (array tasks 16_1, 16_2) and job 2, all submitted 02:13:01
GAPS = ["lab/19/1795918381", "lab/20/1795918381"]
CHANGED = "lab/2/1795918381"
JOB_2_END = datetime(2026, 11, 29, 2, 13, 51, tzinfo=UTC)
# window_days = 3: [2026-11-26T00:00Z, LATER]; the 21 recorded runs all ended on the 29th
DAYS_BEFORE = [DayCount(date(2026, 11, d), 0, 0) for d in (26, 27, 28)]


def what_the_store_got(text: str) -> str:
    """Return the recorded document as an earlier pull saw it: without jobs 19 and 20, and
    with job 2 ending a minute later."""
    document = json.loads(text)
    document["jobs"] = [j for j in document["jobs"] if j["job_id"] not in (19, 20)]
    (job,) = [j for j in document["jobs"] if j["job_id"] == 2]
    job["time"]["end"] += 60
    job["time"]["elapsed"] += 60
    return json.dumps(document)


def with_a_refused_job(text: str) -> str:
    document = json.loads(text)
    document["jobs"][0]["state"]["current"] = "WEIRD"
    return json.dumps(document)


def state(store: StoreHandle, name: str) -> SourceState:
    with store.reading() as cur:
        found = read_source_state(cur, name)
    assert found is not None
    return found


def assert_gaps_and_change_found_then_fixed(
    report: Reconciliation, store: StoreHandle, source: SacctSource
) -> None:
    """The report of a reconciliation over the store of ``what_the_store_got``, and the store
    after it: gaps filled, job 2 revised, the watermark still at the regular pull's T0."""
    assert report.status == "ok", report.error
    assert (report.window_start, report.window_end) == (datetime(2026, 11, 26, tzinfo=UTC), LATER)
    assert (report.gap_keys, report.changed_keys) == (GAPS, [CHANGED])
    assert (report.source_runs, report.store_runs, report.gaps, report.changed) == (21, 19, 2, 1)
    assert report.days == [*DAYS_BEFORE, DayCount(date(2026, 11, 29), 21, 19)]
    assert report.quarantined == 0 and report.batch_id is not None
    with store.reading() as cur:
        ends = dict(cur.execute("SELECT run_key, end_at FROM runs").fetchall())
        versions = cur.execute(
            "SELECT count(*) FROM run_versions WHERE run_key = ?", [CHANGED]
        ).fetchall()[0][0]
        stored = read_last_reconciliations(cur)[source.name]
    assert len(ends) == 21 and set(GAPS) <= set(ends)  # the gaps are filled
    assert ends[GAPS[0]] == datetime(2026, 11, 29, 2, 13, 16, tzinfo=UTC)
    assert ends[CHANGED] == JOB_2_END and versions == 2  # revised, the old version kept
    assert stored.reconciliation_id == report.reconciliation_id and stored.gap_keys == GAPS
    after = state(store, source.name)
    assert after.watermark == T0 and not after.degraded

    again = reconcile_sacct_source(source, store, now=lambda: LATER)  # nothing left to find
    assert (again.status, again.gaps, again.changed) == ("ok", 0, 0)
    assert again.days[-1] == DayCount(date(2026, 11, 29), 21, 21)


def assert_quarantined_as(store: StoreHandle, source: str, kind: str) -> None:
    with store.reading() as cur:
        rows = cur.execute("SELECT parser, field FROM quarantine").fetchall()
    assert rows == [(kind, "state.current")]
    with store.write() as cur:
        (retry,) = retry_quarantined(cur, source=source)
    # read again by the JSON parser (a text parser would skip or misread it): still refused
    assert (retry.retried, retry.still_open, retry.skipped) == (1, 1, ())


# ---------------------------------------------------------------------------- sacct --json


@pytest.fixture
def fake_sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_SACCT_LOG", str(log))
    return log


def json_source(**overrides: Any) -> SacctSource:
    reconcile = Reconcile(enabled=True, window_days=3, timeout_s=30)
    return fake_json_source(**{"reconcile": reconcile, **overrides})


@pytest.mark.slow
def test_a_sacct_json_reconciliation_asks_for_its_window_reports_and_fills_the_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sacct: Path, store: StoreHandle
) -> None:
    answers(tmp_path, monkeypatch, what_the_store_got(SACCT_JSON), SACCT_JSON)
    source = json_source()
    pulled = run_sacct_source(source, store, now=lambda: T0)
    assert pulled.summary is not None and pulled.summary.runs_new == 19

    report = reconcile_sacct_source(source, store, now=lambda: LATER)

    argv = json.loads(fake_sacct.read_text().splitlines()[1])["argv"]
    assert argv[-1] == "--json" and not any(a.startswith("--format=") for a in argv)
    assert {"--starttime=2026-11-26T00:00:00", "--endtime=2026-11-29T04:00:00"} <= set(argv)
    assert {"--allusers", "--duplicates", f"--state={SACCT_STATES}", "--clusters=lab"} <= set(argv)
    assert_gaps_and_change_found_then_fixed(report, store, source)


def test_a_sacct_json_reconciliation_that_times_out_fails_and_degrades_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sacct: Path, store: StoreHandle
) -> None:
    answers(tmp_path, monkeypatch, SACCT_JSON)
    source = json_source(reconcile=Reconcile(enabled=True, window_days=3, timeout_s=1))
    assert run_sacct_source(source, store, now=lambda: T0).status == "loaded"
    monkeypatch.setenv("FAKE_SACCT_SLEEP", "3")  # within the pull's 600 s, not the 1 s here
    failed = reconcile_sacct_source(source, store, now=lambda: LATER)
    assert failed.status == "failed" and "timed out after 1" in (failed.error or "")
    after = state(store, "json-lab")
    assert after.degraded and after.watermark == T0
    assert (after.last_error or "").startswith("reconciliation: ")

    monkeypatch.delenv("FAKE_SACCT_SLEEP")
    assert reconcile_sacct_source(source, store, now=lambda: LATER).status == "ok"
    assert not state(store, "json-lab").degraded


def test_a_job_a_sacct_json_reconciliation_refuses_is_quarantined_for_the_json_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sacct: Path, store: StoreHandle
) -> None:
    answers(tmp_path, monkeypatch, with_a_refused_job(SACCT_JSON))
    report = reconcile_sacct_source(json_source(), store, now=lambda: LATER)
    assert (report.status, report.quarantined, report.gaps) == ("ok", 1, 20)
    assert_quarantined_as(store, "json-lab", "sacct_json")


# ---------------------------------------------------------------------------- slurmrestd


@pytest.fixture
def restd() -> Iterator[Slurmrestd]:
    server = Slurmrestd(REST_JSON)
    yield server
    server.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "slurm.jwt"
    path.write_text(f"SLURM_JWT={TOKEN}\n", encoding="utf-8")
    return path


def rest_source(url: str, token_file: Path, **overrides: Any) -> SacctSource:
    settings: dict[str, Any] = {
        "name": "rest-lab", "kind": "slurmrestd", "cluster": "lab", "url": url,
        "api_version": "0.0.38", "user": "fairledger", "token_file": token_file,
        "initial_start": "2026-11-29T00:00:00", "backoff_s": 0, "retries": 0,
        "min_interval_s": 0, "lookback_s": 3600, "timeout_s": 30,
        "reconcile": Reconcile(enabled=True, window_days=3, timeout_s=30),
    }  # fmt: skip
    return SacctSource(**{**settings, **overrides})


def test_a_slurmrestd_reconciliation_sends_its_window_and_token_reports_and_fills_the_gaps(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    restd.answers = [(200, what_the_store_got(REST_JSON)), (200, REST_JSON)]
    source = rest_source(restd.url, token_file)
    pulled = run_sacct_source(source, store, now=lambda: T0)
    assert pulled.summary is not None and pulled.summary.runs_new == 19

    report = reconcile_sacct_source(source, store, now=lambda: LATER)

    request = restd.requests[1]
    assert request["path"] == "/slurmdb/v0.0.38/jobs"
    assert request["query"] == {
        "start_time": ["2026-11-26T00:00:00"], "end_time": ["2026-11-29T04:00:00"],
        "state": [SACCT_STATES], "cluster": ["lab"],
    }  # fmt: skip
    assert request["headers"]["X-SLURM-USER-TOKEN"] == TOKEN
    assert request["headers"]["X-SLURM-USER-NAME"] == "fairledger"
    assert_gaps_and_change_found_then_fixed(report, store, source)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_slurmrestd_fails_the_reconciliation_and_degrades_the_source_until_one_works(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    source = rest_source(restd.url, token_file)
    service = Service(Settings(sources=[source]), store)
    assert run_sacct_source(source, store, now=lambda: T0).status == "loaded"

    restd.answers = [(500, '{"errors": [{"description": "slurmdbd down"}]}')]
    failed = reconcile_sacct_source(source, store, now=lambda: LATER)
    assert failed.status == "failed" and "HTTP 500" in (failed.error or "")
    assert TOKEN not in (failed.error or "")
    (shown,) = service.status().sources
    assert shown.degraded and shown.consecutive_failures == 1
    assert (shown.last_error or "").startswith("reconciliation: ")

    refused = rest_source(f"http://127.0.0.1:{unused_port()}", token_file)
    failed = reconcile_sacct_source(refused, store, now=lambda: LATER)
    assert failed.status == "failed" and "ConnectError" in (failed.error or "")
    assert state(store, "rest-lab").consecutive_failures == 2

    restd.answers = [(200, REST_JSON)]
    restd.delay_s = 2.0  # within the pull's 30 s, not the reconciliation's 1 s
    slow = rest_source(
        restd.url, token_file, reconcile=Reconcile(enabled=True, window_days=3, timeout_s=1)
    )
    failed = reconcile_sacct_source(slow, store, now=lambda: LATER)
    assert failed.status == "failed" and "timed out after 1 s" in (failed.error or "")
    assert state(store, "rest-lab").watermark == T0  # no failure moves it

    restd.delay_s = 0.0
    assert reconcile_sacct_source(source, store, now=lambda: LATER).status == "ok"
    (cleared,) = service.status().sources
    assert not cleared.degraded and cleared.last_error is None
    assert state(store, "rest-lab").watermark == T0
    with store.reading() as cur:
        assert read_last_reconciliations(cur)["rest-lab"].status == "ok"


def test_a_job_a_slurmrestd_reconciliation_refuses_is_quarantined_for_the_json_parser(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    restd.answers = [(200, with_a_refused_job(REST_JSON))]
    report = reconcile_sacct_source(rest_source(restd.url, token_file), store, now=lambda: LATER)
    assert (report.status, report.quarantined, report.gaps) == ("ok", 1, 20)
    assert_quarantined_as(store, "rest-lab", "slurmrestd")


def test_a_bad_slurmrestd_url_fails_the_reconciliation_and_the_pull_without_crashing(
    token_file: Path, store: StoreHandle
) -> None:
    bad = rest_source("http://127.0.0.1:notaport", token_file)  # httpx.InvalidURL, not HTTPError
    report = reconcile_sacct_source(bad, store, now=lambda: LATER)
    assert report.status == "failed" and "Invalid port" in (report.error or "")
    pulled = run_sacct_source(bad, store, now=lambda: LATER)
    assert (pulled.status, pulled.attempts) == ("failed", 0)
    assert "bad source settings" in (pulled.error or "")
    assert state(store, "rest-lab").consecutive_failures == 2
