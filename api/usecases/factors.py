"""The fair-share factors as of a time, computed from the store (the active policy and the runs
known now); the serving process publishes them as snapshots (``api.service``)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from models.fairshare.factors import compute_factors
from models.store import Connection, read_policy_and_runs


def factors_as_of(con: Connection, as_of: datetime) -> tuple[pl.DataFrame, str]:
    """Return the ``FACTORS`` frame at ``as_of`` and the policy's fair-share algorithm (policy
    and runs read in one transaction; NoActivePolicy without a policy)."""
    active, runs = read_policy_and_runs(con)
    factors = compute_factors(runs.lazy(), active.policy, as_of=as_of)
    return factors, active.policy.fairshare.algorithm
