"""API tokens: what an admin lists, creates and is shown once (``api/routes/tokens.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from api.auth import Role


class TokenInfo(BaseModel):
    token_id: str
    role: Role
    accounts: list[str] | None
    note: str | None
    created_at: datetime


class TokenList(BaseModel):
    data: list[TokenInfo]
    count: int


class TokenCreate(BaseModel):
    role: Role
    accounts: list[str] | None = Field(default=None, description="viewers only, and required")
    note: str | None = None

    @model_validator(mode="after")
    def _viewer_has_accounts(self) -> TokenCreate:
        if (self.role is Role.viewer) != bool(self.accounts):
            raise ValueError("a viewer token needs accounts; only a viewer token has them")
        return self


class TokenCreated(TokenInfo):
    token: str = Field(description="shown once; only its SHA-256 is stored")
