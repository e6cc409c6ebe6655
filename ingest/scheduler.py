"""Scheduled ingest jobs on an APScheduler 3.x scheduler owned by the serving process.

One interval job per configured source. Each is a plain function, so the scheduler runs it in
a worker thread (AsyncIOScheduler: the event loop's default executor) and a slow sacct never
blocks an HTTP request. ``max_instances=1`` and ``coalesce=True`` mean a source never overlaps
itself and a backlog of missed ticks runs once; the per-cluster lock in ``ingest.jobs`` keeps
two sources of one cluster (say a frequent pull and a wide reconciliation pull) apart.

Drop directories (``add_drop_dir_jobs``) and reconciliations (``add_reconcile_jobs``) are
interval jobs of the same kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

from ingest.dropdir import DropDirSettings, run_drop_dir
from ingest.jobs import ScheduledSacct, run_sacct_source, source_kind
from ingest.reconcile import ReconciledSacct, reconcile_sacct_source
from ingest.sources.sacct import Runner, subprocess_runner
from models.store.handle import StoreHandle
from models.store.sources import ensure_source

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def job_id(source: ScheduledSacct) -> str:
    """Return the scheduler job id of ``source``'s pull."""
    return f"ingest:{source.name}"


def _add_interval_job(
    scheduler: BaseScheduler,
    work: Callable[[], bool],
    *,
    on_loaded: Callable[[], None],
    seconds: float,
    job: str,
    name: str,
    first: datetime | None,
) -> None:
    """Add ``work`` as an interval job that never overlaps itself; ``on_loaded()`` follows
    each run of ``work`` that returned True (new or changed runs landed). The first run is at
    ``first``, or one interval from now when ``first`` is None."""
    # APScheduler reads an explicit next_run_time=None as "paused": pass it only when given.
    start = {} if first is None else {"next_run_time": first}
    scheduler.add_job(
        _run_and_notify,
        trigger="interval",
        seconds=seconds,
        kwargs={"work": work, "on_loaded": on_loaded, "name": name},
        id=job,
        name=name,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,  # late is better than skipped: a backlog runs once
        replace_existing=True,
        **start,
    )


def _run_and_notify(*, work: Callable[[], bool], on_loaded: Callable[[], None], name: str) -> None:
    try:
        changed = work()
    except Exception:  # a scheduled job logs and waits for its next tick
        log.exception("scheduled job %r crashed", name)
        return
    if changed:
        try:
            on_loaded()
        except Exception:
            log.exception("on_loaded after scheduled job %r failed", name)


def add_ingest_jobs(
    scheduler: BaseScheduler,
    sources: Sequence[ScheduledSacct],
    store: StoreHandle,
    *,
    on_loaded: Callable[[], None],
    runner: Runner = subprocess_runner,
    now: Callable[[], datetime] = _utc_now,
    first_run_after_s: float = 1.0,
) -> None:
    """Add one interval job per source that pulls it and calls ``on_loaded()`` when new or
    changed runs landed. The first pulls start ``first_run_after_s`` after this call."""
    with store.write() as cur:
        for source in sources:
            ensure_source(cur, source.name, cluster=source.cluster)
    first = datetime.now(UTC) + timedelta(seconds=first_run_after_s)
    for source in sources:

        def pull(source: ScheduledSacct = source) -> bool:
            return run_sacct_source(source, store, now=now, runner=runner).changed

        _add_interval_job(
            scheduler, pull, on_loaded=on_loaded, seconds=source.interval_s,
            job=job_id(source), name=f"ingest {source_kind(source)} {source.name}", first=first,
        )  # fmt: skip


def add_drop_dir_jobs(
    scheduler: BaseScheduler,
    drops: Sequence[DropDirSettings],
    store: StoreHandle,
    *,
    on_loaded: Callable[[], None],
    now: Callable[[], datetime] = _utc_now,
    first_run_after_s: float = 1.0,
) -> None:
    """Add one interval job per drop directory (every ``interval_s``) that loads its ready
    files and calls ``on_loaded()`` when new or changed runs landed."""
    with store.write() as cur:
        for drop in drops:
            ensure_source(cur, drop.name, cluster=drop.cluster)
    first = datetime.now(UTC) + timedelta(seconds=first_run_after_s)
    for drop in drops:

        def load(drop: DropDirSettings = drop) -> bool:
            return any(o.changed for o in run_drop_dir(drop, store, now=now))

        _add_interval_job(
            scheduler, load, on_loaded=on_loaded, seconds=drop.interval_s,
            job=f"ingest:{drop.name}", name=f"ingest drop directory {drop.path}", first=first,
        )  # fmt: skip


def add_reconcile_jobs(
    scheduler: BaseScheduler,
    sources: Sequence[ReconciledSacct],
    store: StoreHandle,
    *,
    on_loaded: Callable[[], None],
    runner: Runner = subprocess_runner,
    now: Callable[[], datetime] = _utc_now,
) -> None:
    """Add one interval job per source whose ``reconcile.enabled``: the first one interval
    after this call (a restart does not start a wide pull at once)."""
    for source in sources:
        if not source.reconcile.enabled:
            continue

        def reconcile(source: ReconciledSacct = source) -> bool:
            report = reconcile_sacct_source(source, store, now=now, runner=runner)
            return bool(report.gaps or report.changed)

        _add_interval_job(
            scheduler, reconcile, on_loaded=on_loaded, seconds=source.reconcile.interval_s,
            job=f"reconcile:{source.name}", first=None,
            name=f"reconcile {source_kind(source)} {source.name}",
        )  # fmt: skip
