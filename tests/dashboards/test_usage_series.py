"""Usage over time and the dashboard frames against values computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pytest

from models.dashboard_data import (
    burndown_points,
    compliance_status,
    ingest_daily,
    ingest_table,
    share_level,
)
from models.fairshare.frames import FACTORS, USAGE_SERIES
from models.fairshare.usage_series import OTHER, bucket_count, runs_within, usage_series
from models.money.frames import BURNDOWN_COLUMNS


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


# 2026-03-02 is a Monday.
RUNS = pl.DataFrame(
    {
        "cluster": ["c", "c", "c", "c", "d"],
        "account": ["a", "b", "a", "z", "a"],
        "user": ["u1", "u2", "u1", "u3", "u4"],
        "alloc_cpus": [2, 4, 1, 8, 3],
        "alloc_gpus": [0, 1, None, 0, 2],
        # over midnight; one day; still running; before the window; another cluster
        "start_at": [at(2, 23), at(3, 6), at(4, 0), at(1, 0), at(3, 12)],
        "end_at": [at(3, 1), at(3, 8), None, at(1, 10), at(3, 13)],
    }
)
START, END = at(2), at(4, 12)


def series(**kwargs: object) -> dict[tuple[str, str, str], float]:
    frame = usage_series(RUNS.lazy(), start=START, end=END, **kwargs)  # type: ignore[arg-type]
    assert frame.schema == pl.Schema(USAGE_SERIES)
    return {
        (f"{b:%m-%d}", r, s): h
        for b, r, s, h in frame.select("bucket_at", "resource", "series", "hours").iter_rows()
    }


def test_daily_slices_split_runs_at_midnight_and_clip_the_window() -> None:
    got = series(step="day", by="account", top=5)
    assert got == pytest.approx(
        {
            ("03-02", "cpu", "a"): 2.0,  # 23:00-24:00 x 2 CPUs
            ("03-03", "cpu", "a"): 2.0 + 3.0,  # 00:00-01:00 x 2, and cluster d 1 h x 3
            ("03-03", "cpu", "b"): 8.0,  # 2 h x 4 CPUs
            ("03-03", "gpu", "b"): 2.0,  # 2 h x 1 GPU
            ("03-03", "gpu", "a"): 2.0,  # 1 h x 2 GPUs on cluster d
            ("03-04", "cpu", "a"): 12.0,  # running: counted to the window's end
        }
    )
    # the run before the window (account z) is not there at all
    assert not [k for k in got if k[2] == "z"]


def test_top_n_folds_the_rest_into_other_per_resource() -> None:
    got = series(step="day", by="account", top=1)
    # CPU: a (19 h) beats b (8 h); GPU: a and b tie at 2 h and the name breaks the tie
    assert got == pytest.approx(
        {
            ("03-02", "cpu", "a"): 2.0,
            ("03-03", "cpu", "a"): 5.0,
            ("03-03", "cpu", OTHER): 8.0,
            ("03-03", "gpu", "a"): 2.0,
            ("03-03", "gpu", OTHER): 2.0,
            ("03-04", "cpu", "a"): 12.0,
        }
    )


def test_weekly_buckets_start_on_monday_and_series_by_user() -> None:
    got = series(step="week", by="user", top=5)
    assert got == pytest.approx(
        {
            ("03-02", "cpu", "u1"): 4.0 + 12.0,
            ("03-02", "cpu", "u2"): 8.0,
            ("03-02", "cpu", "u4"): 3.0,
            ("03-02", "gpu", "u2"): 2.0,
            ("03-02", "gpu", "u4"): 2.0,
        }
    )


def test_scope_keeps_only_the_allowed_accounts() -> None:
    kept = runs_within(RUNS.lazy(), {("c", "a"), ("c", "z")}).collect()
    assert sorted(kept.get_column("user").to_list()) == ["u1", "u1", "u3"]


def test_bucket_count_bounds_the_rows() -> None:
    assert bucket_count(start=START, end=END, step="day") >= 3
    frame = usage_series(RUNS.lazy(), start=START, end=END, step="day", by="account", top=1)
    buckets = bucket_count(start=START, end=END, step="day")
    assert frame.height <= buckets * 2 * 2


def _factors(
    rows: list[tuple[str, str, str | None, int | None, bool, float, float | None, float | None]],
) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows,
        schema=[
            "account",
            "user",
            "parent_account",
            "raw_shares",
            "shares_parent",
            "raw_usage",
            "level_fs",
            "fairshare",
        ],
        orient="row",
    ).with_columns(cluster=pl.lit("c"))
    return frame.select(
        [
            (pl.col(n) if n in frame.columns else pl.lit(None)).cast(t).alias(n)
            for n, t in FACTORS.items()
        ]
    )


def test_share_level_shows_s_u_and_fair_tree_order() -> None:
    factors = _factors(
        [
            ("root", "", None, 1, False, 100.0, None, None),
            ("x", "", "root", 3, False, 75.0, 1.0, None),  # S 0.75 U 0.75
            ("y", "", "root", 1, False, 25.0, 1.0, None),  # S 0.25 U 0.25
            ("root", "root", "root", None, True, 0.0, float("inf"), 1.0),  # Fairshare=parent
            ("x", "alice", "x", 1, False, 75.0, 1.0, 0.5),
        ]
    )
    level = share_level(factors, cluster="c", account="root")
    rows = {r["name"]: r for r in level.iter_rows(named=True)}
    assert level.get_column("name").to_list()[0] == "root"  # infinite LevelFS first
    assert rows["x"]["shares_share"] == pytest.approx(0.75)
    assert rows["y"]["shares_share"] == pytest.approx(0.25)
    assert rows["y"]["usage_share"] == pytest.approx(0.25)
    assert rows["root"]["shares_share"] is None and rows["root"]["level_fs_text"] == "inf"
    assert rows["root"]["level_fs"] is None  # JSON has no infinity
    assert rows["x"]["kind"] == "account" and rows["root"]["kind"] == "user"
    assert share_level(factors, cluster="c", account="x").get_column("name").to_list() == ["alice"]
    assert share_level(factors, cluster="c", account="nobody").is_empty()


def test_ingest_daily_and_table() -> None:
    batches = pl.DataFrame(
        {
            "source": ["s1", "s1", "s2"],
            "finished_at": [at(2, 1), at(2, 5), at(3, 1)],
            "runs_landed": [10, 5, 7],
            "quarantined": [1, 0, 2],
        }
    )
    daily = ingest_daily(batches)
    got = {(f"{d:%d}", s, m): c for d, s, m, c in daily.iter_rows()}
    assert got == {
        ("02", "s1", "batches"): 2,
        ("02", "s1", "quarantined"): 1,
        ("02", "s1", "runs landed"): 15,
        ("03", "s2", "batches"): 1,
        ("03", "s2", "quarantined"): 2,
        ("03", "s2", "runs landed"): 7,
    }
    states = pl.DataFrame(
        {
            "source": ["s1"],
            "last_success_at": [at(2, 5)],
            "consecutive_failures": [3],
            "last_error": ["sacct exited 1"],
        }
    )
    totals = pl.DataFrame(
        {
            "source": ["s1", "s2"],
            "batches": [2, 1],
            "runs_landed": [15, 7],
            "quarantined": [1, 2],
            "last_finished_at": [at(2, 5), at(3, 1)],
        }
    )
    table = ingest_table(states, totals, as_of=at(3, 2))
    cells = {(s, f): v for s, f, _, v in table.iter_rows()}
    assert cells[("s1", "last success")] == "21 h ago"
    assert cells[("s1", "failures in a row")] == "3"
    assert cells[("s1", "last error")] == "sacct exited 1"
    assert cells[("s2", "last success")] == "60 min ago"  # pushed: its last batch
    assert cells[("s2", "quarantined")] == "2"


def test_burndown_points_join_the_forecast_to_the_last_actual_day() -> None:
    burndown = pl.DataFrame(
        [
            (date(2026, 3, 1), Decimal("10"), Decimal("90"), False),
            (date(2026, 3, 2), Decimal("30"), Decimal("70"), False),
            (date(2026, 3, 3), Decimal("50"), Decimal("50"), True),
        ],
        schema=BURNDOWN_COLUMNS,
        orient="row",
    )
    points = burndown_points(burndown)
    assert points.rows() == [
        (date(2026, 3, 1), "spent so far", 90.0, 10.0),
        (date(2026, 3, 2), "spent so far", 70.0, 30.0),
        (date(2026, 3, 2), "forecast", 70.0, 30.0),
        (date(2026, 3, 3), "forecast", 50.0, 50.0),
    ]


def test_compliance_status_counts_runs_per_grant_verdict_and_rule() -> None:
    verdicts = pl.DataFrame(
        {
            "run_key": ["r1", "r2", "r3", "r4"],
            "grant_id": ["g", "g", "g", "h"],
            "regime": ["HIPAA", "HIPAA", "HIPAA", "ITAR"],
            "verdict": ["approved", "violation", "violation", "unknown"],
            "rule": [None, "node_not_certified", "node_not_certified", "no_node_list"],
        }
    )
    assert compliance_status(verdicts).rows() == [
        ("g", "HIPAA", "approved", "", 1),
        ("g", "HIPAA", "violation", "node_not_certified", 2),
        ("h", "ITAR", "unknown", "no_node_list", 1),
    ]
