"""Dashboards: public HTML shells and the Vega-Lite bundle, and the chart routes they fetch.

``/v1/charts/<name>`` answers a Vega-Lite spec with its data inline (``?format=png`` or
``svg``: the chart drawn by vl-convert), built from frames ``models`` aggregated first. Each
chart route declares its roles; a viewer's charts hold only its accounts' subtrees.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any

import orjson
import polars as pl
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response

from api.auth import ADMIN, AUDITOR, FINANCE, VIEWER, Principal, Role, public, require
from api.deps import ServiceDep
from api.errors import Forbidden
from api.schemas import Problem
from api.service import Service
from dashboards.charts import ingest_chart, share_level_chart, usage_chart
from dashboards.export import chart_png, chart_svg, vega_bundle
from dashboards.pages import BUNDLE_PATH, PAGES, index_html, page_html
from models.dashboard_data import ingest_daily, ingest_table, share_level
from models.errors import UnknownAssociation
from models.fairshare.snapshots import accounts_within
from models.fairshare.usage_series import SeriesBy, Step, bucket_count, runs_within, usage_series
from models.store import read_source_states
from models.store.dashboard_reads import read_ingest_batches, read_runs_overlapping
from models.store.status import read_batch_totals

router = APIRouter(tags=["dashboards"])

CHART_ROLES = (ADMIN, AUDITOR, FINANCE, VIEWER)
HEALTH_ROLES = (ADMIN, AUDITOR)
MAX_ROWS = 5000  # Altair refuses more rows in one chart by default
DEFAULT_DAYS = 30
CHART_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": Problem} for s in (401, 403, 404, 422, 503)
}


class Format(StrEnum):
    json = "json"
    png = "png"
    svg = "svg"


_MEDIA = {
    Format.json: "application/json",
    Format.png: "image/png",
    Format.svg: "image/svg+xml",
}


def _invalid(name: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": str(value)}]
    )


def chart_response(spec: dict[str, Any], format: Format, name: str) -> Response:
    """Return the chart as its Vega-Lite spec (JSON), or drawn as PNG or SVG."""
    headers = {"Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if format is Format.json:
        return Response(orjson.dumps(spec), media_type=_MEDIA[format], headers=headers)
    body = chart_png(spec) if format is Format.png else chart_svg(spec)
    headers["Content-Disposition"] = f'attachment; filename="{name}.{format.value}"'
    return Response(body, media_type=_MEDIA[format], headers=headers)


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


# ---------------------------------------------------------------------------- pages


@router.get("/dashboards", response_class=HTMLResponse, dependencies=[public()])
async def dashboards_index() -> str:
    """Return the list of dashboards."""
    return index_html()


@router.get(BUNDLE_PATH, dependencies=[public()], include_in_schema=False)
def vega_script(request: Request) -> Response:
    """Return the Vega, Vega-Lite and vega-embed bundle the pages load (no CDN), gzipped for
    a browser that accepts it. Not async: the first call builds the bundle (about a second)."""
    bundle = vega_bundle()
    headers = {
        "ETag": bundle.etag,
        "Cache-Control": "public, max-age=86400",
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == bundle.etag:
        return Response(status_code=304, headers=headers)
    body = bundle.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = bundle.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get(
    "/dashboards/{page}",
    response_class=HTMLResponse,
    dependencies=[public()],
    responses={404: {"model": Problem}},
)
async def dashboard_page(page: str) -> str:
    """Return one dashboard's page (a shell: the chart comes from its chart route)."""
    found = PAGES.get(page)
    if found is None:
        raise HTTPException(404, f"no dashboard {page!r} (there are: {', '.join(PAGES)})")
    return page_html(found)


# ---------------------------------------------------------------------------- charts


