"""Another policy's factors and charges beside the current ones (``POST /v1/simulate``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


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
