"""Liveness: answers as long as the process serves HTTP; no token, no store."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.auth import public
from api.schemas import Health

router = APIRouter(tags=["health"])
_OK = b'{"status":"ok"}'


@router.get("/v1/health", dependencies=[public()], responses={200: {"model": Health}})
async def health() -> Response:
    """Return ``{"status": "ok"}``."""
    return Response(_OK, media_type="application/json")
