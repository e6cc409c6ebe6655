"""slurmrestd's ``GET /slurmdb/v0.0.NN/jobs``: the accounting records ``sacct --json`` prints.

``fetch_slurmdb_jobs`` does the I/O (httpx, with an injectable transport so tests stand in a
``httpx.MockTransport`` for the server); ``parse_slurmdb_jobs`` is ``parse_sacct_json``, since
slurmrestd answers with the same document (``openapi/dbv0.0.38`` in 22.05, ``data_parser``
layouts from 23.02).
"""

from __future__ import annotations

import re
from datetime import datetime

import httpx

from ingest.sources.sacct_json import parse_sacct_json
from models.errors import SourceUnavailable

parse_slurmdb_jobs = parse_sacct_json

_VERSION = re.compile(r"^v?(0\.0\.\d+)$")
_TAIL_CHARS = 800


def slurmdb_jobs_url(base_url: str, *, version: str) -> str:
    """Return the jobs endpoint of ``base_url`` for API ``version`` (``0.0.38`` or ``v0.0.38``)."""
    match = _VERSION.match(version.strip())
    if match is None:
        raise ValueError(f"expected a slurmrestd API version like 0.0.40, found {version!r}")
    return f"{base_url.rstrip('/')}/slurmdb/v{match.group(1)}/jobs"


def _epoch(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError(f"{t!r} has no time zone")
    return int(t.timestamp())


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TAIL_CHARS else "…" + text[-_TAIL_CHARS:]


def fetch_slurmdb_jobs(
    base_url: str,
    *,
    version: str,
    token: str,
    user: str,
    start: datetime,
    end: datetime,
    transport: httpx.BaseTransport | None = None,
    timeout_s: float = 120.0,
) -> str:
    """Return the body of ``GET {base}/slurmdb/v{version}/jobs`` for jobs active in
    ``[start, end]`` (aware times, sent as epoch seconds).

    Authenticates with ``X-SLURM-USER-NAME`` / ``X-SLURM-USER-TOKEN`` (a JWT). A connection
    error, a timeout or a status other than 200 raises SourceUnavailable with the status and
    the tail of the body; the token never appears in a message.
    """
    url = slurmdb_jobs_url(base_url, version=version)
    params = {"start_time": str(_epoch(start)), "end_time": str(_epoch(end))}
    headers = {
        "X-SLURM-USER-NAME": user,
        "X-SLURM-USER-TOKEN": token,
        "Accept": "application/json",
    }
    try:
        with httpx.Client(transport=transport, timeout=timeout_s) as client:
            response = client.get(url, params=params, headers=headers)
    except httpx.TimeoutException as exc:
        raise SourceUnavailable(f"GET {url} timed out after {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise SourceUnavailable(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        body = _tail(response.text)
        raise SourceUnavailable(
            f"GET {url} returned HTTP {response.status_code}"
            + (f": {body}" if body else " with an empty body")
        )
    return response.text
