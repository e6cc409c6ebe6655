"""What-if: the same runs under another policy, factors side by side.

Charge changes (another set of billing rates or grant rates) come with the money issue: this
module compares fair-share usage and factors only. When ``models/charges.py`` lands, add
``charge_cents_current`` / ``charge_cents_other`` columns here.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from pydantic import ValidationError

from models.errors import PolicyError, UnknownAssociation
from models.fairshare import compute_factors
from models.policy import Policy

SIMULATION: dict[str, pl.DataType] = {
    "cluster": pl.String(),
    "account": pl.String(),
    "user": pl.String(),  # "" for an account's association
    "raw_usage_current": pl.Float64(),
    "raw_usage_other": pl.Float64(),
    "raw_usage_change": pl.Float64(),
    "fairshare_current": pl.Float64(),
    "fairshare_other": pl.Float64(),
    "fairshare_change": pl.Float64(),
    "rank_current": pl.Int64(),  # users only: 1 + users of the cluster with a higher factor
    "rank_other": pl.Int64(),
    "rank_change": pl.Int64(),  # positive: moves up the ranking
}

_KEY = ["cluster", "account", "user"]


def _side(runs: pl.LazyFrame, policy: Policy, as_of: datetime, suffix: str) -> pl.DataFrame:
    factors = compute_factors(runs, policy, as_of=as_of, unknown="drop")
    is_user = pl.col("user") != ""
    rank = (
        pl.when(is_user)
        .then(
            pl.when(is_user)
            .then(pl.col("fairshare").fill_null(0.0))
            .rank("min", descending=True)
            .over("cluster", is_user)
        )
        .cast(pl.Int64)
    )
    return factors.select(
        *_KEY,
        pl.col("raw_usage").alias(f"raw_usage_{suffix}"),
        pl.col("fairshare").alias(f"fairshare_{suffix}"),
        rank.alias(f"rank_{suffix}"),
    )


def simulate(
    runs: pl.LazyFrame, current: Policy, other: Policy, *, as_of: datetime
) -> pl.DataFrame:
    """Return ``SIMULATION``: every association of either policy under both, with the changes.

    Changes are other minus current (``rank_change`` current minus other, so that moving up
    is positive); null where an association exists under one policy only. Rows in the
    current policy's sshare order, then associations only the other policy has.
    """
    now = _side(runs, current, as_of, "current")
    then = _side(runs, other, as_of, "other")
    joined = now.join(then, on=_KEY, how="full", coalesce=True, maintain_order="left_right")
    return joined.with_columns(
        (pl.col("raw_usage_other") - pl.col("raw_usage_current")).alias("raw_usage_change"),
        (pl.col("fairshare_other") - pl.col("fairshare_current")).alias("fairshare_change"),
        (pl.col("rank_current") - pl.col("rank_other")).alias("rank_change"),
    ).select([pl.col(name).cast(dtype) for name, dtype in SIMULATION.items()])


def policy_with(
    current: Policy,
    *,
    half_life_s: float | None = None,
    algorithm: str | None = None,
    ties: str | None = None,
    shares: list[tuple[str, str, str, int | str]] | None = None,
) -> Policy:
    """Return ``current`` with some settings replaced (validated again; PolicyError if wrong).

    ``shares`` items are (cluster, account, user, shares or "parent"); each must name an
    association of the policy.
    """
    data = current.model_dump()
    if half_life_s is not None:
        data["decay"]["half_life_s"] = half_life_s
    if algorithm is not None:
        data["fairshare"]["algorithm"] = algorithm
    if ties is not None:
        data["fairshare"]["ties"] = ties
    index = {(a["cluster"], a["account"], a["user"]): a for a in data["associations"]}
    for cluster, account, user, value in shares or []:
        found = index.get((cluster, account, user))
        if found is None:
            raise UnknownAssociation(
                f"no association cluster={cluster} account={account} user={user} in the policy"
            )
        found["shares"] = value
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"policy overrides: {exc}") from exc
