"""What ingest did: pushed batches, quarantined records, reconciliations
(``api/routes/ingest.py``, ``quarantine.py``, ``status.py``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class QuarantineRecord(BaseModel):
    quarantine_id: int
    batch_id: int = Field(description="the batch that quarantined it")
    source: str
    line_no: int | None
    record_id: str | None = Field(description="the JobID when it could be read")
    field: str = Field(description='the offending field, "" for a whole-line problem')
    reason: str = Field(description="the latest reason (after a retry, the reason found then)")
    first_reason: str | None
    raw: str | None
    quarantined_at: datetime
    status: Literal["open", "resolved"]
    parser: str | None
    fields: list[str] | None = Field(description="the field order it was parsed with")
    retries: int | None
    last_retry_at: datetime | None
    resolved_at: datetime | None
    resolved_by_batch: int | None = Field(description="the batch that landed it once it parsed")


class QuarantineList(BaseModel):
    data: list[QuarantineRecord]
    count: int = Field(description="how many records match in all (data is one page)")


class QuarantinedLine(BaseModel):
    line: int | None = Field(description="1-based line of the body")
    field: str = Field(description='the offending field (dotted path), "" for the whole line')
    reason: str


class IngestSummary(BaseModel):
    """What a pushed body did (``POST /v1/ingest``): one batch."""

    batch_id: int
    source: str
    lines_read: int = Field(description="non-blank lines")
    runs_new: int
    runs_changed: int = Field(description="stored as a new version of the run")
    runs_unchanged: int
    quarantined: int
    quarantine: list[QuarantinedLine] = Field(description="the quarantined lines, in order")


class ReconcileDay(BaseModel):
    day: date = Field(description="UTC day of end_at, or of submit_at if not ended")
    source_runs: int
    store_runs: int = Field(description="runs of the cluster in the store before the pull landed")


class ReconciliationPublic(BaseModel):
    reconciliation_id: int | None
    status: Literal["ok", "failed", "skipped"]
    error: str | None
    started_at: datetime
    finished_at: datetime
    window_start: datetime
    window_end: datetime
    source_runs: int
    gaps: int = Field(description="pulled runs the store lacked (now filled)")
    changed: int = Field(description="pulled runs the store held with other content")
    quarantined: int
    batch_id: int | None = Field(description="the batch the pull landed as")
    days: list[ReconcileDay]
    gap_keys: list[str] = Field(description="at most 1000")
    changed_keys: list[str] = Field(description="at most 1000")
