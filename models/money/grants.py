"""Money in the policy file: grants, effective-dated rate cards and the charging rules.

These are the reviewed-text parts of charge-back (see ``docs/money.md``). Amounts are
``Decimal`` from the TOML text on (TOML numbers are read as strings first, see
``money_number``), never floats. Dates are UTC calendar dates; a grant, a membership or a rate
card is in force from the start of its first day to the end of its last day (``end`` inclusive).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Literal

import polars as pl
from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from models.money.frames import MEMBERSHIPS
from models.policy_model import PolicyModel

PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
RESOURCES = ("cpu", "gpu", "mem", "node")


def _decimal(value: object) -> Decimal:
    """Return ``value`` as an exact Decimal (a float goes through its shortest repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(value, int | str):
        try:
            return Decimal(str(value).strip())
        except ArithmeticError as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    if isinstance(value, float):
        return Decimal(repr(value))
    raise ValueError(f"expected a number, got {type(value).__name__}")


# A Decimal read exactly from TOML (string, int or float) and written back as a string.
Amount = Annotated[Decimal, BeforeValidator(_decimal), PlainSerializer(str, return_type=str)]


def day_start(day: date) -> datetime:
    """Return midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def day_after(day: date) -> datetime:
    """Return midnight UTC at the end of ``day`` (the exclusive bound of an inclusive end)."""
    return day_start(day + timedelta(days=1))


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """Return [start, end) in UTC of a calendar-month period ``YYYY-MM``; ValueError if not one."""
    match = PERIOD_PATTERN.match(period)
    if match is None:
        raise ValueError(f"period {period!r}: expected YYYY-MM, for example 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_of(moment: datetime) -> str:
    """Return the ``YYYY-MM`` period holding ``moment`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m")


class GrantMember(PolicyModel):
    """An account (or one user of it) charging to a grant from ``start`` to ``end``."""

    account: str
    cluster: str = "*"  # "*" = every cluster
    user: str = ""  # "" = every user of the account
    start: date
    end: date | None = None  # inclusive; None = until the grant ends

    @model_validator(mode="after")
    def _ordered(self) -> GrantMember:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"member {self.account}: end {self.end} is before start {self.start}")
        return self


class Grant(PolicyModel):
    """A grant (allocation): a budget, a validity period, who charges to it, a regime."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    funder: str
    budget: Amount = Field(ge=0)
    unit: str = "USD"  # a currency code, or "SU" for service units
    start: date
    end: date  # inclusive
    regime: str | None = None  # compliance regime (see models.compliance.registry)
    members: list[GrantMember] = []

    @model_validator(mode="after")
    def _ordered(self) -> Grant:
        if self.end < self.start:
            raise ValueError(f"grant {self.id}: end {self.end} is before start {self.start}")
        return self


class Rate(PolicyModel):
    """A price per unit-hour of one resource, for a cluster and partition (``*`` = any).

    Units: cpu = one allocated CPU, gpu = one allocated GPU (``gpu_model`` narrows it to a
    model, as in AllocTRES ``gres/gpu:a100``), mem = one GiB of allocated memory, node = one
    allocated node. The most specific rate that matches wins (see ``docs/money.md``).
    """

    resource: Literal["cpu", "gpu", "mem", "node"]
    price: Amount = Field(ge=0)
    cluster: str = "*"
    partition: str = "*"
    gpu_model: str = "*"

    @model_validator(mode="after")
    def _model_only_for_gpu(self) -> Rate:
        if self.gpu_model != "*" and self.resource != "gpu":
            raise ValueError(f"rate for {self.resource}: gpu_model only applies to gpu")
        return self


class RateCard(PolicyModel):
    """Prices in force from ``effective`` until the next card's ``effective``."""

    id: str
    effective: date
    currency: str = "USD"
    rates: list[Rate] = []
    qos_multipliers: dict[str, Amount] = {}
    minimum_charge: Amount = Field(default=Decimal(0), ge=0)

    @model_validator(mode="after")
    def _one_rate_per_key(self) -> RateCard:
        keys = [(r.resource, r.cluster, r.partition, r.gpu_model.lower()) for r in self.rates]
        for key in keys:
            if keys.count(key) > 1:
                what = "/".join(key)
                raise ValueError(f"rate card {self.id}: two rates for {what}; keep one")
        return self


class Charging(PolicyModel):
    """How runs become charge lines (stated once, in the policy)."""

    attribution: Literal["end", "prorate"] = "end"
    charge_requeued_runs: bool = True  # False: only the last run of a requeued job is charged
    uncharged_states: list[str] = ["NODE_FAIL", "BOOT_FAIL"]
    rounding: Literal["half_even"] = "half_even"
    decimals: int = Field(default=2, ge=0, le=6)  # the quantum of a line: 2 = cents


def check_unique(grants: list[Grant], rate_cards: list[RateCard]) -> None:
    """Raise ValueError when a grant id, rate card id or rate card date appears twice."""
    for kind, ids in (
        ("grant", [g.id for g in grants]),
        ("rate card", [c.id for c in rate_cards]),
        ("rate card date", [str(c.effective) for c in rate_cards]),
    ):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"{kind} {repeated[0]} appears more than once")


def membership_frame(grants: list[Grant]) -> pl.DataFrame:
    """Return one row per grant membership: grant_id, cluster, account, user, from_at, until_at.

    ``from_at``/``until_at`` is the half-open UTC interval the membership is in force: the
    membership's own dates clipped to the grant's. ``specificity`` ranks overlapping matches
    (a named user beats the whole account, a named cluster beats ``*``).
    """
    rows = []
    for grant in grants:
        for member in grant.members:
            start = max(member.start, grant.start)
            end = grant.end if member.end is None else min(member.end, grant.end)
            if end < start:
                continue
            rows.append(
                {
                    "grant_id": grant.id,
                    "cluster": member.cluster,
                    "account": member.account,
                    "user": member.user,
                    "from_at": day_start(start),
                    "until_at": day_after(end),
                    "specificity": 2 * bool(member.user) + (member.cluster != "*"),
                }
            )
    return pl.DataFrame(rows, schema=MEMBERSHIPS)


def check_memberships(grants: list[Grant]) -> None:
    """Raise ValueError when one run could charge to two grants with equal specificity."""
    members = membership_frame(grants)
    pairs = members.join(members, on=["account", "specificity"], suffix="_b").filter(
        (pl.col("grant_id") < pl.col("grant_id_b"))
        & ((pl.col("cluster") == pl.col("cluster_b")) | (pl.col("cluster") == "*"))
        & (pl.col("user") == pl.col("user_b"))
        & (pl.col("from_at") < pl.col("until_at_b"))
        & (pl.col("from_at_b") < pl.col("until_at"))
    )
    if pairs.height:
        row = pairs.row(0, named=True)
        who = row["account"] + (f"/{row['user']}" if row["user"] else "")
        raise ValueError(
            f"{who} charges to both {row['grant_id']} and {row['grant_id_b']} from "
            f"{max(row['from_at'], row['from_at_b']):%Y-%m-%d}: give one of them a narrower "
            "membership (a user, a cluster, or dates that do not overlap)"
        )


def assign_grants(runs: pl.DataFrame, grants: list[Grant], *, at: str = "end_at") -> pl.DataFrame:
    """Return ``runs`` with a ``grant_id`` column: the grant its account maps to at ``at``.

    ``runs`` needs run_key, cluster, account, user and the ``at`` column. A run whose time is
    not set, or that no membership covers, gets a null grant_id (it is reported, never
    dropped). Where memberships overlap the most specific wins (see ``membership_frame``).
    Pure: no clock, no I/O; the row order of ``runs`` is kept.
    """
    members = membership_frame(grants)
    indexed = runs.with_row_index("_row")
    matches = (
        indexed.select("_row", "cluster", "account", "user", pl.col(at).alias("_at"))
        .join(members, on="account", suffix="_m")
        .filter(
            ((pl.col("cluster_m") == "*") | (pl.col("cluster_m") == pl.col("cluster")))
            & ((pl.col("user_m") == "") | (pl.col("user_m") == pl.col("user")))
            & (pl.col("_at") >= pl.col("from_at"))
            & (pl.col("_at") < pl.col("until_at"))
        )
        .sort("_row", "specificity", descending=[False, True])
        .unique("_row", keep="first")
        .select("_row", "grant_id")
    )
    return indexed.join(matches, on="_row", how="left").sort("_row").drop("_row")
