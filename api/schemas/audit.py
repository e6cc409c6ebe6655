"""The audit log's head and entries (``api/routes/audit.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AuditHeadPublic(BaseModel):
    """The latest entry of the log: its seq and hash (null hash for an empty log)."""

    seq: int
    entry_sha256: str | None
    at: datetime | None
    kind: str | None


class AuditEntryPublic(BaseModel):
    """One log entry: header fields, hashes and the payload's canonical JSON text."""

    seq: int
    at: datetime
    kind: str
    actor: str
    payload: str | None
    payload_sha256: str
    prev_sha256: str
    entry_sha256: str


class AuditEntryList(BaseModel):
    """A page of entries in seq order; the next page starts after ``next_after_seq``."""

    data: list[AuditEntryPublic]
    count: int
    next_after_seq: int | None
