"""Why a user's factor is what it is (``GET /v1/explain``, see ``docs/explain.md``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.factors import Number


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
