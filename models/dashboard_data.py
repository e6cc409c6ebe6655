"""Frames the dashboards chart, other than usage over time: one level of the share tree, and
ingest health per source.
"""

from __future__ import annotations

import math
from datetime import datetime

import polars as pl

from models.frames import UTC_TIME

SHARE_LEVEL: dict[str, pl.DataType] = {
    "name": pl.String(),  # the child account, or the user
    "kind": pl.String(),  # "account" or "user"
    "rank": pl.Int32(),  # 1 = highest LevelFS (Fair Tree visits it first)
    "raw_shares": pl.Int64(),  # null for Fairshare=parent
    "shares_share": pl.Float64(),  # S: shares / the siblings' shares (Fairshare=parent: null)
    "raw_usage": pl.Float64(),
    "usage_share": pl.Float64(),  # U: usage / the parent account's usage (0 when it has none)
    "level_fs": pl.Float64(),  # S / U; null when infinite or not applicable
    "level_fs_text": pl.String(),  # level_fs as text, "inf" for infinity, "" when null
    "fairshare": pl.Float64(),  # the factor (users), null for accounts under Fair Tree
}


def _text(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return "inf" if math.isinf(value) else f"{value:.4g}"


def share_level(factors: pl.DataFrame, *, cluster: str, account: str) -> pl.DataFrame:
    """Return the children of one account (sub-accounts and users) with their shares, usage and
    factor as Fair Tree compares them (``SHARE_LEVEL``), in descending LevelFS.

    ``factors`` is a ``FACTORS`` frame (a snapshot's). An account without children, or one not
    in ``factors``, gives an empty frame.
    """
    in_cluster = factors.filter(pl.col("cluster") == cluster)
    parent = in_cluster.filter((pl.col("account") == account) & (pl.col("user") == ""))
    parent_usage = parent.get_column("raw_usage").sum() if parent.height else 0.0
    children = in_cluster.filter(
        ((pl.col("user") == "") & (pl.col("parent_account") == account))
        | ((pl.col("user") != "") & (pl.col("account") == account))
    )
    counted = pl.col("raw_shares").filter(~pl.col("shares_parent")).sum()
    level = children.with_columns(
        name=pl.when(pl.col("user") == "").then(pl.col("account")).otherwise(pl.col("user")),
        kind=pl.when(pl.col("user") == "").then(pl.lit("account")).otherwise(pl.lit("user")),
        shares_share=pl.when(pl.col("shares_parent"))
        .then(None)
        .otherwise(pl.col("raw_shares") / counted),
        usage_share=(pl.col("raw_usage") / parent_usage) if parent_usage else pl.lit(0.0),
    ).with_columns(
        rank=pl.col("level_fs").fill_null(-1.0).rank("ordinal", descending=True).cast(pl.Int32),
        level_fs_text=pl.col("level_fs").map_elements(_text, return_dtype=pl.String),
        level_fs=pl.when(pl.col("level_fs").is_infinite()).then(None).otherwise(pl.col("level_fs")),
    )
    return level.sort("rank").select(
        [pl.col(name).cast(dtype) for name, dtype in SHARE_LEVEL.items()]
    )


INGEST_DAILY: dict[str, pl.DataType] = {
    "day_at": UTC_TIME,
    "source": pl.String(),
    "measure": pl.String(),  # "runs landed", "quarantined", "batches"
    "count": pl.Int64(),
}


def ingest_daily(batches: pl.DataFrame) -> pl.DataFrame:
    """Return per day and source the runs landed, records quarantined and batches
    (``INGEST_DAILY``, long: one row per measure), days with a batch only.

    ``batches`` has source, finished_at, runs_landed, quarantined.
    """
    daily = (
        batches.with_columns(day_at=pl.col("finished_at").dt.truncate("1d"))
        .group_by("day_at", "source")
        .agg(
            pl.col("runs_landed").sum().alias("runs landed"),
            pl.col("quarantined").sum(),
            pl.len().alias("batches"),
        )
        .unpivot(index=["day_at", "source"], variable_name="measure", value_name="count")
        .sort("day_at", "source", "measure")
    )
    return daily.select([pl.col(name).cast(dtype) for name, dtype in INGEST_DAILY.items()])


INGEST_TABLE: dict[str, pl.DataType] = {
    "source": pl.String(),
    "field": pl.String(),
    "field_order": pl.Int32(),
    "value": pl.String(),
}

_FIELDS = (
    "last success",
    "failures in a row",
    "last error",
    "batches",
    "runs landed",
    "quarantined",
)


def _ago(moment: datetime | None, as_of: datetime) -> str:
    if moment is None:
        return "never"
    minutes = max(0, int((as_of - moment).total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // 1440} d ago"


def ingest_table(states: pl.DataFrame, totals: pl.DataFrame, *, as_of: datetime) -> pl.DataFrame:
    """Return the health of each source as table cells (``INGEST_TABLE``): last success (as
    an age at ``as_of``), consecutive failures, last error, batches, runs landed, quarantined.

    ``states`` is a ``SOURCE_STATES`` frame (scheduled sources), ``totals`` the store's batch
    totals per source (every source that landed a batch, scheduled or pushed).
    """
    joined = states.join(totals, on="source", how="full", coalesce=True)
    if "last_finished_at" in joined.columns:
        # a pushed source has no state: its last success is its last batch
        joined = joined.with_columns(
            last_success_at=pl.coalesce("last_success_at", "last_finished_at")
        )
    rows: list[dict[str, object]] = []
    for row in joined.sort("source").iter_rows(named=True):
        values = (
            _ago(row.get("last_success_at"), as_of),
            str(row.get("consecutive_failures") or 0),
            (row.get("last_error") or "")[:60],
            str(row.get("batches") or 0),
            str(row.get("runs_landed") or 0),
            str(row.get("quarantined") or 0),
        )
        for order, (field, value) in enumerate(zip(_FIELDS, values, strict=True)):
            rows.append(
                {"source": row["source"], "field": field, "field_order": order, "value": value}
            )
    return pl.DataFrame(rows, schema=INGEST_TABLE)


BURNDOWN_POINTS: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "series": pl.String(),  # "spent so far" (or the caller's label) or "forecast"
    "remaining": pl.Float64(),  # budget - spent, in the grant's unit (for drawing only)
    "spent": pl.Float64(),
}


def burndown_points(burndown: pl.DataFrame, *, actual: str = "spent so far") -> pl.DataFrame:
    """Return a statement's burn-down (``BURNDOWN_COLUMNS``) as chart points
    (``BURNDOWN_POINTS``), by day: the actual days (series ``actual``), then the forecast
    starting from the last actual day so that the two lines meet. Amounts become floats: a
    chart draws, it never sums money. The dashboards and the PDF statement both draw these."""
    points = burndown.sort("day").select(
        "day",
        series=pl.when(pl.col("forecast")).then(pl.lit("forecast")).otherwise(pl.lit(actual)),
        remaining=pl.col("remaining").cast(pl.Float64),
        spent=pl.col("spent").cast(pl.Float64),
    )
    spent = points.filter(pl.col("series") == actual)
    ahead = points.filter(pl.col("series") == "forecast")
    if spent.height and ahead.height:
        ahead = pl.concat([spent.tail(1).with_columns(series=pl.lit("forecast")), ahead])
    return pl.concat([spent, ahead]).select(
        [pl.col(name).cast(dtype) for name, dtype in BURNDOWN_POINTS.items()]
    )


COMPLIANCE_STATUS: dict[str, pl.DataType] = {
    "grant_id": pl.String(),
    "regime": pl.String(),
    "verdict": pl.String(),  # approved, violation, unknown
    "rule": pl.String(),  # the rule that decided it ("" for approved)
    "runs": pl.Int64(),
}


def compliance_status(verdicts: pl.DataFrame) -> pl.DataFrame:
    """Return how many runs of each grant got each verdict, by deciding rule
    (``COMPLIANCE_STATUS``), from ``models.compliance.verdicts.VERDICTS`` rows."""
    counted = (
        verdicts.with_columns(pl.col("rule").fill_null(""))
        .group_by("grant_id", "regime", "verdict", "rule")
        .agg(runs=pl.len())
        .sort("grant_id", "verdict", "rule")
    )
    return counted.select([pl.col(name).cast(dtype) for name, dtype in COMPLIANCE_STATUS.items()])
