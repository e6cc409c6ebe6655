"""Why a user's fair-share factor is what it is, and when it would recover.

``explain_association`` reads everything from the ``FACTORS`` frame ``compute_factors``
returns, so the path values are the factors' own. Ranking is per cluster, by ``fairshare``
descending (ties keep sshare order); a user's rank is 1 + the number of users with a strictly
higher factor.

Recovery assumes (see ``docs/explain.md``):

- the user runs nothing more: their runs end at ``as_of`` (a running one stops there);
- everyone else keeps what the records say: a run still running (``end_at`` null) keeps
  accruing usage at its rate, a finished run only decays;
- the policy and the association tree stay as they are.

Decay alone scales every usage by the same factor, which leaves Fair Tree's and the classic
algorithm's ratios unchanged: a factor recovers only as others' running runs accrue, or at a
usage reset. When the target is not reached within a year, the recovery time is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from models.errors import UnknownAssociation
from models.fairshare.decay import decayed_usage, ordered_sum, run_usage
from models.fairshare.factors import classic_factors, compute_factors, fair_tree_factors
from models.fairshare.tree import split_usage
from models.fairshare.usage import usage_rates
from models.policy import Policy

HORIZON_S = 365 * 86400  # the longest recovery searched for
RESOLUTION_S = 60.0  # the bisection stops when the bracket is this narrow
_FIRST_STEP_S = 3600.0


@dataclass(frozen=True)
class Level:
    """One association on the path from root: its factors inputs as ``FACTORS`` holds them."""

    depth: int
    account: str
    user: str
    raw_shares: int | None
    norm_shares: float | None
    raw_usage: float | None
    effective_usage: float | None
    level_fs: float | None


@dataclass(frozen=True)
class Neighbour:
    """A user ranked just above or below, and where (and why) the two paths part."""

    account: str
    user: str
    rank: int
    fairshare: float
    diverge_depth: int  # the first depth whose associations differ
    mine: str  # this user's association at that depth ("account" or "account/user")
    theirs: str
    mine_level_fs: float | None
    theirs_level_fs: float | None


@dataclass(frozen=True)
class TopRun:
    """A run of the user's with its decayed usage and its share of the user's usage."""

    run_key: str | None
    job_id: str | None
    start_at: datetime | None
    end_at: datetime | None
    usage_rate: float
    raw_usage: float
    share: float


@dataclass(frozen=True)
class Recovery:
    """When the factor would reach ``target`` if the user ran nothing more (None: not in a year)."""

    target: float
    at: datetime | None
    after_s: float | None


@dataclass(frozen=True)
class Explanation:
    """A user association's factor explained (see the module docstring)."""

    cluster: str
    account: str
    user: str
    as_of: datetime
    algorithm: str
    fairshare: float
    rank: int
    users: int
    path: list[Level]
    above: Neighbour | None
    below: Neighbour | None
    top_runs: list[TopRun] = field(default_factory=list)
    recovery: Recovery | None = None


def _label(account: str, user: str) -> str:
    return f"{account}/{user}" if user else account


def path_of(factors: pl.DataFrame, cluster: str, account: str, user: str) -> list[dict[str, Any]]:
    """Return the ``FACTORS`` rows from root down to the association, root first."""
    rows = factors.filter(pl.col("cluster") == cluster)
    by_key = {(r["account"], r["user"] or ""): r for r in rows.iter_rows(named=True)}
    node = by_key.get((account, user))
    if node is None:
        raise UnknownAssociation(f"no association cluster={cluster} account={account} user={user}")
    path = [node]
    while node["parent_account"] is not None:
        node = by_key[(node["parent_account"], "")]
        path.append(node)
    return list(reversed(path))


def ranked_users(factors: pl.DataFrame, cluster: str) -> pl.DataFrame:
    """Return the users of ``cluster`` by ``fairshare`` descending with ``rank`` (1 = highest).

    Columns: account, user, fairshare, rank (1 + users with a strictly higher factor).
    """
    users = factors.filter((pl.col("cluster") == cluster) & (pl.col("user") != ""))
    return (
        users.select("account", "user", pl.col("fairshare").fill_null(0.0))
        .with_columns(pl.col("fairshare").rank("min", descending=True).cast(pl.Int64).alias("rank"))
        .sort("fairshare", descending=True, maintain_order=True)
    )


def _level(row: dict[str, Any]) -> Level:
    return Level(
        depth=int(row["depth"]),
        account=str(row["account"]),
        user=str(row["user"] or ""),
        raw_shares=row["raw_shares"],
        norm_shares=row["norm_shares"],
        raw_usage=row["raw_usage"],
        effective_usage=row["effective_usage"],
        level_fs=row["level_fs"],
    )


def _neighbour(
    factors: pl.DataFrame, cluster: str, mine: list[Level], row: dict[str, Any]
) -> Neighbour:
    theirs = [_level(r) for r in path_of(factors, cluster, str(row["account"]), str(row["user"]))]
    depth = 0
    while depth < min(len(mine), len(theirs)) and (mine[depth].account, mine[depth].user) == (
        theirs[depth].account,
        theirs[depth].user,
    ):
        depth += 1
    a, b = mine[min(depth, len(mine) - 1)], theirs[min(depth, len(theirs) - 1)]
    return Neighbour(
        account=str(row["account"]),
        user=str(row["user"]),
        rank=int(row["rank"]),
        fairshare=float(row["fairshare"]),
        diverge_depth=depth,
        mine=_label(a.account, a.user),
        theirs=_label(b.account, b.user),
        mine_level_fs=a.level_fs,
        theirs_level_fs=b.level_fs,
    )


