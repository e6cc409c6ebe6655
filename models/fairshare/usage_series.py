"""Usage over time for the dashboards: CPU-hours and GPU-hours per time bucket and series.

A run's allocation is sliced at bucket boundaries (a run from 23:00 to 01:00 puts one hour in
each day), clipped to the window asked for; a run still running counts up to the window's end.
Each resource keeps its own top N series by hours in the window; the rest sum into ``other``,
so a chart has at most ``buckets x (top + 1) x 2`` rows, whatever the site's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import polars as pl

from models.fairshare.frames import USAGE_SERIES
from models.frames import UTC_TIME

Step = Literal["day", "week"]
SeriesBy = Literal["account", "user"]

STEPS: dict[str, str] = {"day": "1d", "week": "1w"}  # a week starts on Monday (ISO)
OTHER = "other"
RESOURCES = ("cpu", "gpu")


def bucket_count(*, start: datetime, end: datetime, step: Step) -> int:
    """Return how many buckets of ``step`` the window [start, end) touches."""
    days = (end - start).total_seconds() / 86400
    if step == "day":
        return int(-(-days // 1)) + 1
    return int(-(-days // 7)) + 1


def runs_within(runs: pl.LazyFrame, allowed: Iterable[tuple[str, str]]) -> pl.LazyFrame:
    """Return the runs whose (cluster, account) is one of ``allowed``."""
    pairs = pl.DataFrame(
        list(allowed), schema={"cluster": pl.String(), "account": pl.String()}, orient="row"
    )
    return runs.join(pairs.lazy(), on=["cluster", "account"], how="semi")


def sliced_usage(runs: pl.LazyFrame, *, start: datetime, end: datetime, step: Step) -> pl.LazyFrame:
    """Return one row per run and bucket it was allocated in, clipped to [start, end).

    Columns: cluster, account, user, bucket_at, cpu_hours, gpu_hours.
    """
    every = STEPS[step]
    s = pl.max_horizontal(pl.col("start_at"), pl.lit(start, dtype=UTC_TIME))
    e = pl.min_horizontal(
        pl.col("end_at").fill_null(pl.lit(end, dtype=UTC_TIME)), pl.lit(end, dtype=UTC_TIME)
    )
    bucket_end = pl.col("bucket_at").dt.offset_by(every)
    overlap_s = (
        pl.min_horizontal(pl.col("e"), bucket_end)
        - pl.max_horizontal(pl.col("s"), pl.col("bucket_at"))
    ).dt.total_microseconds() / 1e6
    return (
        runs.filter(pl.col("start_at").is_not_null())
        .with_columns(s=s, e=e)
        .filter(pl.col("e") > pl.col("s"))
        .with_columns(
            bucket_at=pl.datetime_ranges(pl.col("s").dt.truncate(every), pl.col("e"), every)
        )
        .explode("bucket_at")
        .with_columns(hours=overlap_s / 3600)
        .filter(pl.col("hours") > 0)
        .select(
            "cluster",
            "account",
            "user",
            "bucket_at",
            cpu_hours=pl.col("hours") * pl.col("alloc_cpus").fill_null(0),
            gpu_hours=pl.col("hours") * pl.col("alloc_gpus").fill_null(0),
        )
    )


def usage_series(
    runs: pl.LazyFrame,
    *,
    start: datetime,
    end: datetime,
    step: Step,
    by: SeriesBy,
    top: int,
) -> pl.DataFrame:
    """Return CPU-hours and GPU-hours per bucket and series (``USAGE_SERIES``).

    ``runs`` has cluster, account, user, alloc_cpus, alloc_gpus, start_at, end_at. A series is
    the run's ``by`` column, summed over clusters; per resource the ``top`` series with the
    most hours in the window keep their name, the others become ``other``. Rows with no hours
    are left out. Sorted by resource, bucket and rank.
    """
    sliced = sliced_usage(runs, start=start, end=end, step=step)
    long = (
        sliced.unpivot(
            index=["bucket_at", by],
            on=["cpu_hours", "gpu_hours"],
            variable_name="resource",
            value_name="hours",
        )
        .with_columns(pl.col("resource").str.strip_suffix("_hours"))
        .filter(pl.col("hours") > 0)
        .rename({by: "key"})
    )
    totals = (
        long.group_by("resource", "key")
        .agg(pl.col("hours").sum().alias("total"))
        # ties in total keep a stable order: by name
        .sort("resource", "total", "key", descending=[False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("resource").cast(pl.Int32))
    )
    named = long.join(totals.select("resource", "key", "rank"), on=["resource", "key"])
    kept = pl.col("rank") <= top
    frame = (
        named.with_columns(
            series=pl.when(kept).then(pl.col("key")).otherwise(pl.lit(OTHER)),
            series_rank=pl.when(kept).then(pl.col("rank")).otherwise(pl.lit(top + 1)),
        )
        .group_by("bucket_at", "resource", "series", "series_rank")
        .agg(pl.col("hours").sum())
        .sort("resource", "bucket_at", "series_rank")
        .collect()
    )
    return frame.select([pl.col(name).cast(dtype) for name, dtype in USAGE_SERIES.items()])
