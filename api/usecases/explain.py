"""Explain one user's factor and simulate another policy, from the store (never published).

Both compute from the active policy and the runs known now, read in one transaction, as
``GET /v1/snapshots?as_of=`` does; ``fairledger explain`` / ``simulate`` and
``/v1/explain`` / ``/v1/simulate`` call these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import polars as pl

from models.errors import FairledgerError, UnknownAssociation
from models.fairshare.explain import Explanation, explain_association
from models.fairshare.simulate import grant_changes, simulate
from models.fairshare.snapshots import accounts_within
from models.money.frames import CHARGE_RUN_COLUMNS
from models.policy import Policy
from models.store import Connection, read_policy_and_runs
from models.store.runs import USAGE_COLUMNS

# explain names its top runs by job id too; simulate charges the runs under both policies
RUN_COLUMNS = tuple(dict.fromkeys((*USAGE_COLUMNS, "job_id", *CHARGE_RUN_COLUMNS)))


def read_inputs(con: Connection) -> tuple[Policy, pl.DataFrame]:
    """Return the active policy and the ``RUN_COLUMNS`` of its clusters' runs (one read
    transaction; NoActivePolicy without a policy)."""
    active, runs = read_policy_and_runs(con, columns=RUN_COLUMNS)
    return active.policy, runs


def pick_association(
    policy: Policy, user: str, cluster: str | None, account: str | None
) -> tuple[str, str]:
    """Return (cluster, account) of ``user``'s one association matching the options."""
    found = sorted(
        {
            (a.cluster, a.account)
            for a in policy.associations
            if a.user == user
            and (cluster is None or a.cluster == cluster)
            and (account is None or a.account == account)
        }
    )
    if not found:
        raise UnknownAssociation(f"no association of user {user!r} matches")
    if len(found) > 1:
        names = ", ".join(f"{c}/{a}" for c, a in found)
        raise FairledgerError(f"user {user!r} has several associations ({names}): pick one")
    return found[0]


def explain_user(
    con: Connection,
    *,
    user: str,
    as_of: datetime,
    cluster: str | None = None,
    account: str | None = None,
    target: float | None = None,
    within: Iterable[str] | None = None,
) -> Explanation:
    """Return why ``cluster/account/user``'s factor is what it is at ``as_of``; without
    ``cluster`` or ``account``, of the user's one association that matches the others.

    ``within``: the accounts a viewer may see; an association outside their subtrees is
    UnknownAssociation, as if it did not exist.
    """
    policy, runs = read_inputs(con)
    if cluster is None or account is None:
        cluster, account = pick_association(policy, user, cluster, account)
    if within is not None:
        allowed = accounts_within(
            policy.association_frame().filter(pl.col("user") == ""), tuple(within)
        )
        if (cluster, account) not in allowed:
            raise UnknownAssociation(
                f"no association cluster={cluster} account={account} user={user}"
            )
    return explain_association(
        runs.lazy(),
        policy,
        cluster=cluster,
        account=account,
        user=user,
        as_of=as_of,
        target=target,
    )


def simulate_policy(
    con: Connection, other_of: Callable[[Policy], Policy], *, as_of: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (``SIMULATION`` rows, ``GRANT_CHANGES`` rows): every association's usage, factor,
    rank and charges, and every grant's charges, under the active policy and the one
    ``other_of(active policy)`` returns."""
    current, runs = read_inputs(con)
    other = other_of(current)
    table = simulate(runs.lazy(), current, other, as_of=as_of)
    return table, grant_changes(runs.lazy(), current, other)
