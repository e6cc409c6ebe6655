"""Money over HTTP: grants, statements, periods, adjustments, quotes and unbilled runs.

Every answer is computed from the store as of the request (the ledger of ``api.usecases.money``); a
closed period's statement is made from its frozen lines only, so it is the same bytes whenever
it is asked for, and its SHA-256 is the one recorded at close (``X-Statement-SHA256``).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.auth import ADMIN, AUDITOR, FINANCE, VIEWER, Principal, require
from api.deps import ServiceDep
from api.schemas import (
    AdjustmentPosted,
    AdjustmentRequest,
    ClosedPeriodPublic,
    GrantBalance,
    GrantList,
    PeriodList,
    Problem,
    QuoteLine,
    QuotePublic,
)
from api.service import Service
from api.usecases.money import (
    HASHED_FORMATS,
    LedgerState,
    check_period,
    close_period,
    load_ledger,
    post_entry,
    statement,
)
from models.errors import Conflict, InvalidRequest, UnknownGrant
from models.money.grants import Grant
from models.money.quotes import quote_run
from models.policy import validation_problems
from models.store import read_active_policy, write_policy
from models.store.ledger import read_statement_hashes, read_statement_makers

router = APIRouter(tags=["money"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": Problem} for s in (401, 403, 404, 409, 422, 503)
}
MONEY_READERS = (FINANCE, AUDITOR, ADMIN)


def _state(service: Service) -> LedgerState:
    with service.store.reading() as cur:
        return load_ledger(cur, as_of=service.clock(), cache=service.charges)


def _money(value: Decimal, decimals: int) -> str:
    return str(value.quantize(Decimal(1).scaleb(-decimals)))


@router.get("/v1/grants", dependencies=[require(*MONEY_READERS)], responses=_ERRORS)
async def list_grants(service: ServiceDep) -> GrantList:
    """Return every grant with its budget, what is charged so far and the balance."""
    state = await asyncio.to_thread(_state, service)
    spent = dict(state.view.group_by("grant_id").agg(pl.col("amount").sum()).iter_rows())
    d = state.policy.charging.decimals
    data = [GrantBalance.of(g, Decimal(spent.get(g.id) or 0), d) for g in state.policy.grants]
    return GrantList(data=data, count=len(data))


@router.post("/v1/grants", dependencies=[require(ADMIN)], responses=_ERRORS, status_code=201)
async def add_grant(service: ServiceDep, grant: Grant) -> GrantBalance:
    """Add a grant to the active policy (a new policy version); 409 if the id exists."""

    def add() -> int:
        """Record the policy with the grant; return its charging decimals."""
        with service.store.write() as cur:
            active = read_active_policy(cur)
            if active is None:
                raise InvalidRequest("no policy loaded yet: load one before adding grants")
            if any(g.id == grant.id for g in active.policy.grants):
                raise Conflict(
                    f"grant {grant.id} already exists (policy version "
                    f"{active.version_id}); change it in the policy file"
                )
            data = active.policy.model_dump(mode="json")
            data["grants"] = [*data.get("grants", []), grant.model_dump(mode="json")]
            try:
                policy = type(active.policy).model_validate(data)
            except ValidationError as exc:
                raise InvalidRequest(validation_problems(exc)) from exc
            write_policy(cur, policy, origin=f"POST /v1/grants {grant.id}")
        return policy.charging.decimals

    decimals = await asyncio.to_thread(add)
    return GrantBalance.of(grant, Decimal(0), decimals)


@router.get(
    "/v1/grants/{grant_id}/statements/{period}",
    dependencies=[require(*MONEY_READERS)],
    responses={
        **_ERRORS,
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                "application/pdf": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            }
        },
    },
)
async def get_statement(
    service: ServiceDep,
    grant_id: str,
    period: str,
    fmt: Annotated[str, Query(alias="format", pattern="^(json|csv|xlsx|pdf)$")] = "json",
    summary: Annotated[
        bool, Query(description="lines summarised by user, partition, resource")
    ] = False,
) -> Response:
    """Return the grant's statement for the period as JSON, CSV, XLSX or PDF."""
    from reports.statements import MEDIA_TYPES, file_name, render

    def make() -> tuple[bytes, str, str | None, str | None]:
        state = _state(service)
        made = statement(state, grant_id, period)
        data = render(made, fmt, itemise=not summary)
        recorded = maker = None
        if made.status == "closed" and not summary:
            with service.store.reading() as cur:
                recorded = read_statement_hashes(cur, grant_id, period).get(fmt)
                maker = read_statement_makers(cur, period).get(fmt)
        return data, file_name(made, fmt), recorded, maker

    check_period(period)
    data, name, recorded, maker = await asyncio.to_thread(make)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if recorded is not None:
        headers["X-Statement-SHA256"] = recorded
    if maker is not None:
        headers["X-Statement-Made-With"] = maker
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get("/v1/periods", dependencies=[require(*MONEY_READERS)], responses=_ERRORS)
async def list_periods(service: ServiceDep) -> PeriodList:
    """Return the closed periods (with their statement hashes) and the first open one."""

    def read() -> PeriodList:
        state = _state(service)
        closed = []
        with service.store.reading() as cur:
            for c in state.closed.values():
                hashes = {
                    f"{g.id}/{fmt}": sha
                    for g in state.policy.grants
                    for fmt, sha in read_statement_hashes(cur, g.id, c.period).items()
                }
                makers = read_statement_makers(cur, c.period)
                closed.append(ClosedPeriodPublic.of(c, hashes, makers))
        return PeriodList(
            closed=closed, first_open=state.first_open, next_to_close=state.next_to_close
        )

    return await asyncio.to_thread(read)


