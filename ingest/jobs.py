"""Scheduled ingest: one pull of a configured ``sacct`` source into the store.

A source's ``kind`` says what is pulled: ``sacct`` text (the default), ``sacct --json`` or
slurmrestd's ``/slurmdb/v0.0.NN/jobs``; everything below holds for all three. The fetch of a
window (``window_fetcher``) and the parse of what came back (``parse_pulled``) are shared with
the reconciliation (``ingest.reconcile``).

A pull reads ``[watermark - lookback_s, now]`` (the first one ``[initial_start, now]``), because
``sacct -S/-E`` selects the records *active* in a window and a record can change after it
ended (requeues, admin edits): the overlap re-reads the recent past and the upsert keeps
what did not change. The batch and the new watermark (the window's end) land in one
transaction, so a failed load never skips a window. A failed pull is retried with exponential
backoff; when every attempt fails the source records its error and counts one more
consecutive failure (it is then *degraded*) and the watermark stays where it was.

Two pulls never run at once for one cluster (a per-process lock; the scheduler also runs each
source's job one at a time), and a source is not pulled again within ``min_interval_s`` of its
last attempt, so a restart loop or a manual run cannot hammer slurmdbd.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol, cast

import httpx

from ingest.load import field_order, write_parsed
from ingest.sources.sacct import (
    Runner,
    SacctBatch,
    SacctPull,
    fetch_sacct,
    parse_sacct,
    resolve_sacct_time,
    sacct_command,
    subprocess_runner,
)
from ingest.sources.sacct_json import parse_sacct_json, sacct_json_command
from ingest.sources.slurmrestd import (
    RestPull,
    fetch_rest_source,
    slurmdb_jobs_query,
    slurmdb_jobs_url,
)
from models.errors import FairledgerError, SourceUnavailable
from models.store import BatchSummary, Connection
from models.store.handle import StoreHandle
from models.store.quarantine import ParsedWith
from models.store.sources import (
    SourceState,
    ensure_source,
    read_source_state,
    record_source_failure,
)

log = logging.getLogger(__name__)


class ScheduledSacct(SacctPull, Protocol):
    """A scheduled sacct source (``api.settings.SacctSource`` has these fields)."""

    @property
    def interval_s(self) -> int: ...
    @property
    def min_interval_s(self) -> int: ...
    @property
    def lookback_s(self) -> int: ...
    @property
    def initial_start(self) -> str: ...
    @property
    def timeout_s(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def backoff_s(self) -> float: ...


@dataclass(frozen=True)
class IngestOutcome:
    """What one scheduled pull did.

    ``status`` is ``loaded`` (``summary`` says what landed), ``skipped`` (``reason`` says why;
    nothing was run) or ``failed`` (``error`` is the last error; the watermark did not move).
    """

    source: str
    status: Literal["loaded", "skipped", "failed"]
    window_start: datetime | None = None
    window_end: datetime | None = None
    summary: BatchSummary | None = None
    attempts: int = 0
    error: str | None = None
    reason: str | None = None

    @property
    def changed(self) -> bool:
        """Return whether new or changed runs landed (the factors may have moved)."""
        s = self.summary
        return s is not None and (s.runs_new + s.runs_changed) > 0

    def describe(self) -> str:
        """Return a one-line summary for logs and the command line."""
        if self.status == "skipped":
            return f"{self.source}: skipped ({self.reason})"
        window = f"[{_iso(self.window_start)}, {_iso(self.window_end)}]"
        if self.status == "failed":
            return f"{self.source}: failed after {self.attempts} attempt(s) {window}: {self.error}"
        s = self.summary
        assert s is not None
        return (
            f"{self.source}: batch {s.batch_id} {window}: {s.lines_read} lines; runs "
            f"{s.runs_new} new, {s.runs_changed} changed, {s.runs_unchanged} unchanged; "
            f"{s.quarantined} quarantined"
        )


def _iso(t: datetime | None) -> str:
    return t.isoformat() if t is not None else "?"


class _ClusterLocks:
    """One lock per cluster name, created on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, cluster: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(cluster, threading.Lock())


# One pull per cluster at a time, shared by scheduled pulls and reconciliations.
cluster_lock = _ClusterLocks()


def run_sacct_source(
    source: ScheduledSacct,
    store: StoreHandle,
    *,
    now: Callable[[], datetime],
    runner: Runner = subprocess_runner,
    sleep: Callable[[float], None] = time.sleep,
    force: bool = False,
) -> IngestOutcome:
    """Pull ``source`` once and land what it printed; return what happened.

    Skips (without running sacct) while another pull of the same cluster runs in this
    process, and, unless ``force``, within ``min_interval_s`` of the source's last attempt.
    """
    cluster = source.cluster or ""
    lock = cluster_lock(cluster)
    if not lock.acquire(blocking=False):
        reason = f"a pull of cluster {cluster or '(local)'} is already running"
        log.info("sacct source %s skipped: %s", source.name, reason)
        return IngestOutcome(source.name, "skipped", reason=reason)
    try:
        return _pull(source, store, now=now, runner=runner, sleep=sleep, force=force)
    finally:
        lock.release()


