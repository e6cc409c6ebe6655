"""Reconciliation: a wide pull of a scheduled source, compared with the store, then landed.

The frequent pull re-reads only ``lookback_s`` before its watermark, so a record the source
rewrote later, or one a lost batch never stored, stays wrong. Now and then (``reconcile``
settings, default daily) the last ``window_days`` whole UTC days up to now are pulled through the
fetch of the source's kind (sacct text, ``sacct --json`` or slurmrestd: ``ingest.jobs``'s
``window_fetcher``, with ``reconcile.timeout_s`` and no retries), parsed by its kind
(``parse_pulled``), and compared with the store *before* they land: per day (by ``end_at``, by
``submit_at`` for runs that have not ended) the runs of the pull and of the store; the gaps
(pulled runs the store lacks) and the changed runs (same ``run_key``, other content). Then the
pull lands as a normal batch recording the kind as its parser (so a quarantined JSON job is
retried with the JSON parser), gaps are filled and changes become new versions, and the report
is stored (``models.store.reconciliations``). The source's watermark is not touched.

The pull holds the cluster's lock of ``ingest.jobs``: it never runs beside that cluster's
regular pull (which is skipped while it holds the lock, and goes on at its next tick).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Protocol

from ingest.jobs import (
    ScheduledSacct,
    cluster_lock,
    parse_pulled,
    source_kind,
    window_fetcher,
    write_sacct_pull,
)
from ingest.sources.sacct import Runner, subprocess_runner
from models.errors import FairledgerError
from models.store.handle import StoreHandle
from models.store.reconciliations import Reconciliation, compare_with_store, write_reconciliation
from models.store.sources import clear_source_failure, record_source_failure

log = logging.getLogger(__name__)


class ReconcileSettings(Protocol):
    """``api.settings.Reconcile`` has these fields."""

    @property
    def enabled(self) -> bool: ...
    @property
    def interval_s(self) -> int: ...
    @property
    def window_days(self) -> int: ...
    @property
    def timeout_s(self) -> int: ...


class ReconciledSacct(ScheduledSacct, Protocol):
    @property
    def reconcile(self) -> ReconcileSettings: ...


def reconcile_window(now: datetime, window_days: int) -> tuple[datetime, datetime]:
    """Return ``[midnight UTC window_days days before now, now]``."""
    first = (now.astimezone(UTC) - timedelta(days=window_days)).date()
    return datetime.combine(first, time(), UTC), now


def reconcile_sacct_source(
    source: ReconciledSacct,
    store: StoreHandle,
    *,
    now: Callable[[], datetime],
    runner: Runner = subprocess_runner,
    lock_wait_s: float = 600.0,
) -> Reconciliation:
    """Pull the reconcile window of ``source``, compare it with the store, land it; return and
    store the report (``status`` ``failed`` with ``error`` when the pull or load failed, or
    ``skipped`` without storing anything when the cluster's lock stayed held)."""
    started_at = now()
    start, end = reconcile_window(started_at, source.reconcile.window_days)
    cluster = source.cluster or ""
    lock = cluster_lock(cluster)
    if not lock.acquire(timeout=lock_wait_s):
        error = f"a pull of cluster {cluster or '(local)'} held the lock for {lock_wait_s:g} s"
        log.warning("reconciliation of %s skipped: %s", source.name, error)
        return Reconciliation(
            source.name, source.cluster, started_at, now(), start, end, "skipped", error
        )
    try:
        report = _reconcile(
            source, store, started_at=started_at, start=start, end=end, runner=runner
        )
    finally:
        lock.release()
    report = replace(report, finished_at=now())
    with store.write() as cur:
        report = replace(report, reconciliation_id=write_reconciliation(cur, report))
        # A failed reconciliation degrades the source in /v1/status as a failed pull does.
        if report.status == "failed":
            record_source_failure(
                cur,
                source=source.name,
                cluster=source.cluster,
                error=f"reconciliation: {report.error}",
                attempted_at=started_at,
            )
        elif report.status == "ok":
            clear_source_failure(cur, source=source.name, cluster=source.cluster)
    log.info(
        "reconciliation of %s [%s, %s]: %s; %d pulled, %d gaps, %d changed%s",
        source.name,
        start.isoformat(),
        end.isoformat(),
        report.status,
        report.source_runs,
        report.gaps,
        report.changed,
        f": {report.error}" if report.error else "",
    )
    return report


def _reconcile(
    source: ReconciledSacct,
    store: StoreHandle,
    *,
    started_at: datetime,
    start: datetime,
    end: datetime,
    runner: Runner,
) -> Reconciliation:
    def failed(error: str) -> Reconciliation:
        return Reconciliation(
            source.name, source.cluster, started_at, started_at, start, end, "failed", error
        )

    try:  # one attempt, through the fetch and the parser of the source's regular pull
        fetch = window_fetcher(
            source, start=start, end=end, runner=runner, timeout_s=source.reconcile.timeout_s
        )
        text = fetch()
        batch = parse_pulled(source, text)
        clusters = batch.runs["cluster"].unique().drop_nulls().to_list()
        if source.cluster:
            clusters = sorted({*clusters, source.cluster})
        with store.reading() as cur:
            comparison = compare_with_store(
                cur, batch.runs, clusters=clusters, first_day=start.date(), last_day=end.date()
            )
        with store.write() as cur:  # the watermark stays: this is a look back, not a pull
            summary = write_sacct_pull(
                cur, source, batch, text, started_at=started_at, parser=source_kind(source)
            )
    except Exception as exc:  # a failed fetch or load is a failed report, never a crashed job
        if not isinstance(exc, FairledgerError | ValueError | LookupError):  # a bug: keep it
            log.exception("reconciliation of %s crashed", source.name)
        return failed(f"{type(exc).__name__}: {exc}")
    days = comparison.days
    return Reconciliation(
        source.name,
        source.cluster,
        started_at,
        started_at,
        start,
        end,
        "ok",
        source_runs=batch.runs.height,
        store_runs=sum(d.store_runs for d in days),
        gaps=len(comparison.gap_keys),
        changed=len(comparison.changed_keys),
        quarantined=summary.quarantined,
        batch_id=summary.batch_id,
        days=days,
        gap_keys=comparison.gap_keys,
        changed_keys=comparison.changed_keys,
    )
