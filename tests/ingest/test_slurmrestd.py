"""fetch_slurmdb_jobs against an httpx.MockTransport standing in for slurmrestd."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ingest.sources.sacct import SACCT_STATES
from ingest.sources.slurmrestd import fetch_slurmdb_jobs, parse_slurmdb_jobs, slurmdb_jobs_url
from models.errors import SourceUnavailable

SAMPLES = Path(__file__).parent / "samples" / "sacct_json"
START = datetime(2024, 10, 27, tzinfo=UTC)
END = datetime(2024, 10, 28, tzinfo=UTC)


def fetch(handler: httpx.MockTransport, version: str = "0.0.40") -> str:
    return fetch_slurmdb_jobs(
        "http://slurm.example:6820/", version=version, token="secret-jwt", user="fairledger",
        start=START, end=END, transport=handler,
    )  # fmt: skip


def test_the_request_names_the_window_and_authenticates() -> None:
    seen: list[httpx.Request] = []
    body = (SAMPLES / "sacct-23.11-v0.0.40.json").read_text(encoding="utf-8")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=body)

    text = fetch(httpx.MockTransport(handler), version="v0.0.40")
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/slurmdb/v0.0.40/jobs"
    # ISO times (22.05 refuses epoch seconds), every state, ':' and ',' percent-encoded
    assert request.url.params["start_time"] == "2024-10-27T00:00:00"
    assert request.url.params["end_time"] == "2024-10-28T00:00:00"
    assert request.url.params["state"] == SACCT_STATES
    assert b"%3A" in request.url.query and b"," not in request.url.query
    assert request.headers["X-SLURM-USER-NAME"] == "fairledger"
    assert request.headers["X-SLURM-USER-TOKEN"] == "secret-jwt"
    batch = parse_slurmdb_jobs(text, source="slurmrestd")
    assert batch.runs.height == 4 and batch.quarantine.is_empty()


@pytest.mark.parametrize("status", [401, 403, 500, 502])
def test_an_error_status_is_a_source_unavailable_with_the_body_tail(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="x" * 5000 + " Authentication failure")

    with pytest.raises(SourceUnavailable) as caught:
        fetch(httpx.MockTransport(handler))
    message = str(caught.value)
    assert f"HTTP {status}" in message and message.endswith("Authentication failure")
    assert len(message) < 1200 and "secret-jwt" not in message


def test_a_connection_failure_is_a_source_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(SourceUnavailable, match="connection refused"):
        fetch(httpx.MockTransport(handler))


def test_a_timeout_is_a_source_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(SourceUnavailable, match="timed out"):
        fetch(httpx.MockTransport(handler))


def test_naive_times_and_bad_versions_are_refused() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="{}"))
    with pytest.raises(ValueError, match="time zone"):
        fetch_slurmdb_jobs("http://x", version="0.0.40", token="t", user="u",
                           start=datetime(2024, 1, 1), end=END, transport=transport)  # fmt: skip  # noqa: DTZ001 - a zone-less time is what is refused
    with pytest.raises(ValueError, match=r"0\.0\.40"):
        slurmdb_jobs_url("http://x", version="40")