def _pull(
    source: ScheduledSacct,
    store: StoreHandle,
    *,
    now: Callable[[], datetime],
    runner: Runner,
    sleep: Callable[[float], None],
    force: bool,
) -> IngestOutcome:
    started_at = now()
    with store.reading() as cur:
        state = read_source_state(cur, source.name)
    if state is None:
        with store.write() as cur:
            ensure_source(cur, source.name, cluster=source.cluster)
    elif not force and (reason := _too_soon(state, source, started_at)):
        log.info("sacct source %s skipped: %s", source.name, reason)
        return IngestOutcome(source.name, "skipped", reason=reason)

    def failed(error: str, attempts: int, start: datetime | None = None) -> IngestOutcome:
        with store.write() as cur:
            record_source_failure(
                cur,
                source=source.name,
                cluster=source.cluster,
                error=error,
                attempted_at=started_at,
            )
        log.warning("sacct source %s failed: %s", source.name, error)
        return IngestOutcome(source.name, "failed", start, started_at, None, attempts, error)

    try:
        if state is not None and state.watermark is not None:
            start = state.watermark - timedelta(seconds=source.lookback_s)
        else:
            start = resolve_sacct_time(source.initial_start, now=started_at, tz=source.tz)
        fetch = window_fetcher(source, start=start, end=started_at, runner=runner)
    except (FairledgerError, ValueError, LookupError) as exc:  # a bad start, an unknown zone
        return failed(f"bad source settings: {exc}", 0)

    text: str | None = None
    error = ""
    attempts = 0
    for attempt in range(source.retries + 1):
        if attempt:
            sleep(source.backoff_s * 2 ** (attempt - 1))
        attempts += 1
        try:
            text = fetch()
            break
        except SourceUnavailable as exc:
            error = str(exc)
            log.info("sacct source %s attempt %d failed: %s", source.name, attempts, error)
    if text is None:
        return failed(error, attempts, start)

    try:
        batch = parse_pulled(source, text)
        with store.write() as cur:
            summary = write_sacct_pull(
                cur, source, batch, text, started_at=started_at, advance_watermark=True,
                parser=source_kind(source),
            )  # fmt: skip
    except Exception as exc:  # a failed load must degrade the source, whatever the cause
        if not isinstance(exc, FairledgerError):  # a bug, not bad input: keep the traceback
            log.exception("loading the pull of sacct source %s crashed", source.name)
        return failed(f"{type(exc).__name__}: {exc}", attempts, start)
    outcome = IngestOutcome(source.name, "loaded", start, started_at, summary, attempts)
    log.info("%s", outcome.describe())
    return outcome


def write_sacct_pull(
    cur: Connection,
    source: SacctPull,
    batch: SacctBatch,
    text: str,
    *,
    started_at: datetime,
    advance_watermark: bool = False,
    parser: str = "sacct",
) -> BatchSummary:
    """Land a parsed sacct pull of ``source`` as one batch; return what it changed."""
    if parser != "sacct":  # sacct_json, slurmrestd: JSON, no field order
        parsed_with = ParsedWith(parser, None, source.cluster, None)
    else:
        parsed_with = ParsedWith("sacct", field_order(text, None), source.cluster, source.tz)
    return write_parsed(
        cur,
        batch,
        source=source.name,
        scheduler="slurm",
        started_at=started_at,
        parsed_with=parsed_with,
        advance_watermark=advance_watermark,
    )


def source_kind(source: ScheduledSacct) -> str:
    """Return the source's kind: ``sacct`` (text), ``sacct_json`` or ``slurmrestd``."""
    return str(getattr(source, "kind", "sacct"))


def parse_pulled(source: ScheduledSacct, text: str) -> SacctBatch:
    """Return the batch of what a pull of ``source`` fetched, parsed by its kind:
    ``parse_sacct`` for sacct text, ``parse_sacct_json`` for sacct_json and slurmrestd."""
    if source_kind(source) == "sacct":
        return parse_sacct(text, source=source.name, cluster=source.cluster, tz=source.tz)
    return parse_sacct_json(text, source=source.name, cluster=source.cluster)


def window_fetcher(
    source: ScheduledSacct,
    *,
    start: datetime,
    end: datetime,
    runner: Runner,
    timeout_s: int | None = None,
) -> Callable[[], str]:
    """Return the call that fetches ``source``'s window (sacct text, sacct --json or
    slurmrestd), each call one attempt that raises SourceUnavailable when it fails;
    ``timeout_s`` replaces ``source.timeout_s`` (a reconciliation's own). A bad setting raises
    here, before any attempt."""
    kind = source_kind(source)
    timeout = source.timeout_s if timeout_s is None else timeout_s
    if kind == "slurmrestd":
        rest = cast(RestPull, source)
        url = slurmdb_jobs_url(rest.url or "", version=rest.api_version)  # bad settings fail here
        try:
            httpx.URL(url)  # else a bad port escapes fetch_rest_source as httpx.InvalidURL
        except httpx.InvalidURL as exc:
            raise ValueError(f"slurmrestd url {rest.url!r}: {exc}") from exc
        slurmdb_jobs_query(start, end, tz=rest.tz)
        return lambda: fetch_rest_source(rest, start=start, end=end, timeout_s=timeout)
    command = sacct_json_command if kind == "sacct_json" else sacct_command
    argv = command(source, start=start, end=end)
    return lambda: fetch_sacct(argv, runner=runner, timeout_s=timeout, tz=source.tz)


def _too_soon(state: SourceState, source: ScheduledSacct, at: datetime) -> str | None:
    """Return why a pull at ``at`` is too soon after the last attempt, or None."""
    last = state.last_attempt_at
    if last is None or at - last >= timedelta(seconds=source.min_interval_s):
        return None
    return (
        f"last attempt at {last.isoformat()}, less than min_interval_s="
        f"{source.min_interval_s} s ago"
    )
