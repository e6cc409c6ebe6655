"""The HTTP routes, one module per resource, and the table of who may call each.

Each route declares its roles in its decorator (``api.auth.require`` / ``public``);
``route_access(app)`` reads them back as one table: ``create_app`` refuses to build an app with
an undeclared route, and the role-matrix test walks the table.
"""

from __future__ import annotations

from typing import Any

import fastapi.routing
from fastapi import APIRouter, FastAPI

from api.auth import Access, access_of
from api.routes import (
    audit,
    compliance,
    dashboards,
    explain,
    factors,
    grant_charts,
    health,
    ingest,
    money,
    pages,
    quarantine,
    runs,
    snapshots,
    status,
    tokens,
)

ROUTERS: list[APIRouter] = [
    pages.router,
    health.router,
    factors.router,
    snapshots.router,
    status.router,
    tokens.router,
    runs.router,
    quarantine.router,
    ingest.router,
    explain.router,
    money.router,
    dashboards.router,
    grant_charts.router,
    compliance.router,
    audit.router,
]


def flat_routes(app: FastAPI) -> list[Any]:
    """Return every route of ``app``, those of included routers one by one."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:  # FastAPI that copies included routes into app.routes
        return list(app.routes)
    return list(iterate(app.routes))


def _methods(route: Any) -> list[str]:
    methods = getattr(route, "methods", None) or {"GET"}
    return sorted(m for m in methods if m != "HEAD")


def route_access(app: FastAPI) -> dict[tuple[str, str], Access]:
    """Return {(method, path): declared access} for every route of ``app``.

    Raises RuntimeError naming the routes that declare no roles.
    """
    table: dict[tuple[str, str], Access] = {}
    missing: list[str] = []
    for route in flat_routes(app):
        path = getattr(route, "path", repr(route))
        access = access_of(route)
        for method in _methods(route):
            if access is None:
                missing.append(f"{method} {path}")
            else:
                table[(method, path)] = access
    if missing:
        raise RuntimeError(f"routes without declared roles: {', '.join(missing)}")
    return table
