"""What-if: the same runs under another policy, factors and charges side by side.

Charges are compared when the runs carry ``models.money.charges.CHARGE_RUN_COLUMNS``: each
association's total charge (all periods, every grant) under both policies, and each grant's
total in ``grant_changes`` — what another set of rate cards, multipliers or grant memberships
would have billed for the same history.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from pydantic import ValidationError

from models.errors import PolicyError, UnknownAssociation
from models.fairshare.factors import compute_factors
from models.fairshare.frames import GRANT_CHANGES, SIMULATION
from models.money.charges import charge_runs
from models.money.frames import CHARGE_RUN_COLUMNS, MONEY
from models.policy import Policy, validation_problems

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
    if other == current:  # the same numbers, not a second float summation in another order
        then = now.rename({c: c.replace("_current", "_other") for c in now.columns})
    else:
        then = _side(runs, other, as_of, "other")
    joined = now.join(then, on=_KEY, how="full", coalesce=True, maintain_order="left_right")
    charges = _association_charges(runs, current, other)
    joined = joined.join(charges, on=_KEY, how="left", maintain_order="left")
    return joined.with_columns(
        (pl.col("raw_usage_other") - pl.col("raw_usage_current")).alias("raw_usage_change"),
        (pl.col("fairshare_other") - pl.col("fairshare_current")).alias("fairshare_change"),
        (pl.col("rank_current") - pl.col("rank_other")).alias("rank_change"),
        (pl.col("charges_other") - pl.col("charges_current")).alias("charges_change"),
    ).select([pl.col(name).cast(dtype) for name, dtype in SIMULATION.items()])


def _lines(runs: pl.LazyFrame, policy: Policy) -> pl.DataFrame:
    if not set(CHARGE_RUN_COLUMNS) <= set(runs.collect_schema().names()):
        return pl.DataFrame(
            schema={
                "cluster": pl.String,
                "account": pl.String,
                "user": pl.String,
                "grant_id": pl.String,
                "amount": MONEY,
            }
        )
    return charge_runs(runs.select(CHARGE_RUN_COLUMNS).collect(), policy).lines


def _association_charges(runs: pl.LazyFrame, current: Policy, other: Policy) -> pl.DataFrame:
    """Return per user association, and per account (its users' sum), both policies' charges."""
    zero = pl.lit(0, dtype=MONEY)
    sides = []
    for policy, name in ((current, "charges_current"), (other, "charges_other")):
        lines = _lines(runs, policy)
        users = lines.group_by(_KEY).agg(pl.col("amount").sum().alias(name))
        accounts = (
            lines.group_by("cluster", "account")
            .agg(pl.col("amount").sum().alias(name))
            .with_columns(user=pl.lit(""))
        )
        sides.append(pl.concat([users, accounts.select(users.columns)]))
    both = sides[0].join(sides[1], on=_KEY, how="full", coalesce=True)
    return both.with_columns(pl.col("charges_current", "charges_other").fill_null(zero))


def grant_changes(runs: pl.LazyFrame, current: Policy, other: Policy) -> pl.DataFrame:
    """Return ``GRANT_CHANGES``: each grant's total charge under both policies (runs charged to
    no grant under a policy count under grant_id null)."""
    zero = pl.lit(0, dtype=MONEY)
    sides = [
        _lines(runs, policy).group_by("grant_id").agg(pl.col("amount").sum().alias(name))
        for policy, name in ((current, "charges_current"), (other, "charges_other"))
    ]
    both = sides[0].join(sides[1], on="grant_id", how="full", coalesce=True, nulls_equal=True)
    return (
        both.with_columns(pl.col("charges_current", "charges_other").fill_null(zero))
        .with_columns(charges_change=pl.col("charges_other") - pl.col("charges_current"))
        .sort("grant_id")
        .select(list(GRANT_CHANGES))
    )


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
        raise PolicyError(f"policy overrides: {validation_problems(exc)}") from exc
