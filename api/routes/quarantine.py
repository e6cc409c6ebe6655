"""Quarantined records: what was refused, why, and what became of it after a retry."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import ADMIN, AUDITOR, require
from api.deps import ServiceDep
from api.schemas import Problem, QuarantineList, QuarantineRecord
from models.store.quarantine import list_quarantine

router = APIRouter(tags=["quarantine"])


class StatusFilter(StrEnum):
    open = "open"
    resolved = "resolved"
    all = "all"


@router.get(
    "/v1/quarantine",
    dependencies=[require(ADMIN, AUDITOR)],
    responses={s: {"model": Problem} for s in (401, 403, 422)},
)
def quarantine(
    service: ServiceDep,
    source: Annotated[str | None, Query(description="only records of this source")] = None,
    status: Annotated[StatusFilter, Query(description="open, resolved or all")] = (
        StatusFilter.all
    ),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> QuarantineList:
    """Return quarantined records, oldest first, one page at a time."""
    with service.store.reading() as cur:
        page, total = list_quarantine(
            cur,
            source=source,
            status=None if status is StatusFilter.all else status.value,
            limit=limit,
            offset=offset,
        )
    data = [QuarantineRecord.model_validate(row) for row in page.iter_rows(named=True)]
    return QuarantineList(data=data, count=total)
