"""The audit log: its head (for auditors to record externally), its entries, and bundles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from api.auth import ADMIN, AUDITOR, require
from api.deps import ServiceDep
from api.schemas import AuditEntryList, AuditEntryPublic, AuditHeadPublic, Problem
from models.audit.chain import AuditEntry
from models.money.grants import period_bounds
from models.store.audit import count_audit_entries, read_audit_entries, read_audit_head
from models.store.audit_bundle import build_bundle

router = APIRouter(tags=["audit"])


def _public(entry: AuditEntry) -> AuditEntryPublic:
    return AuditEntryPublic.model_validate(entry, from_attributes=True)


@router.get(
    "/v1/audit/head",
    dependencies=[require(ADMIN, AUDITOR)],
    responses={s: {"model": Problem} for s in (401, 403)},
)
def audit_head(service: ServiceDep) -> AuditHeadPublic:
    """Return the head of the audit log: record its hash to detect later rewrites."""
    with service.store.reading() as cur:
        head = read_audit_head(cur)
    if head is None:
        return AuditHeadPublic(seq=0, entry_sha256=None, at=None, kind=None)
    return AuditHeadPublic(seq=head.seq, entry_sha256=head.entry_sha256, at=head.at, kind=head.kind)


@router.get(
    "/v1/audit/entries",
    dependencies=[require(ADMIN, AUDITOR)],
    responses={s: {"model": Problem} for s in (401, 403, 422)},
)
def audit_entries(
    service: ServiceDep,
    after_seq: Annotated[int, Query(ge=0, description="entries after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEntryList:
    """Return one page of log entries in seq order, with the number of entries in the log."""
    with service.store.reading() as cur:
        entries = read_audit_entries(cur, after_seq=after_seq, limit=limit)
        total = count_audit_entries(cur)
    last = entries[-1].seq if entries else None
    more = last is not None and last < total
    return AuditEntryList(
        data=[_public(e) for e in entries], count=total, next_after_seq=last if more else None
    )


@router.get(
    "/v1/audit/bundle/{grant}/{period}",
    dependencies=[require(ADMIN, AUDITOR)],
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "the bundle zip"},
        **{s: {"model": Problem} for s in (401, 403, 404, 422)},
    },
)
def audit_bundle(service: ServiceDep, grant: str, period: str) -> Response:
    """Return the audit bundle zip of ``grant`` in ``period`` (YYYY-MM): see docs/audit.md."""
    try:
        period_bounds(period)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    with service.store.reading() as cur:
        try:
            data = build_bundle(cur, grant, period)
        except ValueError as exc:
            raise HTTPException(404, str(exc)) from exc
    name = f"audit-{grant}-{period}.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
