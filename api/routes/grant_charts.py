"""Grant dashboards' chart routes: burn-down with forecast, and compliance status per grant.

The burn-down is the grant's statement's (``api.usecases.money.load_ledger``,
``models.money.statement_builder``); the compliance chart counts the current verdicts the server
stores after each recompute (``models.store.verdicts``). ``?format=png|svg`` as for every chart. A
viewer sees the burn-down of the grants its accounts (or accounts below them) charge to, as the
grant's whole balance; compliance has the roles of ``/v1/compliance`` (no viewers).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import ADMIN, AUDITOR, FINANCE, VIEWER, require
from api.deps import ServiceDep
from api.routes.dashboards import CHART_ERRORS, Format, chart_response
from api.usecases.money import load_ledger, statement
from dashboards.charts import burndown_chart, compliance_chart
from models.compliance.frames import VERDICTS
from models.dashboard_data import burndown_points, compliance_status
from models.errors import UnknownGrant
from models.frames import conform
from models.money.grants import Grant, period_of
from models.store import read_runs, require_active_policy
from models.store.verdicts import read_grant_verdicts, read_latest_verdict_batch

router = APIRouter(tags=["dashboards"])

GRANT_ROLES = (ADMIN, AUDITOR, FINANCE, VIEWER)
# The same roles as /v1/compliance: verdicts are the auditors' and finance's evidence.
COMPLIANCE_ROLES = (ADMIN, AUDITOR, FINANCE)


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
    allowed = service.scope(request.state.principal)
    with service.store.reading() as cur:
        state = load_ledger(cur, as_of=now, cache=service.charges)
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


@router.get(
    "/v1/charts/compliance", dependencies=[require(*COMPLIANCE_ROLES)], responses=CHART_ERRORS
)
def grant_compliance(
    service: ServiceDep,
    days: Annotated[int, Query(ge=1, le=3660, description="runs that ended in these days")] = 90,
    format: Format = Format.json,
) -> Response:
    """Return each regulated grant's runs by current verdict (approved, violation, unknown) and
    the rule that decided it, for the runs that ended in the last ``days`` days."""
    now = service.clock().astimezone(UTC)
    since = datetime.combine((now - timedelta(days=days)).date(), time(), UTC)
    with service.store.snapshot() as cur:  # verdicts, their batch and the runs from one state
        active = require_active_policy(cur)
        regulated = [g.id for g in active.policy.grants if g.regime is not None]
        stored = [read_grant_verdicts(cur, grant_id)[0] for grant_id in regulated]
        batch = read_latest_verdict_batch(cur)
        ended = read_runs(cur, columns=("run_key", "end_at"))
    verdicts = pl.concat([pl.DataFrame(schema=VERDICTS), *(conform(f, VERDICTS) for f in stored)])
    recent = verdicts.join(ended.filter(pl.col("end_at") >= since), on="run_key", how="semi")
    if batch is None:
        title = "No verdicts stored yet: the server computes them after its first recompute"
    else:
        title = (
            f"Current verdicts of grant-funded runs that ended since {since:%Y-%m-%d} (UTC); "
            f"verdict batch {batch.batch_id}, policy version {batch.policy_version}, "
            f"computed {batch.computed_at:%Y-%m-%d %H:%M} UTC"
        )
    spec = compliance_chart(compliance_status(recent), title=title).to_dict()
    return chart_response(spec, format, "compliance")
