"""Column names and dtypes of the fair-share frames: the association tree, usage per
association, the factors, usage over time and what-if comparisons.
"""

from __future__ import annotations

import polars as pl

from models.frames import UTC_TIME
from models.money.frames import MONEY

# The association tree of one or more clusters: one row per association. A user association has
# user != ""; its parent is the account it sits in. The root association has account "root",
# user "" and parent_account null.
ASSOCIATIONS: dict[str, pl.DataType] = {
    "cluster": pl.String(),
    "account": pl.String(),
    "user": pl.String(),
    "parent_account": pl.String(),
    "shares": pl.Int64(),  # raw shares; null when shares_parent
    "shares_parent": pl.Boolean(),  # Fairshare=parent
    "lft": pl.Int64(),  # Slurm's association table order, when known
}

# Usage per (cluster, account, user) association as the fair-share models consume it.
# user == "" is usage charged directly to the account (never by Slurm, possible by other sources).
ASSOC_USAGE: dict[str, pl.DataType] = {
    "cluster": pl.String(),
    "account": pl.String(),
    "user": pl.String(),
    "raw_usage": pl.Float64(),  # decayed billing-seconds x usage factor
}

# What the fair-share models return, one row per association (accounts and users), in sshare's
# row order. level_fs is +inf for zero usage; null for the root and in classic mode.
FACTORS: dict[str, pl.DataType] = {
    "cluster": pl.String(),
    "account": pl.String(),
    "user": pl.String(),
    "parent_account": pl.String(),
    "depth": pl.Int32(),  # root = 0
    "raw_shares": pl.Int64(),  # null for Fairshare=parent
    "shares_parent": pl.Boolean(),
    "norm_shares": pl.Float64(),
    "raw_usage": pl.Float64(),
    "norm_usage": pl.Float64(),
    "effective_usage": pl.Float64(),
    "fairshare": pl.Float64(),  # the factor the scheduler uses, in [0, 1]
    "level_fs": pl.Float64(),
}

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
    "charges_current": MONEY,  # everything the association's runs are charged, any grant
    "charges_other": MONEY,
    "charges_change": MONEY,
}

GRANT_CHANGES: dict[str, pl.DataType] = {
    "grant_id": pl.String(),
    "charges_current": MONEY,
    "charges_other": MONEY,
    "charges_change": MONEY,
}

USAGE_SERIES: dict[str, pl.DataType] = {
    "bucket_at": UTC_TIME,  # the start of the day or week
    "resource": pl.String(),  # "cpu" or "gpu"
    "series": pl.String(),  # the account or user, or "other"
    "series_rank": pl.Int32(),  # 1 = most hours in the window; "other" last
    "hours": pl.Float64(),  # CPU-hours or GPU-hours allocated in the bucket
}
