"""Fair-share factors from the published snapshot's pre-serialised bytes (never the store).

Every answer carries a strong ``ETag``; ``If-None-Match`` with it gives ``304 Not Modified``
and no body, which is what a polling scheduler gets until the next snapshot.
"""

from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from api.auth import ADMIN, AUDITOR, SCHEDULER, VIEWER, require
from api.deps import snapshot_of
from api.schemas import AssociationFactor, FactorsPublic, Problem
from api.service import Service
from models.errors import UnknownAssociation

router = APIRouter(tags=["factors"])

FACTOR_ROLES = (SCHEDULER, AUDITOR, ADMIN, VIEWER)
# Private (per token) and revalidated on every use: the ETag makes that a cheap 304.
CACHE_CONTROL = "private, no-cache"
ACCOUNT_USER = "-"  # the {user} of an account's own association


class Format(StrEnum):
    json = "json"
    csv = "csv"
    sshare = "sshare"


_MEDIA = {
    Format.json: "application/json",
    Format.csv: "text/csv; charset=utf-8",
    Format.sshare: "text/plain; charset=utf-8",
}
_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 503)
}


# ``?format=`` is read by hand, not declared as a parameter: FastAPI's parameter validation
# costs a third of a 304 answer (bench/bench_http.py). It is documented here instead.
_FORMAT_PARAMETER = {
    "name": "format",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": [f.value for f in Format], "default": "json"},
    "description": "json (default), csv, or sshare (the text of `sshare -a -l -P`)",
}


def _format(request: Request) -> Format:
    text = request.query_params.get("format", "json")
    try:
        return Format(text)
    except ValueError:
        choices = ", ".join(f.value for f in Format)
        raise RequestValidationError(
            [
                {
                    "type": "enum",
                    "loc": ("query", "format"),
                    "msg": f"Input should be one of {choices}",
                    "input": text,
                }
            ]
        ) from None


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Return whether an ``If-None-Match`` header matches ``etag`` (weak comparison)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return etag in tags


def conditional(request: Request, body: bytes, etag: str, media_type: str) -> Response:
    """Return ``body`` with its ETag, or 304 when the client already has it."""
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "/v1/factors",
    dependencies=[require(*FACTOR_ROLES)],
    responses={
        200: {
            "model": FactorsPublic,
            "description": "every association's factor; `?format=csv` or `sshare` for text",
            "content": {"text/csv": {}, "text/plain": {}},
        },
        304: {"description": "the snapshot named by If-None-Match is still current"},
        **_ERRORS,
        422: _ERRORS[401],
    },
    openapi_extra={"parameters": [_FORMAT_PARAMETER]},
)
async def factors(request: Request) -> Response:
    """Return every association's factor (a viewer: those in its accounts' subtrees)."""
    snapshot = snapshot_of(request)
    format = _format(request)
    if format is Format.json:
        body, etag = snapshot.json, snapshot.etag
    elif format is Format.csv:
        body, etag = snapshot.csv, snapshot.csv_etag
    else:
        service: Service = request.app.state.service
        body, etag = service.sshare(snapshot)
    return conditional(request, body, etag, _MEDIA[format])


_PATH_PARAMETERS = [
    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    for name in ("cluster", "account", "user")
]


@router.get(
    "/v1/factors/{cluster}/{account}/{user}",
    dependencies=[require(*FACTOR_ROLES)],
    responses={200: {"model": AssociationFactor}, 304: {"description": "unchanged"}, **_ERRORS},
    # read from request.path_params: declared parameters cost a third of the answer
    openapi_extra={"parameters": _PATH_PARAMETERS},
)
async def association(request: Request) -> Response:
    """Return one association's factor; ``{user}`` is ``-`` for the account's own association."""
    snapshot = snapshot_of(request)
    path = request.path_params
    cluster, account, user = path["cluster"], path["account"], path["user"]
    body = snapshot.associations.get((cluster, account, "" if user == ACCOUNT_USER else user))
    if body is None:
        raise UnknownAssociation(
            f"no association cluster={cluster} account={account} user={user} "
            f"in snapshot {snapshot.meta.snapshot_id}"
        )
    return conditional(request, body, snapshot.etag, _MEDIA[Format.json])