def _window(service: Service, start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """Return [start, end) in UTC for dates given inclusive; end defaults to now, start to
    ``DEFAULT_DAYS`` days before it."""
    now = service.clock().astimezone(UTC)
    until = now
    if end is not None:
        until = min(now, datetime.combine(end + timedelta(days=1), time(), UTC))
    since = (
        datetime.combine(start, time(), UTC)
        if start is not None
        else datetime.combine((until - timedelta(days=DEFAULT_DAYS)).date(), time(), UTC)
    )
    if since >= until:
        raise _invalid("start", "start must be before end (and before now)", start)
    return since, until


def _scope(
    service: Service, principal: Principal, account: str | None
) -> set[tuple[str, str]] | None:
    """Return the (cluster, account) pairs the charts may show, or None for all of them."""
    if principal.role is not Role.viewer and account is None:
        return None
    frame = service.current().frame
    allowed = service.scope(principal)
    if account is None:
        return allowed
    if allowed is not None and not any(a == account for _, a in allowed):
        raise Forbidden(f"account {account!r} is outside this token's accounts")
    if frame.filter(pl.col("account") == account).is_empty():
        raise UnknownAssociation(f"no account {account!r} in the current snapshot")
    below = accounts_within(frame, [account])
    return below if allowed is None else below & allowed


@router.get("/v1/charts/usage", dependencies=[require(*CHART_ROLES)], responses=CHART_ERRORS)
def usage_over_time(
    request: Request,
    service: ServiceDep,
    start: Annotated[date | None, Query(description="first day (UTC); default 30 days ago")] = None,
    end: Annotated[
        date | None, Query(description="last day (UTC), included; default today")
    ] = None,
    step: Annotated[Step, Query(description="one bar per day or per ISO week")] = "day",
    top: Annotated[int, Query(ge=1, le=20, description="series shown by name")] = 10,
    account: Annotated[
        str | None, Query(description="stack this account's users (its subtree)")
    ] = None,
    format: Format = Format.json,
) -> Response:
    """Return the usage-over-time chart: CPU-hours and GPU-hours per day or week, stacked by
    account (with ``account``: by user of that account's subtree)."""
    account = account or None
    since, until = _window(service, start, end)
    rows = bucket_count(start=since, end=until, step=step) * (top + 1) * 2
    if rows > MAX_ROWS:
        raise _invalid(
            "step",
            f"{rows} rows exceed the {MAX_ROWS} a chart holds: ask per week, a shorter range "
            "or a smaller top",
            step,
        )
    allowed = _scope(service, _principal(request), account)
    with service.store.reading() as cur:
        runs = read_runs_overlapping(cur, start=since, end=until).lazy()
    if allowed is not None:
        runs = runs_within(runs, allowed)
    by: SeriesBy = "user" if account else "account"
    series = usage_series(runs, start=since, end=until, step=step, by=by, top=top)
    what = f"users of {account}" if account else "accounts"
    title = f"Usage by {what}, {since:%Y-%m-%d} to {until:%Y-%m-%d %H:%M} UTC"
    spec = usage_chart(series, by=by, step=step, title=title).to_dict()
    spec["usermeta"] = {"drill": {"field": "series", "param": "account"} if not account else None}
    return chart_response(spec, format, "usage")


@router.get("/v1/charts/shares", dependencies=[require(*CHART_ROLES)], responses=CHART_ERRORS)
def share_tree(
    request: Request,
    service: ServiceDep,
    cluster: Annotated[str | None, Query(description="default: the first cluster")] = None,
    account: Annotated[
        str | None, Query(description="the account whose children are shown; default root")
    ] = None,
    format: Format = Format.json,
) -> Response:
    """Return one level of the share tree from the published snapshot: each child's shares,
    usage, LevelFS and factor (a viewer: within its accounts' subtrees)."""
    principal = _principal(request)
    snapshot = service.view(principal)
    frame = snapshot.frame
    clusters = frame.get_column("cluster").unique(maintain_order=True).to_list()
    cluster = cluster or (clusters[0] if clusters else None)
    if cluster is None or cluster not in clusters:
        raise UnknownAssociation(f"no cluster {cluster!r} in the snapshot this token sees")
    if not account:
        tops = frame.filter((pl.col("cluster") == cluster) & (pl.col("user") == ""))
        account = (
            "root" if principal.role is not Role.viewer else tops.row(0, named=True)["account"]
        )
    known = frame.filter(
        (pl.col("cluster") == cluster) & (pl.col("account") == account) & (pl.col("user") == "")
    )
    if known.is_empty():
        raise UnknownAssociation(
            f"no account {account!r} in cluster {cluster!r} of the snapshot this token sees"
        )
    level = share_level(frame, cluster=cluster, account=account)
    title = (
        f"Share tree of {cluster}: children of {account} "
        f"(snapshot {snapshot.meta.snapshot_id}, as of {snapshot.meta.as_of:%Y-%m-%d %H:%M} UTC)"
    )
    spec = share_level_chart(level, title=title).to_dict()
    spec["usermeta"] = {"drill": {"field": "name", "param": "account", "kind": "account"}}
    return chart_response(spec, format, "shares")


@router.get("/v1/charts/ingest", dependencies=[require(*HEALTH_ROLES)], responses=CHART_ERRORS)
def ingest_health(
    service: ServiceDep,
    days: Annotated[int, Query(ge=1, le=366, description="days of history")] = DEFAULT_DAYS,
    format: Format = Format.json,
) -> Response:
    """Return ingest health: each source's state and totals, and per day its runs landed,
    records quarantined and batches."""
    now = service.clock().astimezone(UTC)
    since = datetime.combine((now - timedelta(days=days)).date(), time(), UTC)
    with service.store.reading() as cur:
        batches = read_ingest_batches(cur, since=since)
        states = read_source_states(cur)
        totals = read_batch_totals(cur)
    spec = ingest_chart(
        ingest_daily(batches),
        ingest_table(states, totals, as_of=now),
        start=f"{since:%Y-%m-%d}",
        end=f"{now + timedelta(days=1):%Y-%m-%d}",
        title=f"Ingest health, the last {days} days (UTC)",
    ).to_dict()
    return chart_response(spec, format, "ingest")
