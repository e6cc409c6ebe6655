"""Scheduled sources of kind ``sacct_json`` (the fake sacct) and ``slurmrestd`` (a real HTTP
server in the test), fed Slurm 22.05.8's recorded output, into a DuckDB file: the watermark,
lookback, retries, min interval, one pull per cluster and degraded semantics of the text pull.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from json_source_fakes import Slurmrestd, answers, json_source
from pydantic import ValidationError

from api.settings import SacctSource, load_settings
from ingest.jobs import IngestOutcome, cluster_lock, run_sacct_source
from ingest.quarantine import retry_quarantined
from ingest.sources.sacct import SACCT_STATES
from models.store.handle import StoreHandle
from models.store.sources import read_source_state

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "integration" / "slurm" / "recorded" / "sacct_json"
SACCT_JSON = (RECORDED / "first" / "sacct.json").read_text(encoding="utf-8")
REST_JSON = (RECORDED / "after_restart" / "slurmrestd.json").read_text(encoding="utf-8")
REST_EMPTY = (RECORDED / "after_restart" / "slurmrestd-empty.json").read_text(encoding="utf-8")
T0 = datetime(2026, 11, 29, 3, 0, 0, tzinfo=UTC)  # after the recorded jobs
TOKEN = "eyJhbGciOiJIUzI1NiJ9.secret.token"


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


def run_count(store: StoreHandle) -> int:
    with store.reading() as cur:
        return int(cur.execute("SELECT count(*) FROM runs").fetchall()[0][0])


def state(store: StoreHandle, name: str) -> Any:
    with store.reading() as cur:
        found = read_source_state(cur, name)
    assert found is not None
    return found


# ---------------------------------------------------------------------------- sacct --json


@pytest.fixture
def fake_sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_SACCT_LOG", str(log))
    return log


def test_a_sacct_json_source_runs_sacct_json_with_the_text_pulls_window_and_lands_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sacct: Path, store: StoreHandle
) -> None:
    answers(tmp_path, monkeypatch, SACCT_JSON)
    clock = Clock()
    first = run_sacct_source(json_source(), store, now=clock)
    assert first.status == "loaded" and first.summary is not None
    assert (first.summary.runs_new, first.summary.quarantined) == (21, 0)
    assert run_count(store) == 21 and state(store, "json-lab").watermark == T0
    clock.at = T0 + timedelta(minutes=10)
    again = run_sacct_source(json_source(), store, now=clock)
    assert again.summary is not None and (again.summary.runs_new, again.summary.runs_changed) == (
        0,
        0,
    )
    calls = [json.loads(line)["argv"] for line in fake_sacct.read_text().splitlines()]
    assert len(calls) == 2
    for argv in calls:
        assert argv[-1] == "--json" and "--parsable2" not in argv
        assert not any(a.startswith("--format=") for a in argv)
        assert {"--allusers", "--duplicates", f"--state={SACCT_STATES}", "--clusters=lab"} <= set(
            argv
        )
    assert "--starttime=2026-11-29T00:00:00" in calls[0]
    assert "--endtime=2026-11-29T03:00:00" in calls[0]
    assert "--starttime=2026-11-29T02:00:00" in calls[1]  # watermark - lookback
    assert "--endtime=2026-11-29T03:10:00" in calls[1]


def test_a_sacct_json_source_retries_then_degrades_and_keeps_its_watermark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sacct: Path, store: StoreHandle
) -> None:
    answers(tmp_path, monkeypatch, None, SACCT_JSON, None, None)
    loaded = run_sacct_source(json_source(retries=1), store, now=Clock())
    assert (loaded.status, loaded.attempts) == ("loaded", 2)
    clock = Clock()
    clock.at = T0 + timedelta(hours=1)
    failed = run_sacct_source(json_source(retries=1), store, now=clock)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert failed.error is not None and "slurmdbd down" in failed.error
    after = state(store, "json-lab")
    assert after.degraded and after.watermark == T0  # not moved by the failed window


def test_a_json_document_that_reports_errors_fails_the_pull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sacct: Path, store: StoreHandle
) -> None:
    document = json.loads(SACCT_JSON)
    document["errors"] = [{"error_number": 7000, "description": "Unable to connect to slurmdbd"}]
    answers(tmp_path, monkeypatch, json.dumps(document))
    outcome = run_sacct_source(json_source(), store, now=Clock())
    assert outcome.status == "failed" and "Unable to connect" in (outcome.error or "")
    assert run_count(store) == 0 and state(store, "json-lab").watermark is None


# ---------------------------------------------------------------------------- slurmrestd


@pytest.fixture
def restd() -> Iterator[Slurmrestd]:
    server = Slurmrestd(REST_JSON)
    yield server
    server.close()


def rest_source(restd: Slurmrestd, token_file: Path, **overrides: Any) -> SacctSource:
    settings: dict[str, Any] = {
        "name": "rest-lab", "kind": "slurmrestd", "cluster": "lab", "url": restd.url + "/",
        "api_version": "v0.0.38", "user": "fairledger", "token_file": token_file,
        "initial_start": "2026-11-29T00:00:00", "backoff_s": 0, "retries": 0,
        "min_interval_s": 0, "lookback_s": 3600, "timeout_s": 10,
    }  # fmt: skip
    return SacctSource(**{**settings, **overrides})


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "slurm.jwt"
    path.write_text(f"\nSLURM_JWT={TOKEN}\n", encoding="utf-8")  # as `scontrol token` prints
    return path


def test_a_slurmrestd_source_asks_for_its_window_with_the_token_and_lands_the_runs(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    clock = Clock()
    first = run_sacct_source(rest_source(restd, token_file), store, now=clock)
    assert first.status == "loaded" and first.summary is not None
    assert (first.summary.runs_new, first.summary.quarantined) == (21, 0)
    assert state(store, "rest-lab").watermark == T0
    clock.at = T0 + timedelta(minutes=10)
    again = run_sacct_source(rest_source(restd, token_file), store, now=clock)
    assert again.summary is not None and again.summary.runs_new == 0
    assert again.summary.runs_changed == 0
    first_request, second_request = restd.requests
    assert first_request["path"] == "/slurmdb/v0.0.38/jobs"
    assert first_request["headers"]["X-SLURM-USER-TOKEN"] == TOKEN
    assert first_request["headers"]["X-SLURM-USER-NAME"] == "fairledger"
    assert first_request["query"] == {
        "start_time": ["2026-11-29T00:00:00"], "end_time": ["2026-11-29T03:00:00"],
        "state": [SACCT_STATES], "cluster": ["lab"],
    }  # fmt: skip
    assert "%3A" in first_request["raw"]  # 22.05 cannot parse a bare ':'
    assert second_request["query"]["start_time"] == ["2026-11-29T02:00:00"]  # watermark - lookback


def test_a_window_without_jobs_lands_an_empty_batch_and_moves_the_watermark(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    restd.answers = [(200, REST_EMPTY)]  # errors: [Nothing found], jobs: []
    outcome = run_sacct_source(rest_source(restd, token_file), store, now=Clock())
    assert outcome.status == "loaded" and outcome.summary is not None
    assert outcome.summary.lines_read == 0 and state(store, "rest-lab").watermark == T0


def test_slurmrestd_errors_are_retried_then_the_source_is_degraded(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    restd.answers = [(500, "{}"), (503, "busy"), (200, REST_JSON)]
    loaded = run_sacct_source(rest_source(restd, token_file, retries=2), store, now=Clock())
    assert (loaded.status, loaded.attempts, len(restd.requests)) == ("loaded", 3, 3)
    restd.answers = [(401, "Authentication failure")]
    clock = Clock()
    clock.at = T0 + timedelta(hours=1)
    failed = run_sacct_source(rest_source(restd, token_file, retries=1), store, now=clock)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert failed.error is not None and "HTTP 401" in failed.error and TOKEN not in failed.error
    after = state(store, "rest-lab")
    assert after.degraded and after.watermark == T0 and TOKEN not in (after.last_error or "")


def test_an_unreadable_token_fails_the_pull_without_a_request(
    restd: Slurmrestd, tmp_path: Path, store: StoreHandle
) -> None:
    missing = tmp_path / "no-such.jwt"
    outcome = run_sacct_source(rest_source(restd, missing, retries=1), store, now=Clock())
    assert outcome.status == "failed" and str(missing) in (outcome.error or "")
    assert restd.requests == [] and state(store, "rest-lab").degraded
    empty = tmp_path / "empty.jwt"
    empty.write_text("\n", encoding="utf-8")
    outcome = run_sacct_source(rest_source(restd, empty), store, now=Clock())
    assert outcome.status == "failed" and "empty" in (outcome.error or "")


def test_a_refused_job_is_quarantined_with_its_kind_and_retried_with_the_json_parser(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    document = json.loads(REST_JSON)
    document["jobs"][0]["state"]["current"] = "WEIRD"
    restd.answers = [(200, json.dumps(document))]
    outcome = run_sacct_source(rest_source(restd, token_file), store, now=Clock())
    assert outcome.summary is not None and outcome.summary.quarantined == 1
    assert outcome.summary.runs_new == 20
    with store.reading() as cur:
        rows = cur.execute("SELECT parser, field FROM quarantine").fetchall()
    assert rows == [("slurmrestd", "state.current")]
    with store.write() as cur:
        (retry,) = retry_quarantined(cur, source="rest-lab")
    assert (retry.retried, retry.still_open, retry.skipped) == (1, 1, ())


def test_a_bad_api_version_fails_before_any_attempt(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    outcome = run_sacct_source(rest_source(restd, token_file, api_version="38"), store, now=Clock())
    assert (outcome.status, outcome.attempts) == ("failed", 0)
    assert "bad source settings" in (outcome.error or "") and restd.requests == []


def test_min_interval_and_one_pull_per_cluster_hold_for_slurmrestd(
    restd: Slurmrestd, token_file: Path, store: StoreHandle
) -> None:
    clock = Clock()
    source = rest_source(restd, token_file, min_interval_s=60)
    assert run_sacct_source(source, store, now=clock).status == "loaded"
    clock.at = T0 + timedelta(seconds=30)
    too_soon = run_sacct_source(source, store, now=clock)
    assert too_soon.status == "skipped" and "min_interval_s=60" in (too_soon.reason or "")
    clock.at = T0 + timedelta(minutes=5)
    lock = cluster_lock("lab")  # a text pull of the same cluster is running
    assert lock.acquire(blocking=False)
    try:
        busy: IngestOutcome = run_sacct_source(source, store, now=clock)
    finally:
        lock.release()
    assert busy.status == "skipped" and "already running" in (busy.reason or "")
    assert len(restd.requests) == 1


# ---------------------------------------------------------------------------- settings


def test_the_settings_name_the_kind_and_refuse_what_it_cannot_do(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        '[[sources]]\nname = "text"\n\n[[sources]]\nname = "json"\nkind = "sacct_json"\n\n'
        '[[sources]]\nname = "rest"\nkind = "slurmrestd"\nurl = "http://h:6820"\n'
        'user = "fairledger"\ntoken_file = "/etc/fairledger/slurm.jwt"\n',
        encoding="utf-8",
    )
    kinds = [(s.name, s.kind) for s in load_settings(config).sources]
    assert kinds == [("text", "sacct"), ("json", "sacct_json"), ("rest", "slurmrestd")]
    with pytest.raises(ValidationError, match="needs url, token_file"):
        SacctSource(name="rest", kind="slurmrestd", user="fairledger")
    reconciled = SacctSource(name="json", kind="sacct_json", reconcile={"enabled": True})
    assert reconciled.reconcile.enabled  # every kind can be reconciled
    with pytest.raises(ValidationError):
        SacctSource(name="x", kind="squeue")
