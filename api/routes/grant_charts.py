"""Grant dashboards' chart routes: burn-down with forecast, and compliance status per grant.

Both read what the money and compliance models compute (``api.ledger.load_ledger`` and
``models.statements`` for the burn-down, ``models.verdicts.run_verdicts`` for the verdicts)
and chart it; ``?format=png|svg`` as for every chart. A viewer sees the grants its accounts
(or accounts below them) charge to: the burn-down of such a grant is the grant's whole
balance, and its compliance counts only its own accounts' runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import ADMIN, AUDITOR, FINANCE, VIEWER, Principal, Role, require
from api.deps import ServiceDep
from api.errors import NotReady
from api.ledger import UnknownGrant, load_ledger, statement
from api.routes.dashboards import CHART_ERRORS, Format, chart_response
from api.service import Service
from dashboards.charts import burndown_chart, compliance_chart
from models.dashboard_data import burndown_points, compliance_status
from models.grants import Grant, assign_grants, period_of
from models.snapshots import accounts_within
from models.store import read_active_policy, read_runs
from models.usage_series import runs_within
from models.verdicts import RUN_COLUMNS, run_verdicts

router = APIRouter(tags=["dashboards"])

GRANT_ROLES = (ADMIN, AUDITOR, FINANCE, VIEWER)
# verdicts need RUN_COLUMNS (grant_id comes from assign_grants), grants need account and user
COMPLIANCE_RUN_COLUMNS = tuple(
    dict.fromkeys(c for c in (*RUN_COLUMNS, "account", "user") if c != "grant_id")
)


def _allowed(service: Service, principal: Principal) -> set[tuple[str, str]] | None:
    """Return the (cluster, account) pairs a viewer may see, or None for every role that sees
    all."""
    if principal.role is not Role.viewer:
        return None
    return accounts_within(service.current().frame, principal.accounts or ())


def visible_grants(grants: list[Grant], allowed: set[tuple[str, str]] | None) -> list[Grant]:
    """Return the grants charged by an allowed account (all of them when ``allowed`` is None)."""
    if allowed is None:
        return list(grants)
    return [
        g
        for g in grants
        if any(
            (m.cluster == "*" or m.cluster == c) and m.account == a
            for m in g.members
            for c, a in allowed
        )
    ]


@router.get("/v1/charts/burndown", dependencies=[require(*GRANT_ROLES)], responses=CHART_ERRORS)
def grant_burndown(
    request: Request,
    service: ServiceDep,
    grant: Annotated[str | None, Query(description="grant id; default the first one")] = None,
    period: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default this month")
    ] = None,
    format: Format = Format.json,
) -> Response:
    """Return a grant's burn-down: the remaining budget per day from the grant's start to the
    period's end, then the forecast at the period's burn rate until it runs out or ends."""
    now = service.clock().astimezone(UTC)
    allowed = _allowed(service, request.state.principal)
    with service.store.reading() as cur:
        state = load_ledger(cur, as_of=now)
    grants = visible_grants(state.policy.grants, allowed)
    if not grants:
        raise UnknownGrant("no grant that this token may see is in the active policy")
    chosen = next((g for g in grants if g.id == grant), None) if grant else grants[0]
    if chosen is None:
        known = ", ".join(g.id for g in grants)
        raise UnknownGrant(f"unknown grant {grant!r} (grants this token sees: {known})")
    period = period or period_of(now)
    made = statement(state, chosen.id, period)
    run_out = f", runs out {made.run_out:%Y-%m-%d}" if made.run_out else ""
    title = (
        f"{chosen.id} ({chosen.funder}): {made.closing_balance:,} {made.unit} left of "
        f"{made.budget:,} after {period}; burn {made.burn_rate_per_day:,}/day{run_out}"
    )
    spec = burndown_chart(burndown_points(made.burndown), unit=made.unit, title=title).to_dict()
    return chart_response(spec, format, f"burndown-{chosen.id}")


@router.get("/v1/charts/compliance", dependencies=[require(*GRANT_ROLES)], responses=CHART_ERRORS)
def grant_compliance(
    request: Request,
    service: ServiceDep,
    days: Annotated[int, Query(ge=1, le=3660, description="runs that ended in these days")] = 90,
    format: Format = Format.json,
) -> Response:
    """Return each regulated grant's runs by verdict (approved, violation, unknown) and the
    rule that decided it, for the runs that ended in the last ``days`` days."""
    now = service.clock().astimezone(UTC)
    since = datetime.combine((now - timedelta(days=days)).date(), time(), UTC)
    allowed = _allowed(service, request.state.principal)
    with service.store.reading() as cur:
        cur.execute("BEGIN TRANSACTION")
        try:
            active = read_active_policy(cur)
            if active is None:
                raise NotReady("no policy loaded yet: run `fairledger policy load FILE`")
            clusters = [c.name for c in active.policy.clusters]
            runs = read_runs(cur, columns=COMPLIANCE_RUN_COLUMNS, clusters=clusters)
        finally:
            cur.execute("COMMIT")
    runs = runs.filter(pl.col("end_at") >= since)
    if allowed is not None:
        runs = runs_within(runs.lazy(), allowed).collect()
    policy = active.policy
    verdicts = run_verdicts(
        assign_grants(runs, policy.grants), grants=policy.grants, compliance=policy.compliance
    )
    title = f"Compliance of grant-funded runs that ended since {since:%Y-%m-%d} (UTC)"
    spec = compliance_chart(compliance_status(verdicts), title=title).to_dict()
    return chart_response(spec, format, "compliance")
