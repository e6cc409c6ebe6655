"""Explain one user's factor, and simulate the history under another policy (never published).

Both compute from the store (the active policy and the runs known now), as
``GET /v1/snapshots?as_of=`` does, not from the published snapshot.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.auth import ADMIN, AUDITOR, VIEWER, Principal, Role, require
from api.deps import ServiceDep
from api.schemas import (
    ExplanationPublic,
    GrantChange,
    Problem,
    SimulateRequest,
    SimulationPublic,
    SimulationRow,
)
from api.service import Service
from api.usecases import explain as usecase
from models.fairshare.simulate import policy_with
from models.policy import Policy, load_policy_text

router = APIRouter(tags=["explain"])

_ERRORS: dict[int | str, dict[str, object]] = {
    s: {"model": Problem} for s in (401, 403, 404, 422, 503)
}


def _utc(moment: datetime | None, service: Service) -> datetime:
    if moment is None:
        return service.clock().astimezone(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _public(value: object) -> object:
    """Return ``value`` with non-finite floats as the strings of ``api.schemas.Number``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


@router.get(
    "/v1/explain/{cluster}/{account}/{user}",
    dependencies=[require(ADMIN, AUDITOR, VIEWER)],
    responses=_ERRORS,
)
def explain(
    request: Request,
    service: ServiceDep,
    cluster: str,
    account: str,
    user: str,
    as_of: Annotated[
        datetime | None, Query(description="ISO 8601; without a zone it is UTC; default now")
    ] = None,
    target: Annotated[
        float | None,
        Query(ge=0, le=1, description="the factor to recover to; default the next rank up"),
    ] = None,
) -> ExplanationPublic:
    """Return why a user's factor is what it is (a viewer: users in its accounts' subtree)."""
    principal: Principal = request.state.principal
    within = (principal.accounts or ()) if principal.role is Role.viewer else None
    with service.store.reading() as cur:
        found = usecase.explain_user(
            cur,
            cluster=cluster,
            account=account,
            user=user,
            as_of=_utc(as_of, service),
            target=target,
            within=within,
        )
    return ExplanationPublic.model_validate(_public(dataclasses.asdict(found)))


@router.post(
    "/v1/simulate",
    dependencies=[require(ADMIN)],
    responses=_ERRORS,
)
def simulate_policy(service: ServiceDep, body: SimulateRequest) -> SimulationPublic:
    """Return every association's usage, factor and rank under the active and another policy."""

    def other_of(current: Policy) -> Policy:
        base = current
        if body.policy_toml is not None:
            base = load_policy_text(body.policy_toml, origin="policy_toml")
        return policy_with(
            base,
            half_life_s=body.half_life_s,
            algorithm=body.algorithm,
            ties=body.ties,
            shares=[(s.cluster, s.account, s.user, s.shares) for s in body.shares],
        )

    with service.store.reading() as cur:
        table, by_grant = usecase.simulate_policy(cur, other_of, as_of=_utc(body.as_of, service))
    rows = [SimulationRow.model_validate(r) for r in table.iter_rows(named=True)]
    grants = [GrantChange.model_validate(r) for r in by_grant.iter_rows(named=True)]
    chart = None
    if body.chart:
        from dashboards.simulation import simulation_spec

        chart = simulation_spec(table, by_grant)
    return SimulationPublic(data=rows, count=len(rows), grants=grants, chart=chart)
