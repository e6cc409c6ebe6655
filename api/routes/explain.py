"""Explain one user's factor, and simulate the history under another policy (never published).

Both compute from the store (the active policy and the runs known now), as
``GET /v1/snapshots?as_of=`` does, not from the published snapshot.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Annotated

import polars as pl
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
from models.errors import UnknownAssociation
from models.fairshare.explain import explain_association
from models.fairshare.simulate import grant_changes, policy_with, simulate
from models.fairshare.snapshots import accounts_within
from models.money.frames import CHARGE_RUN_COLUMNS
from models.policy import Policy, load_policy_text
from models.store import read_policy_and_runs as read_store_policy_and_runs
from models.store.runs import USAGE_COLUMNS

router = APIRouter(tags=["explain"])

# explain names its top runs by job id too; simulate charges the runs under both policies
RUN_COLUMNS = tuple(dict.fromkeys((*USAGE_COLUMNS, "job_id", *CHARGE_RUN_COLUMNS)))

_ERRORS: dict[int | str, dict[str, object]] = {
    s: {"model": Problem} for s in (401, 403, 404, 422, 503)
}


def _utc(moment: datetime | None, service: Service) -> datetime:
    if moment is None:
        return service.clock().astimezone(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_policy_and_runs(service: Service) -> tuple[Policy, pl.DataFrame]:
    """Return the active policy and the runs of its clusters, read in one transaction."""
    with service.store.reading() as cur:
        active, runs = read_store_policy_and_runs(cur, columns=RUN_COLUMNS)
    return active.policy, runs


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
    policy, runs = read_policy_and_runs(service)
    principal: Principal = request.state.principal
    if principal.role is Role.viewer:
        allowed = accounts_within(
            policy.association_frame().filter(pl.col("user") == ""), principal.accounts or ()
        )
        if (cluster, account) not in allowed:
            raise UnknownAssociation(
                f"no association cluster={cluster} account={account} user={user}"
            )
    found = explain_association(
        runs.lazy(),
        policy,
        cluster=cluster,
        account=account,
        user=user,
        as_of=_utc(as_of, service),
        target=target,
    )
    return ExplanationPublic.model_validate(_public(dataclasses.asdict(found)))


@router.post(
    "/v1/simulate",
    dependencies=[require(ADMIN)],
    responses=_ERRORS,
)
def simulate_policy(service: ServiceDep, body: SimulateRequest) -> SimulationPublic:
    """Return every association's usage, factor and rank under the active and another policy."""
    current, runs = read_policy_and_runs(service)
    if body.policy_toml is not None:
        other = load_policy_text(body.policy_toml, origin="policy_toml")
    else:
        other = current
    other = policy_with(
        other,
        half_life_s=body.half_life_s,
        algorithm=body.algorithm,
        ties=body.ties,
        shares=[(s.cluster, s.account, s.user, s.shares) for s in body.shares],
    )
    table = simulate(runs.lazy(), current, other, as_of=_utc(body.as_of, service))
    rows = [SimulationRow.model_validate(r) for r in table.iter_rows(named=True)]
    by_grant = grant_changes(runs.lazy(), current, other)
    grants = [GrantChange.model_validate(r) for r in by_grant.iter_rows(named=True)]
    chart = None
    if body.chart:
        from dashboards.simulation import simulation_spec

        chart = simulation_spec(table, by_grant)
    return SimulationPublic(data=rows, count=len(rows), grants=grants, chart=chart)