@router.post("/v1/periods/{period}/close", dependencies=[require(ADMIN)], responses=_ERRORS)
async def close(service: ServiceDep, request: Request, period: str) -> ClosedPeriodPublic:
    """Close the period: freeze its lines and record every statement's SHA-256."""
    from reports.statements import made_with, render_all

    principal: Principal = request.state.principal
    check_period(period)

    def run() -> ClosedPeriodPublic:
        with service.store.write() as cur:
            closed, hashes = close_period(
                cur,
                period,
                actor=f"token {principal.token_id}",
                now=service.clock(),
                render_all=render_all,
                made_with=made_with(HASHED_FORMATS),
            )
            makers = read_statement_makers(cur, period)
        statements = {f"{g}/{f}": sha for (g, f), (sha, _) in sorted(hashes.items())}
        return ClosedPeriodPublic.of(closed, statements, makers)

    return await asyncio.to_thread(run)


@router.post(
    "/v1/grants/{grant_id}/adjustments",
    dependencies=[require(FINANCE, ADMIN)],
    responses=_ERRORS,
    status_code=201,
)
async def adjust(
    service: ServiceDep, request: Request, grant_id: str, body: AdjustmentRequest
) -> AdjustmentPosted:
    """Post a manual adjustment (``amount``) or a refund of a run (``run_key``) to the first
    open period, with the reason and the caller's token as author."""
    principal: Principal = request.state.principal

    def run() -> AdjustmentPosted:
        with service.store.write() as cur:
            entry, period, amount = post_entry(
                cur,
                grant_id=grant_id,
                amount=body.amount,
                reason=body.reason,
                author=f"token {principal.token_id} ({principal.role.value})",
                now=service.clock(),
                run_key=body.run_key,
            )
        return AdjustmentPosted(
            entry_id=entry,
            grant_id=grant_id,
            period=period,
            amount=str(amount),
            kind="refund" if body.run_key else "manual",
        )

    return await asyncio.to_thread(run)


@router.get("/v1/quote", dependencies=[require(FINANCE, AUDITOR, ADMIN, VIEWER)], responses=_ERRORS)
async def quote(
    service: ServiceDep,
    request: Request,
    cluster: str,
    account: str,
    hours: Annotated[Decimal, Query(gt=0)],
    cpus: Annotated[int, Query(ge=0)] = 1,
    partition: str = "",
    user: str = "",
    qos: str = "normal",
    gpus: Annotated[int, Query(ge=0)] = 0,
    gpu_model: str | None = None,
    mem_gb: Annotated[Decimal, Query(ge=0)] = Decimal(0),
    nodes: Annotated[int, Query(ge=1)] = 1,
) -> QuotePublic:
    """Return what such a job would cost if it ended now, and which grant would pay."""
    principal: Principal = request.state.principal
    allowed = service.scope(principal)
    if allowed is not None and account not in {a for _, a in allowed}:
        raise UnknownGrant(f"account {account!r} is outside this token's accounts")

    def run() -> QuotePublic:
        with service.store.reading() as cur:
            active = read_active_policy(cur)
        if active is None:
            raise InvalidRequest("no policy loaded yet")
        policy = active.policy
        quoted = quote_run(
            policy,
            at=service.clock(),
            cluster=cluster,
            partition=partition,
            account=account,
            user=user,
            qos=qos,
            hours=hours,
            cpus=cpus,
            gpus=gpus,
            gpu_model=gpu_model,
            mem_gb=mem_gb,
            nodes=nodes,
        )
        d = policy.charging.decimals
        lines = [
            QuoteLine(
                resource=r["resource"],
                quantity=r["quantity"],
                hours=r["hours"],
                unit_price=str(r["unit_price"].normalize()),
                multiplier=str(r["multiplier"].normalize()),
                amount=_money(r["amount"], d),
            )
            for r in quoted.lines.iter_rows(named=True)
        ]
        total = sum((Decimal(r["amount"]) for r in quoted.lines.iter_rows(named=True)), Decimal(0))
        first = quoted.lines.row(0, named=True) if quoted.lines.height else None
        card = next((c for c in policy.rate_cards if first and c.id == first["rate_card"]), None)
        return QuotePublic(
            grant_id=first["grant_id"] if first else None,
            rate_card=first["rate_card"] if first else None,
            currency=card.currency if card else None,
            total=_money(total, d),
            lines=lines,
            not_charged=quoted.unbilled["reason"][0] if quoted.unbilled.height else None,
        )

    return await asyncio.to_thread(run)


@router.get("/v1/unbilled", dependencies=[require(*MONEY_READERS)], responses=_ERRORS)
async def unbilled(
    service: ServiceDep,
    period: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Return the ended runs charged to no grant, with the reason (paged)."""
    if period is not None:
        check_period(period)

    def read() -> dict[str, Any]:
        runs = _state(service).unbilled
        if period is not None:
            runs = runs.filter(pl.col("end_at").dt.strftime("%Y-%m") == period)
        page = runs.slice(offset, limit).with_columns(
            pl.col("end_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        return {
            "data": page.to_dicts(),
            "count": page.height,
            "total": runs.height,
            "offset": offset,
            "limit": limit,
        }

    return await asyncio.to_thread(read)
