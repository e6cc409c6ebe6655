"""The server's health and status: sources, recompute, delivery (``api/routes/status.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.factors import SnapshotPublic
from api.schemas.ingest import ReconciliationPublic


class Health(BaseModel):
    status: Literal["ok"]


class SourceStatus(BaseModel):
    source: str
    cluster: str | None = None
    watermark: datetime | None = None
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    degraded: bool = False
    batches: int = 0
    last_batch_id: int | None = None
    lines_read: int = 0
    runs_landed: int = Field(default=0, description="new and changed runs, all batches")
    quarantined: int = 0
    last_runs_landed: int | None = None
    last_quarantined: int | None = None
    reconciliation: ReconciliationPublic | None = Field(
        default=None, description="the last reconciliation of a sacct source"
    )


class RecomputeStatus(BaseModel):
    last_at: datetime | None = None
    duration_s: float | None = None
    published_snapshot_id: int | None = None
    error: str | None = None
    unknown_associations: list[str] = Field(
        default=[], description="cluster/account/user with usage the policy does not know"
    )


class DeliveryStatus(BaseModel):
    last_at: datetime | None = None
    snapshot_id: int | None = Field(default=None, description="the snapshot last delivered")
    export_path: str | None = None
    push_slurm: bool = False
    summary: str | None = Field(default=None, description="what the last delivery did")
    error: str | None = None


class StatusPublic(BaseModel):
    status: Literal["ok", "degraded", "starting"]
    snapshot: SnapshotPublic | None
    sources: list[SourceStatus]
    recompute: RecomputeStatus
    delivery: DeliveryStatus