def heaviest_runs(
    runs: pl.LazyFrame,
    policy: Policy,
    *,
    cluster: str,
    account: str,
    user: str,
    as_of: datetime,
    limit: int = 10,
) -> list[TopRun]:
    """Return the user's ``limit`` runs with the most decayed usage at ``as_of``, largest first
    (equal usage: by ``run_key``)."""
    mine = runs.filter(
        (pl.col("cluster") == cluster) & (pl.col("account") == account) & (pl.col("user") == user)
    )
    used = run_usage(usage_rates(mine, policy), decay=policy.decay, as_of=as_of).collect()
    total = float(used.select(ordered_sum("raw_usage")).item())
    ties = ["run_key"] if "run_key" in used.columns else []  # not the store's row order
    top = used.sort(
        ["raw_usage", *ties], descending=[True] + [False] * len(ties), maintain_order=True
    ).head(limit)
    return [
        TopRun(
            run_key=r.get("run_key"),
            job_id=r.get("job_id"),
            start_at=r["start_at"],
            end_at=r["end_at"],
            usage_rate=float(r["usage_rate"] or 0.0),
            raw_usage=float(r["raw_usage"]),
            share=float(r["raw_usage"]) / total if total else 0.0,
        )
        for r in top.iter_rows(named=True)
    ]


def _factors_at(rated: pl.DataFrame, policy: Policy, as_of: datetime) -> pl.DataFrame:
    usage = decayed_usage(rated.lazy(), decay=policy.decay, as_of=as_of).collect()
    assocs = policy.association_frame()
    usage, _ = split_usage(assocs, usage)
    if policy.fairshare.algorithm == "classic":
        return classic_factors(assocs, usage, fairshare=policy.fairshare)
    return fair_tree_factors(assocs, usage, fairshare=policy.fairshare)


def recovery_time(
    runs: pl.LazyFrame,
    policy: Policy,
    *,
    cluster: str,
    account: str,
    user: str,
    as_of: datetime,
    target: float,
) -> Recovery:
    """Return when the user's factor first reaches ``target`` if they run nothing more.

    Exponential search from one hour, doubling up to ``HORIZON_S``, then bisection to
    ``RESOLUTION_S``. Assumes the factor, once reached, stays reached in between (true when
    only others' usage grows).
    """
    now = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    moment = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    is_mine = (
        (pl.col("cluster") == cluster) & (pl.col("account") == account) & (pl.col("user") == user)
    )
    end = pl.col("end_at").fill_null(moment)
    stopped = runs.with_columns(
        pl.when(is_mine)
        .then(pl.min_horizontal(end, moment))
        .otherwise(pl.col("end_at"))
        .alias("end_at")
    ).filter(~is_mine | pl.col("start_at").is_null() | (pl.col("start_at") <= moment))
    rated = usage_rates(stopped, policy).collect()

    def reached(after_s: float) -> bool:
        factors = _factors_at(rated, policy, now + timedelta(seconds=after_s))
        found = factors.filter(
            (pl.col("cluster") == cluster)
            & (pl.col("account") == account)
            & (pl.col("user") == user)
        )
        value = found.get_column("fairshare").fill_null(0.0).to_list()
        return bool(value) and value[0] >= target - 1e-12

    if reached(0.0):
        return Recovery(target=target, at=now, after_s=0.0)
    low, high = 0.0, _FIRST_STEP_S
    while not reached(high):
        if high >= HORIZON_S:
            return Recovery(target=target, at=None, after_s=None)
        low, high = high, min(high * 2, float(HORIZON_S))
    while high - low > RESOLUTION_S:
        middle = (low + high) / 2
        if reached(middle):
            high = middle
        else:
            low = middle
    return Recovery(target=target, at=now + timedelta(seconds=high), after_s=high)


def explain_association(
    runs: pl.LazyFrame,
    policy: Policy,
    *,
    cluster: str,
    account: str,
    user: str,
    as_of: datetime,
    top_runs: int = 10,
    target: float | None = None,
) -> Explanation:
    """Return the ``Explanation`` of one user association's factor at ``as_of``.

    ``target`` is the factor the recovery aims at; by default the next higher factor in the
    ranking (no recovery for the top user). Runs of associations the policy does not have are
    left out, as the service does. Raises UnknownAssociation for an unknown user association.
    """
    if not user:
        raise UnknownAssociation("explain needs a user association, not an account")
    factors = compute_factors(runs, policy, as_of=as_of, unknown="drop")
    path = [_level(r) for r in path_of(factors, cluster, account, user)]
    ranking = ranked_users(factors, cluster)
    rows = list(ranking.iter_rows(named=True))
    position = next(i for i, r in enumerate(rows) if (r["account"], r["user"]) == (account, user))
    me = rows[position]
    above = None
    higher = [r for r in rows if r["fairshare"] > me["fairshare"]]
    if position > 0:
        above = _neighbour(factors, cluster, path, rows[position - 1])
    below = None
    if position + 1 < len(rows):
        below = _neighbour(factors, cluster, path, rows[position + 1])
    goal = target if target is not None else (higher[-1]["fairshare"] if higher else None)
    recovery = None
    if goal is not None:
        recovery = recovery_time(
            runs, policy, cluster=cluster, account=account, user=user, as_of=as_of, target=goal
        )
    return Explanation(
        cluster=cluster,
        account=account,
        user=user,
        as_of=as_of,
        algorithm=policy.fairshare.algorithm,
        fairshare=float(me["fairshare"]),
        rank=int(me["rank"]),
        users=len(rows),
        path=path,
        above=above,
        below=below,
        top_runs=heaviest_runs(
            runs, policy, cluster=cluster, account=account, user=user, as_of=as_of, limit=top_runs
        ),
        recovery=recovery,
    )
