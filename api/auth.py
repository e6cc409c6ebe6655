"""Bearer tokens, roles, and the one declaration of who may call each route.

A token is ``flt_`` + 43 random URL-safe characters (``secrets.token_urlsafe(32)``). It is shown
once when created; the store keeps only its SHA-256. Roles:

- ``scheduler``: factors and snapshots (what a scheduler polls);
- ``finance``: statements and grants (none served yet);
- ``auditor``: reads everything, writes nothing;
- ``admin``: everything, including tokens and past-time recomputes;
- ``viewer``: factors of the associations in its accounts or below them, nothing else.

Each route declares its roles once, in its decorator: ``dependencies=[require(ADMIN, ...)]`` or
``dependencies=[public()]``. ``access_of(route)`` reads the declaration back, which is how
``create_app`` refuses a route without one and how the role-matrix test walks every route.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import polars as pl
from fastapi import Depends, Request
from starlette.routing import BaseRoute

from api.errors import Forbidden, Unauthenticated
from models.errors import AuthError
from models.store import Connection
from models.store.tokens import read_tokens, write_token

TOKEN_PREFIX = "flt_"


class Role(StrEnum):
    scheduler = "scheduler"
    finance = "finance"
    auditor = "auditor"
    admin = "admin"
    viewer = "viewer"


SCHEDULER, FINANCE, AUDITOR, ADMIN, VIEWER = (
    Role.scheduler,
    Role.finance,
    Role.auditor,
    Role.admin,
    Role.viewer,
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id and role, and a viewer's accounts."""

    token_id: str
    role: Role
    accounts: tuple[str, ...] | None = None  # viewers only


def token_sha256(token: str) -> str:
    """Return the hex SHA-256 of a token (what the store keeps)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    con: Connection, role: Role | str, *, accounts: list[str] | None = None, note: str | None = None
) -> tuple[str, str]:
    """Record a new token; return (token_id, the token). The token is not recoverable later."""
    role = Role(role)
    accounts = [a.strip() for a in accounts or [] if a.strip()] or None
    if role is Role.viewer and not accounts:
        raise AuthError("a viewer token needs --accounts (the accounts it may see)")
    if role is not Role.viewer and accounts:
        raise AuthError("only a viewer token is scoped to accounts")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = "t" + secrets.token_hex(6)
    write_token(
        con,
        token_id=token_id,
        token_sha256=token_sha256(token),
        role=role.value,
        accounts=accounts,
        note=note,
    )
    return token_id, token


class TokenTable:
    """The live tokens, held in memory by hash so that a request never reads the store."""

    def __init__(self) -> None:
        self._by_hash: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def reload(self, con: Connection) -> None:
        """Replace the table with the store's live tokens."""
        tokens = read_tokens(con)
        table = {
            row["token_sha256"]: Principal(
                row["token_id"],
                Role(row["role"]),
                tuple(row["accounts"]) if row["accounts"] is not None else None,
            )
            for row in tokens.iter_rows(named=True)
        }
        with self._lock:
            self._by_hash = table

    def principal(self, token: str) -> Principal | None:
        """Return who ``token`` belongs to, or None when it is unknown or revoked."""
        return self._by_hash.get(token_sha256(token))

    def __len__(self) -> int:
        return len(self._by_hash)


def list_tokens(con: Connection) -> pl.DataFrame:
    """Return the live tokens without their hashes."""
    return read_tokens(con).drop("token_sha256")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@dataclass(frozen=True)
class Access:
    """A route's declared roles (``None``: public), and parameters limited to fewer roles."""

    roles: frozenset[Role] | None
    only: tuple[tuple[str, frozenset[Role]], ...] = ()  # (query parameter, its roles)

    async def __call__(self, request: Request) -> Principal | None:
        if self.roles is None:
            return None
        token = _bearer(request)
        if token is None:
            raise Unauthenticated("this route needs a bearer token (Authorization: Bearer …)")
        principal: Principal | None = request.app.state.service.tokens.principal(token)
        if principal is None:
            raise Unauthenticated("the bearer token is unknown or revoked")
        if principal.role not in self.roles:
            allowed = ", ".join(sorted(self.roles))
            raise Forbidden(f"role {principal.role} may not use this route (allowed: {allowed})")
        for name, roles in self.only:
            if name in request.query_params and principal.role not in roles:
                allowed = ", ".join(sorted(roles))
                raise Forbidden(f"role {principal.role} may not use ?{name}= (allowed: {allowed})")
        request.state.principal = principal
        return principal


def require(*roles: Role, only: Mapping[str, tuple[Role, ...]] | None = None) -> Any:
    """Return the dependency that lets only ``roles`` call a route.

    ``only={"as_of": (ADMIN,)}`` further limits a query parameter to some of those roles.
    """
    limited = tuple((name, frozenset(rs)) for name, rs in (only or {}).items())
    return Depends(Access(frozenset(roles), limited))


def public() -> Any:
    """Return the dependency that declares a route open to anyone."""
    return Depends(Access(None))


# Public routes that carry no dependency: FastAPI's own documentation, and the bare route a
# benchmark compares against (only there with ``settings.bench_routes``).
DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
BENCH_PATHS = frozenset({"/bench/factors-bytes"})


def access_of(route: BaseRoute) -> Access | None:
    """Return the access a route declares, or None when it declares none.

    ``route`` is a route as ``api.routes.flat_routes`` gives it (FastAPI 0.16x keeps included
    routers as such in ``app.routes``; their routes carry the router's dependencies too).
    """
    path = getattr(route, "path", "")
    if path in DOC_PATHS or path in BENCH_PATHS:
        return Access(None)
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    declared = [d.call for d in dependant.dependencies if isinstance(d.call, Access)]
    if len(declared) != 1:
        return None
    return declared[0]
