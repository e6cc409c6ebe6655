"""A run's stored versions (``api/routes/runs.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


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
