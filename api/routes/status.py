"""Ingest and publishing status: last pull per source, rows landed, quarantined, snapshot."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import ADMIN, AUDITOR, require
from api.deps import ServiceDep
from api.schemas import Problem, StatusPublic

router = APIRouter(tags=["health"])


@router.get(
    "/v1/status",
    dependencies=[require(ADMIN, AUDITOR)],
    responses={s: {"model": Problem} for s in (401, 403)},
)
def status(service: ServiceDep) -> StatusPublic:
    """Return the status of every source, the last recompute, delivery and snapshot."""
    return service.status()
