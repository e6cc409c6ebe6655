"""The public contract of the HTTP API: every response body's shape.

Factor bodies are sent as pre-serialised bytes (see ``models.fairshare.snapshots``); these models
describe them in the OpenAPI document and are what a client can validate against. Non-finite floats
are the strings ``"inf"``, ``"-inf"``, ``"nan"``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

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


class TresItem(BaseModel):
    name: str
    count: float


class RunVersion(BaseModel):
    """One stored content of a run (``GET /v1/runs/{run_key}/versions``)."""

    version: int = Field(
        description="1 for the oldest by observed_at, then stage, then row_hash; last is current"
    )
    is_current: bool
    row_hash: str = Field(description="MD5 of the content (provenance columns excluded)")
    batch_id: int = Field(description="the ingest batch that first stored this content")
    ingested_at: datetime
    observed_at: datetime | None = Field(
        default=None, description="the latest time the source observed this content"
    )
    superseded_at: datetime | None = Field(description="null for the current version")
    superseded_by_batch: int | None
    run_key: str
    scheduler: str
    cluster: str
    job_id: str | None
    job_id_raw: str | None
    user: str | None
    account: str | None
    partition: str | None
    qos: str | None
    state: str | None
    exit_code: str | None
    submit_at: datetime | None
    eligible_at: datetime | None
    start_at: datetime | None
    end_at: datetime | None
    elapsed_s: int | None
    timelimit_s: int | None
    alloc_nodes: int | None
    alloc_cpus: int | None
    alloc_mem_mb: float | None
    alloc_gpus: int | None
    gpu_type: str | None
    tres: list[TresItem] | None
    billing: float | None
    nodelist: str | None
    reservation: str | None
    job_name: str | None
    source: str | None
    source_line: int | None


class RunVersionList(BaseModel):
    run_key: str
    data: list[RunVersion] = Field(description="oldest first")
    count: int


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


class ExplainLevel(BaseModel):
    """One association on the path from root, with the values the factors were computed from."""

    depth: int
    account: str
    user: str
    raw_shares: int | None
    norm_shares: Number | None = Field(description="S")
    raw_usage: Number | None
    effective_usage: Number | None = Field(description="U")
    level_fs: Number | None = Field(description="S/U under Fair Tree; null in classic mode")


class ExplainNeighbour(BaseModel):
    account: str
    user: str
    rank: int
    fairshare: Number
    diverge_depth: int = Field(description="the first depth where the two paths differ")
    mine: str = Field(description="this user's association at that depth")
    theirs: str
    mine_level_fs: Number | None
    theirs_level_fs: Number | None


class ExplainRun(BaseModel):
    run_key: str | None
    job_id: str | None
    start_at: datetime | None
    end_at: datetime | None
    usage_rate: float = Field(description="billing x QOS usage factor, per second")
    raw_usage: float = Field(description="decayed usage at as_of")
    share: float = Field(description="of the user's usage")


class ExplainRecovery(BaseModel):
    target: float
    at: datetime | None = Field(description="null: not reached within a year")
    after_s: float | None


class ExplanationPublic(BaseModel):
    """Why a user's factor is what it is (see docs/explain.md)."""

    cluster: str
    account: str
    user: str
    as_of: datetime
    algorithm: str
    fairshare: Number
    rank: int = Field(description="1 + users of the cluster with a higher factor")
    users: int
    path: list[ExplainLevel]
    above: ExplainNeighbour | None
    below: ExplainNeighbour | None
    top_runs: list[ExplainRun]
    recovery: ExplainRecovery | None


class SharesOverride(BaseModel):
    model_config = {"extra": "forbid"}

    cluster: str
    account: str
    user: str = ""
    shares: Annotated[int, Field(ge=0)] | Literal["parent"]


class SimulateRequest(BaseModel):
    """Another policy: a whole TOML text, or overrides of the active one (not both)."""

    model_config = {"extra": "forbid"}

    policy_toml: str | None = None
    half_life_s: float | None = Field(default=None, ge=0)
    algorithm: Literal["fair_tree", "classic"] | None = None
    ties: Literal["slurm", "merge"] | None = None
    shares: list[SharesOverride] = []
    as_of: datetime | None = Field(default=None, description="ISO 8601; default now (UTC)")
    chart: bool = Field(default=False, description="add the comparison as a Vega-Lite chart")


class SimulationRow(BaseModel):
    cluster: str
    account: str
    user: str
    raw_usage_current: float | None
    raw_usage_other: float | None
    raw_usage_change: float | None
    fairshare_current: float | None
    fairshare_other: float | None
    fairshare_change: float | None
    rank_current: int | None
    rank_other: int | None
    rank_change: int | None = Field(description="positive: moves up")
    charges_current: Decimal | None = Field(default=None, description="all periods, any grant")
    charges_other: Decimal | None = None
    charges_change: Decimal | None = None


class GrantChange(BaseModel):
    grant_id: str | None = Field(description="null: runs charged to no grant")
    charges_current: Decimal
    charges_other: Decimal
    charges_change: Decimal


class SimulationPublic(BaseModel):
    data: list[SimulationRow]
    count: int
    grants: list[GrantChange] = []
    chart: dict[str, Any] | None = Field(default=None, description="Vega-Lite, when asked for")
