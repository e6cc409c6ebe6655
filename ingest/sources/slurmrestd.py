"""slurmrestd's ``GET /slurmdb/v0.0.NN/jobs``: the accounting records ``sacct --json`` prints.

``fetch_slurmdb_jobs`` does the I/O (httpx, with an injectable transport so tests stand in a
``httpx.MockTransport`` for the server); ``parse_slurmdb_jobs`` is ``parse_sacct_json``, since
slurmrestd answers with the same document (``openapi/dbv0.0.38`` in 22.05, ``data_parser``
layouts from 23.02).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import httpx

from ingest.sources.sacct import SACCT_STATES, TIME_FORMAT
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


def slurmdb_jobs_query(
    start: datetime, end: datetime, *, tz: str = "UTC", cluster: str | None = None
) -> str:
    """Return the query string of a jobs request for ``[start, end]`` (aware times).

    The times are written as ``YYYY-MM-DDTHH:MM:SS`` in ``tz``, slurmrestd's time zone: 22.05
    refuses epoch seconds ("Invalid time specification") and reads a time in its own zone.
    ``cluster`` limits the answer to one cluster, as the pull's ``--clusters``. ``state`` lists
    every state, as the sacct pull's ``--state``: without it slurmdbd leaves
    out the jobs cancelled before they started. Everything is percent-encoded (22.05 answers
    "Unable to parse query" to a bare ``:``, and reads a bare ``,`` as the end of the list).
    """
    zone = zoneinfo.ZoneInfo(tz)

    def when(t: datetime) -> str:
        if t.tzinfo is None:
            raise ValueError(f"{t!r} has no time zone")
        return t.astimezone(zone).strftime(TIME_FORMAT)

    query = {"start_time": when(start), "end_time": when(end), "state": SACCT_STATES}
    if cluster:  # else slurmdbd answers for every cluster it serves
        query["cluster"] = cluster
    return urlencode(query, safe="")


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
    tz: str = "UTC",
    cluster: str | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout_s: float = 120.0,
) -> str:
    """Return the body of ``GET {base}/slurmdb/v{version}/jobs`` for jobs active in
    ``[start, end]`` (aware times, written in ``tz``, slurmrestd's zone; see
    ``slurmdb_jobs_query``).

    Authenticates with ``X-SLURM-USER-NAME`` / ``X-SLURM-USER-TOKEN`` (a JWT). A connection
    error, a timeout or a status other than 200 raises SourceUnavailable with the status and
    the tail of the body; the token never appears in a message.
    """
    url = slurmdb_jobs_url(base_url, version=version)
    query = slurmdb_jobs_query(start, end, tz=tz, cluster=cluster)
    headers = {
        "X-SLURM-USER-NAME": user,
        "X-SLURM-USER-TOKEN": token,
        "Accept": "application/json",
    }
    try:
        with httpx.Client(transport=transport, timeout=timeout_s) as client:
            response = client.get(f"{url}?{query}", headers=headers)
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


class RestPull(Protocol):
    """What a scheduled slurmrestd pull needs (``api.settings.SacctSource`` has these fields)."""

    @property
    def cluster(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def api_version(self) -> str: ...
    @property
    def user(self) -> str | None: ...
    @property
    def token_file(self) -> Path | None: ...
    @property
    def tz(self) -> str: ...
    @property
    def timeout_s(self) -> int: ...


def read_token(path: Path) -> str:
    """Return the JWT in ``path``: its first non-blank line, ``SLURM_JWT=`` (what ``scontrol
    token`` prints) stripped. SourceUnavailable when it cannot be read or is empty (a token
    being rotated is retried like a failed call); the token is never in a message."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise SourceUnavailable(f"cannot read the slurmrestd token {path}: {exc.strerror}") from exc
    token = next((line for line in lines if line), "").removeprefix("SLURM_JWT=").strip()
    if not token:
        raise SourceUnavailable(f"the slurmrestd token file {path} is empty")
    return token


def fetch_rest_source(
    source: RestPull,
    *,
    start: datetime,
    end: datetime,
    transport: httpx.BaseTransport | None = None,
    timeout_s: int | None = None,
) -> str:
    """Return what slurmrestd answers for ``source``'s cluster in ``[start, end]``, with the
    token read from ``source.token_file`` now (tokens expire and are rotated); ``timeout_s``
    replaces ``source.timeout_s`` (a reconciliation's own)."""
    if source.url is None or source.user is None or source.token_file is None:
        raise SourceUnavailable("a slurmrestd source needs url, user and token_file")
    return fetch_slurmdb_jobs(
        source.url,
        version=source.api_version,
        token=read_token(source.token_file),
        user=source.user,
        start=start,
        end=end,
        tz=source.tz,
        cluster=source.cluster,
        transport=transport,
        timeout_s=source.timeout_s if timeout_s is None else timeout_s,
    )
