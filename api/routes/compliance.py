"""Compliance: a grant's verdict summary with its exceptions (paged), and one run's evidence.

Read-only: verdicts are computed by the server's recompute (``models.store.verdicts``), never
by a request. Roles: auditor and admin, and finance (a violation can make a charge
unallowable under the grant, so whoever bills the grant needs to see it). See
``docs/compliance.md``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from api.auth import ADMIN, AUDITOR, FINANCE, require
from api.deps import ServiceDep
from api.schemas import (
    ComplianceSummary,
    Problem,
    RunEvidence,
    VerdictCounts,
    VerdictPage,
    VerdictPublic,
)
from api.service import Service
from models.money.grants import Grant
from models.store import require_active_policy
from models.store.verdicts import (
    read_grant_summary,
    read_grant_verdicts,
    read_latest_verdict_batch,
    read_run_verdicts,
)

router = APIRouter(tags=["compliance"])

_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": Problem} for s in (401, 403, 404, 503)}
READERS = (ADMIN, AUDITOR, FINANCE)


def _grant(service: Service, grant_id: str) -> Grant:
    with service.store.reading() as cur:
        active = require_active_policy(cur)
    for grant in active.policy.grants:
        if grant.id == grant_id:
            return grant
    raise HTTPException(404, f"no grant {grant_id} in the active policy")


def _public(row: dict[str, Any]) -> VerdictPublic:
    return VerdictPublic.model_validate({**row, "evidence": json.loads(row["evidence"])})


@router.get(
    "/v1/compliance/{grant}",
    dependencies=[require(*READERS)],
    responses=_ERRORS,
)
def compliance_summary(
    service: ServiceDep,
    grant: str,
    limit: Annotated[int, Query(ge=1, le=1000, description="exceptions per page")] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    verdict: Annotated[
        Literal["violation", "unknown"] | None,
        Query(description="only exceptions with this verdict"),
    ] = None,
) -> ComplianceSummary:
    """Return the grant's current verdict counts and one page of its exceptions (violations
    and unknowns), by run key."""
    found = _grant(service, grant)
    with service.store.snapshot() as cur:
        counts = read_grant_summary(cur, grant)
        page, total = read_grant_verdicts(
            cur, grant, exceptions_only=True, verdict=verdict, limit=limit, offset=offset
        )
        batch = read_latest_verdict_batch(cur)
    data = [_public(row) for row in page.iter_rows(named=True)]
    following = offset + len(data)
    return ComplianceSummary(
        grant_id=grant,
        regime=found.regime,
        policy_version=batch.policy_version if batch else None,
        computed_at=batch.computed_at if batch else None,
        counts=VerdictCounts.model_validate(counts),
        exceptions=VerdictPage(
            data=data,
            count=total,
            limit=limit,
            offset=offset,
            next_offset=following if following < total else None,
        ),
    )


@router.get(
    "/v1/compliance/{grant}/runs/{run_key:path}",
    dependencies=[require(*READERS)],
    responses=_ERRORS,
)
def run_evidence(service: ServiceDep, grant: str, run_key: str) -> RunEvidence:
    """Return one run's current verdict for the grant with its evidence, and its history."""
    _grant(service, grant)
    with service.store.reading() as cur:
        frame = read_run_verdicts(cur, run_key)
    rows = [r for r in frame.iter_rows(named=True) if r["grant_id"] == grant]
    if not rows:
        raise HTTPException(404, f"no verdict for run {run_key} under grant {grant}")
    history = [_public(r) for r in rows]
    current = next((v for v, r in zip(history, rows, strict=True) if r["is_current"]), None)
    return RunEvidence(
        run_key=run_key, grant_id=grant, current=current, history=history, count=len(history)
    )
