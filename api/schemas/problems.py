"""The body of every error: an RFC 9457 problem document (``api/errors.py``)."""

from __future__ import annotations

from pydantic import BaseModel


class Problem(BaseModel):
    """An RFC 9457 problem document, the body of every error."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None
    errors: list[dict[str, object]] | None = None  # validation errors only
