"""Every error the API answers is one RFC 9457 problem+json document.

    {"type": "urn:fairledger:problem:unknown-association", "title": "Unknown association",
     "status": 404, "detail": "no association lab/chem/alice in snapshot 12",
     "instance": "/v1/factors/lab/chem/alice"}

``type`` is ``about:blank`` for plain HTTP errors (unknown route, method not allowed), whose
``title`` is the status phrase; otherwise a ``urn:fairledger:problem:<slug>`` listed in
``docs/api.md``. A validation error adds ``errors`` (where and what). Fairledger's exceptions are
mapped here once, most specific first.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import (
    AuthError,
    Conflict,
    FairledgerError,
    InvalidRequest,
    MigrationError,
    NoActivePolicy,
    ParseError,
    PeriodClosed,
    PolicyError,
    SourceUnavailable,
    StoreError,
    StoreLocked,
    UnknownAssociation,
    UnknownGrant,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("fairledger.api")


class Unauthenticated(AuthError):
    """No token, or a token that is unknown or revoked (401)."""


class Forbidden(AuthError):
    """A valid token whose role may not use this route or parameter (403)."""


class NotReady(FairledgerError):
    """The service has nothing to answer yet, e.g. no snapshot was published (503)."""


# (exception class, status, slug, title), most specific first
_MAPPING: list[tuple[type[FairledgerError], int, str, str]] = [
    (Unauthenticated, 401, "unauthenticated", "Authentication required"),
    (Forbidden, 403, "forbidden", "Not allowed for this role"),
    (AuthError, 401, "unauthenticated", "Authentication required"),
    (UnknownAssociation, 404, "unknown-association", "Unknown association"),
    (PolicyError, 422, "invalid-policy", "Invalid policy"),
    (ParseError, 422, "unreadable-input", "Unreadable input"),
    (PeriodClosed, 409, "period-closed", "Accounting period closed"),
    (UnknownGrant, 404, "unknown-grant", "Unknown grant"),
    (Conflict, 409, "conflict", "Conflict"),
    (InvalidRequest, 422, "invalid-request", "Invalid request"),
    (StoreLocked, 503, "store-locked", "Store in use by another process"),
    (MigrationError, 500, "migration-failed", "Store migration failed"),
    (StoreError, 503, "store-unavailable", "Store unavailable"),
    (SourceUnavailable, 502, "source-unavailable", "Source unavailable"),
    (NotReady, 503, "not-ready", "Not ready"),
    (NoActivePolicy, 503, "not-ready", "Not ready"),
    (FairledgerError, 500, "internal-error", "Internal error"),
]


def problem(
    status: int,
    *,
    request: Request | None,
    detail: str,
    title: str | None = None,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """Return a problem+json response."""
    body: dict[str, Any] = {
        "type": f"urn:fairledger:problem:{slug}" if slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path if request is not None else None,
    }
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM_JSON)


def status_of(exc: FairledgerError) -> tuple[int, str, str]:
    """Return (status, slug, title) for a fairledger exception."""
    for cls, status, slug, title in _MAPPING:
        if isinstance(exc, cls):
            return status, slug, title
    raise AssertionError("FairledgerError is the last entry")  # pragma: no cover


async def _fairledger(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FairledgerError)
    status, slug, title = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "5"}
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc, exc_info=exc)
    return problem(
        status, request=request, detail=str(exc), title=title, slug=slug, headers=headers
    )


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return problem(
        exc.status_code,
        request=request,
        detail=str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
    return problem(
        422,
        request=request,
        detail=detail or "invalid request",
        title="Invalid request",
        slug="validation",
        extra={"errors": errors},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(
        500,
        request=request,
        detail="an unexpected error occurred; the server log has the details",
        slug="internal-error",
        title="Internal error",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem+json response."""
    app.add_exception_handler(FairledgerError, _fairledger)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
