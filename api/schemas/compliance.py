"""A grant's compliance verdicts and one run's evidence (``api/routes/compliance.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class VerdictPublic(BaseModel):
    run_key: str
    grant_id: str
    regime: str
    verdict: Literal["approved", "violation", "unknown"]
    rule: str | None = Field(description="the failed rule (docs/compliance.md); null if approved")
    offending_node: str | None = Field(description="first offending node in node-list order")
    at: Literal["start", "end"] | None = Field(description="when a node rule failed")
    evidence: dict[str, Any]
    batch_id: int = Field(description="the verdict batch that computed it")
    computed_at: datetime
    policy_version: int
    row_hash: str | None = Field(description="the run content the verdict is about")


class VerdictCounts(BaseModel):
    approved: int = 0
    violation: int = 0
    unknown: int = 0


class VerdictPage(BaseModel):
    data: list[VerdictPublic]
    count: int = Field(description="exceptions in all (not only this page)")
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class ComplianceSummary(BaseModel):
    grant_id: str
    regime: str | None
    policy_version: int | None = Field(description="policy version of the latest verdict batch")
    computed_at: datetime | None = Field(description="when the latest verdict batch was computed")
    counts: VerdictCounts
    exceptions: VerdictPage


class RunEvidence(BaseModel):
    run_key: str
    grant_id: str
    current: VerdictPublic | None = Field(description="null if the run has no current verdict")
    history: list[VerdictPublic] = Field(description="every verdict stored, newest first")
    count: int
