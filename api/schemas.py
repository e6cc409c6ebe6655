"""The public contract of the HTTP API: every response body's shape.

Factor bodies are sent as pre-serialised bytes (see ``models.snapshots``); these models describe
them in the OpenAPI document and are what a client can validate against. Non-finite floats are
the strings ``"inf"``, ``"-inf"``, ``"nan"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from api.auth import Role

Number = float | Literal["inf", "-inf", "nan"]


class Problem(BaseModel):
    """An RFC 9457 problem document, the body of every error."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None
    errors: list[dict[str, object]] | None = None  # validation errors only


class SnapshotPublic(BaseModel):
    snapshot_id: int | None = Field(description="null for an unpublished past-time recompute")
    as_of: datetime
    computed_at: datetime
    policy_version: int
    algorithm: Literal["fair_tree", "classic"]
    data_watermark_batch: int | None = Field(
        description="highest ingest batch id among the runs used (batch ids only grow)"
    )
    data_watermark_at: datetime | None = Field(description="latest ingested_at of those runs")
    run_count: int
    association_count: int


class FactorRow(BaseModel):
    cluster: str
    account: str
    user: str = Field(description='"" for an account association')
    parent_account: str | None
    depth: int
    raw_shares: int | None
    shares_parent: bool
    norm_shares: Number | None
    raw_usage: Number | None
    norm_usage: Number | None
    effective_usage: Number | None
    fairshare: Number | None = Field(description="the factor a scheduler uses, in [0, 1]")
    level_fs: Number | None = Field(description='"inf" for shares without usage')


class FactorsPublic(BaseModel):
    snapshot: SnapshotPublic
    data: list[FactorRow]
    count: int


class AssociationFactor(BaseModel):
    """One association's factor: the fields of ``fairledger sshare``."""

    snapshot_id: int | None
    as_of: datetime
    cluster: str
    account: str
    user: str
    parent_account: str | None
    raw_shares: int | None
    shares_parent: bool
    norm_shares: Number | None
    raw_usage: Number | None
    norm_usage: Number | None
    effective_usage: Number | None
    fairshare: Number | None
    level_fs: Number | None


class SnapshotInfo(BaseModel):
    snapshot_id: int
    as_of: datetime
    computed_at: datetime
    policy_version: int
    algorithm: str
    data_watermark_batch: int | None
    data_watermark_at: datetime | None
    run_count: int
    association_count: int
    etag: str
    content_sha256: str
    factors_kept: bool = Field(description="false once its factors were pruned")


class SnapshotList(BaseModel):
    data: list[SnapshotInfo]
    count: int = Field(description="how many snapshots there are in all (data is one page)")


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
