"""Request dependencies as ``Annotated`` aliases (all ``async``: none may block or use a thread).

The factor routes, which a scheduler polls, take the published snapshot with
``snapshot_of(request)`` instead of a dependency: each dependency FastAPI resolves costs about
as much as the rest of a 304 answer (bench/bench_http.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal
from api.service import Service
from models.fairshare.snapshots import FactorSnapshot


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


def snapshot_of(request: Request) -> FactorSnapshot:
    """Return the published snapshot as the caller may see it (NotReady before the first).

    Needs the principal the route's ``require(...)`` declaration stored on the request.
    """
    service: Service = request.app.state.service
    principal: Principal = request.state.principal
    return service.view(principal)
