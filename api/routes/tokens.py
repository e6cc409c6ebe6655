"""Tokens, for admins, while the server holds the store (the CLI cannot open it then)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from api.auth import ADMIN, create_token, list_tokens, require
from api.deps import ServiceDep
from api.schemas import Problem, TokenCreate, TokenCreated, TokenInfo, TokenList
from models.store.tokens import read_tokens, revoke_token

router = APIRouter(tags=["tokens"])
_ERRORS: dict[int | str, dict[str, object]] = {s: {"model": Problem} for s in (401, 403, 422)}


@router.get("/v1/tokens", dependencies=[require(ADMIN)], responses=_ERRORS)
def get_tokens(service: ServiceDep) -> TokenList:
    """Return the live tokens (never the tokens themselves, nor their hashes)."""
    with service.store.reading() as cur:
        rows = list_tokens(cur)
    data = [TokenInfo.model_validate(row) for row in rows.iter_rows(named=True)]
    return TokenList(data=data, count=len(data))


@router.post("/v1/tokens", status_code=201, dependencies=[require(ADMIN)], responses=_ERRORS)
def post_token(service: ServiceDep, request: TokenCreate) -> TokenCreated:
    """Create a token; the answer is the only time the token is shown."""
    with service.store.write() as cur:
        token_id, token = create_token(
            cur, request.role, accounts=request.accounts, note=request.note
        )
        row = read_tokens(cur).filter(token_id=token_id).row(0, named=True)
    service.reload_tokens()
    return TokenCreated.model_validate({**row, "token": token})


@router.delete(
    "/v1/tokens/{token_id}", status_code=204, dependencies=[require(ADMIN)], responses=_ERRORS
)
def delete_token(service: ServiceDep, token_id: str) -> Response:
    """Revoke a token at once."""
    with service.store.write() as cur:
        found = revoke_token(cur, token_id)
    if not found:
        raise HTTPException(404, f"no live token {token_id}")
    service.reload_tokens()
    return Response(status_code=204)
