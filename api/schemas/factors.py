"""Factor snapshots and their factors (``api/routes/factors.py``, ``snapshots.py``).

Factor bodies are sent as pre-serialised bytes (see ``models.fairshare.snapshots``); these models
describe them in the OpenAPI document and are what a client can validate against. Non-finite floats
are the strings ``"inf"``, ``"-inf"``, ``"nan"`` (``Number``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Number = float | Literal["inf", "-inf", "nan"]


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
