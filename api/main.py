"""The web application: ``create_app(settings)`` builds everything; nothing happens at import.

While it runs, the server owns the DuckDB file (one connection, a cursor per thread, writes
through one lock: ``models.store.handle``). Its lifespan opens and migrates the store, loads the
latest stored snapshot (so a scheduler gets answers at once), and starts an APScheduler
(``AsyncIOScheduler``, UTC) with the ingest jobs and the recompute. Jobs are plain functions, so
they run in worker threads and never block HTTP; each runs one at a time and coalesces missed
ticks. After every published snapshot, ``_deliver`` writes the factor file and pushes
``SiteFactor`` when the settings ask for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from fastapi.responses import Response

from api.errors import install_error_handlers
from api.routes import ROUTERS, route_access
from api.service import Service
from api.settings import Delivery, Settings
from api.usecases.delivery import export_factors, push_site_factors
from ingest.scheduler import add_drop_dir_jobs, add_ingest_jobs, add_reconcile_jobs
from models.fairshare.snapshots import FactorSnapshot
from models.store.handle import StoreHandle

log = logging.getLogger("fairledger.api")

RECOMPUTE_JOB = "recompute"
_SHUTDOWN_WAIT_S = 60.0


def _deliver(delivery: Delivery, snapshot: FactorSnapshot) -> str | None:
    """Hand a newly published snapshot to the configured delivery (file, Slurm push); return
    what was done, or None when no delivery is configured."""
    done: list[str] = []
    if delivery.export_path is not None:
        meta = snapshot.meta.public(snapshot.count)
        export_factors(snapshot.frame, delivery.export_path, meta=meta)
        done.append(f"wrote {delivery.export_path}")
    if delivery.push_slurm:
        done.append(push_site_factors(snapshot.frame, delivery=delivery).describe())
    return "; ".join(done) or None


def _start_scheduler(service: Service, settings: Settings, store: StoreHandle) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        service.recompute_job,
        trigger="interval",
        seconds=settings.recompute_interval_s,
        id=RECOMPUTE_JOB,
        name="recompute and publish factors",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),  # at once: the stored snapshot may be old
    )

    def wake() -> None:
        with contextlib.suppress(JobLookupError, SchedulerNotRunningError):  # shutting down
            scheduler.modify_job(RECOMPUTE_JOB, next_run_time=datetime.now(UTC))

    service.wake_recompute = wake
    add_ingest_jobs(scheduler, settings.sources, store, on_loaded=service.request_recompute)
    add_drop_dir_jobs(scheduler, settings.drop_dirs, store, on_loaded=service.request_recompute)
    add_reconcile_jobs(scheduler, settings.sources, store, on_loaded=service.request_recompute)
    scheduler.start()
    return scheduler


def create_app(settings: Settings) -> FastAPI:
    """Return the fairledger application for ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = StoreHandle.open(settings.db)  # StoreLocked names the holder
        try:
            delivery = settings.delivery
            configured = delivery.export_path is not None or delivery.push_slurm
            service = Service(
                settings,
                store,
                on_published=partial(_deliver, delivery) if configured else None,
            )
            app.state.service = service
            await asyncio.to_thread(service.load)
            scheduler = _start_scheduler(service, settings, store)
            # The ~80k objects of the loaded libraries live as long as the process: keep them
            # out of the collector's full passes, which otherwise stall every request in flight
            # for tens of ms (the p99 of the polled routes, bench/bench_http.py).
            gc.freeze()
            try:
                yield
            finally:
                scheduler.shutdown(wait=False)
                # a recompute in a worker thread is not cancelled: let it finish its write
                await asyncio.to_thread(service.wait_idle, _SHUTDOWN_WAIT_S)
        finally:
            store.close()

    app = FastAPI(
        title="fairledger",
        version="0.1.0",
        summary="Fair-share factors, accounting and their provenance",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    if settings.bench_routes:
        _add_bench_routes(app)
    route_access(app)  # raises if a route declares no roles
    return app


def _add_bench_routes(app: FastAPI) -> None:
    """Add the routes benchmarks compare against (the same bytes, no auth, no ETag)."""

    @app.get("/bench/factors-bytes", include_in_schema=False)
    async def factors_bytes() -> Response:
        service: Service = app.state.service
        return Response(service.current().json, media_type="application/json")
