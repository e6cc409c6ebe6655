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
from ingest.jobs import ScheduledSacct, run_sacct_source
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
        scheduler.add_job(
            _pull_and_notify,
            trigger="interval",
            seconds=source.interval_s,
            kwargs={
                "source": source,
                "store": store,
                "on_loaded": on_loaded,
                "runner": runner,
                "now": now,
            },
            id=job_id(source),
            name=f"ingest sacct {source.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # late is better than skipped: a backlog runs once
            next_run_time=first,
            replace_existing=True,
        )


def _pull_and_notify(
    *,
    source: ScheduledSacct,
    store: StoreHandle,
    on_loaded: Callable[[], None],
    runner: Runner,
    now: Callable[[], datetime],
) -> None:
    try:
        outcome = run_sacct_source(source, store, now=now, runner=runner)
    except Exception:  # a scheduled job logs and waits for its next tick
        log.exception("scheduled pull of sacct source %s crashed", source.name)
        return
    if outcome.changed:
        try:
            on_loaded()
        except Exception:
            log.exception("on_loaded after the pull of %s failed", source.name)


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
        scheduler.add_job(
            _drop_and_notify,
            trigger="interval",
            seconds=drop.interval_s,
            kwargs={"drop": drop, "store": store, "on_loaded": on_loaded, "now": now},
            id=f"ingest:{drop.name}",
            name=f"ingest drop directory {drop.path}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=first,
            replace_existing=True,
        )


def _drop_and_notify(
    *,
    drop: DropDirSettings,
    store: StoreHandle,
    on_loaded: Callable[[], None],
    now: Callable[[], datetime],
) -> None:
    try:
        outcomes = run_drop_dir(drop, store, now=now)
    except Exception:
        log.exception("scheduled load of drop directory %s crashed", drop.path)
        return
    if any(o.changed for o in outcomes):
        try:
            on_loaded()
        except Exception:
            log.exception("on_loaded after drop directory %s failed", drop.path)


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
        scheduler.add_job(
            _reconcile_and_notify,
            trigger="interval",
            seconds=source.reconcile.interval_s,
            kwargs={
                "source": source,
                "store": store,
                "on_loaded": on_loaded,
                "runner": runner,
                "now": now,
            },  # fmt: skip
            id=f"reconcile:{source.name}",
            name=f"reconcile sacct {source.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )


def _reconcile_and_notify(
    *,
    source: ReconciledSacct,
    store: StoreHandle,
    on_loaded: Callable[[], None],
    runner: Runner,
    now: Callable[[], datetime],
) -> None:
    try:
        report = reconcile_sacct_source(source, store, now=now, runner=runner)
    except Exception:
        log.exception("scheduled reconciliation of %s crashed", source.name)
        return
    if report.gaps or report.changed:
        try:
            on_loaded()
        except Exception:
            log.exception("on_loaded after the reconciliation of %s failed", source.name)
