"""The money routes' request and answer bodies (``api/routes/money.py``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field

from models.money.grants import Grant
from models.store.ledger import ClosedPeriod


class GrantBalance(BaseModel):
    id: str
    funder: str
    unit: str
    budget: str
    charged: str = Field(description="everything posted to the grant so far (open periods live)")
    balance: str
    start: date
    end: date
    regime: str | None
    accounts: list[str]

    @classmethod
    def of(cls, grant: Grant, charged: Decimal, decimals: int) -> GrantBalance:
        """Return ``grant``'s public form with ``charged`` so far and the balance."""
        quantum = Decimal(1).scaleb(-decimals)
        return cls(
            id=grant.id,
            funder=grant.funder,
            unit=grant.unit,
            budget=str(grant.budget),
            charged=str(charged.quantize(quantum)),
            balance=str((grant.budget - charged).quantize(quantum)),
            start=grant.start,
            end=grant.end,
            regime=grant.regime,
            accounts=sorted({m.account for m in grant.members}),
        )


class GrantList(BaseModel):
    data: list[GrantBalance]
    count: int


class ClosedPeriodPublic(BaseModel):
    period: str
    closed_at: str
    closed_by: str
    policy_version: int
    lines: int
    total: str
    statements: dict[str, str] = Field(default={}, description='{"GRANT/format": sha256}')
    made_with: dict[str, str] = Field(
        default={},
        description='{"format": "fairledger 0.1.0, polars 2.2.0, ..."}: the releases that '
        "rendered the statements whose hashes were recorded (empty for older closes)",
    )

    @classmethod
    def of(
        cls,
        closed: ClosedPeriod,
        statements: dict[str, str],
        made_with: dict[str, str] | None = None,
    ) -> ClosedPeriodPublic:
        """Return a closed period's public form with its statements' hashes and makers."""
        return cls(
            period=closed.period,
            closed_at=closed.closed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            closed_by=closed.closed_by,
            policy_version=closed.policy_version,
            lines=closed.lines,
            total=str(closed.total),
            statements=statements,
            made_with=made_with or {},
        )


class PeriodList(BaseModel):
    closed: list[ClosedPeriodPublic]
    first_open: str = Field(description="where adjustments and refunds are posted now")
    next_to_close: str = Field(description="the only period a close may name next")


class AdjustmentRequest(BaseModel):
    reason: str = Field(min_length=1)
    amount: Decimal | None = Field(
        default=None, description="positive charges the grant, negative credits it"
    )
    run_key: str | None = Field(default=None, description="refund this run's whole charge")


class AdjustmentPosted(BaseModel):
    entry_id: int
    grant_id: str
    period: str
    amount: str
    kind: str


class QuoteLine(BaseModel):
    resource: str
    quantity: float
    hours: float
    unit_price: str
    multiplier: str
    amount: str


class QuotePublic(BaseModel):
    grant_id: str | None
    rate_card: str | None
    currency: str | None
    total: str
    lines: list[QuoteLine]
    not_charged: str | None = Field(default=None, description="why such a job is not charged")
