"""Ingest and publishing status: last pull per source, rows landed, quarantined, snapshot."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from api.auth import ADMIN, AUDITOR, require
from api.deps import ServiceDep
from api.schemas import Problem, ReconciliationPublic, StatusPublic
from api.service import Service
from models.store.reconciliations import read_last_reconciliations

router = APIRouter(tags=["health"])


def _with_reconciliations(service: Service) -> StatusPublic:
    status = service.status()
    with service.store.reading() as cur:
        last = read_last_reconciliations(cur)
    for source in status.sources:
        if (report := last.get(source.source)) is not None:
            source.reconciliation = ReconciliationPublic.model_validate(asdict(report))
    return status


@router.get(
    "/v1/status",
    dependencies=[require(ADMIN, AUDITOR)],
    responses={s: {"model": Problem} for s in (401, 403)},
)
def status(service: ServiceDep) -> StatusPublic:
    """Return the status of every source (with its last reconciliation), the last recompute,
    delivery and snapshot."""
    return _with_reconciliations(service)
