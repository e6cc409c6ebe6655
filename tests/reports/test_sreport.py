"""sreport-style reports against the hand-computed ``sreport_small`` site, units and formats."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from models.frames import RUNS
from models.policy import load_policy
from reports.sreport import (
    banner,
    build_account_utilization_by_user,
    build_cluster_utilization,
    build_job_sizes_by_account,
    build_user_top_usage,
    build_user_utilization_by_account,
    format_parsable,
    format_text,
    in_units,
    size_labels,
    to_json,
    window_usage,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sreport_small"
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)
TOTAL_S = 1_296_539.0


def _runs() -> pl.LazyFrame:
    raw = pl.read_csv(GOLDEN / "runs.csv", infer_schema=False)
    columns = ["cluster", "account", "user", "alloc_cpus", "alloc_gpus", "start_at", "end_at"]
    return raw.select(
        *(
            pl.col(c).str.to_datetime(time_zone="UTC").cast(RUNS[c])
            if c.endswith("_at")
            else pl.col(c).cast(RUNS[c])
            for c in columns
        )
    ).lazy()


def _assocs() -> pl.DataFrame:
    return load_policy(GOLDEN / "policy.toml").association_frame()


def _expected(name: str) -> list[str]:
    return (GOLDEN / name).read_text(encoding="utf-8").splitlines()


def _report(report: str, df: pl.DataFrame, *, unit: str, total_s: float | None, top: int = 10):
    shown = in_units(df, report, unit=unit, total_s=total_s)
    head = banner(report, start=START, end=END, unit=unit, top=top)
    return head + format_parsable(shown)


def test_account_utilization_by_user_minutes_matches_golden() -> None:
    df = build_account_utilization_by_user(_runs(), _assocs(), start=START, end=END)
    assert df.filter(pl.col("account") == "root").get_column("used_s").to_list() == [TOTAL_S]
    lines = _report("account_by_user", df, unit="minutes", total_s=TOTAL_S)
    assert lines == _expected("expected_account_by_user.txt")


def test_account_utilization_by_user_percent_matches_golden() -> None:
    df = build_account_utilization_by_user(_runs(), _assocs(), start=START, end=END)
    lines = _report("account_by_user", df, unit="percent", total_s=TOTAL_S)
    assert lines == _expected("expected_account_by_user_percent.txt")


def test_percent_of_cluster_capacity_leaves_root_below_100() -> None:
    df = build_account_utilization_by_user(_runs(), _assocs(), start=START, end=END)
    shown = in_units(df, "account_by_user", unit="percent", total_s=512 * 86_400.0)
    assert shown.get_column("Used").to_list()[0] == 2.93  # 1296539 / 44236800


def test_user_utilization_by_account_hours_matches_golden() -> None:
    df = build_user_utilization_by_account(_runs(), start=START, end=END)
    lines = _report("user_by_account", df, unit="hours", total_s=TOTAL_S)
    assert lines == _expected("expected_user_by_account_hours.txt")


def test_top_usage_grouped_matches_golden() -> None:
    df = build_user_top_usage(_runs(), start=START, end=END, top=3, group=True)
    lines = _report("top_usage", df, unit="minutes", total_s=TOTAL_S, top=3)
    assert lines == _expected("expected_top_usage.txt")


def test_top_usage_ungrouped_keeps_user_account_rows() -> None:
    df = build_user_top_usage(_runs(), start=START, end=END, top=5)
    assert df.select("login", "account").rows() == [
        ("carol", "astro"),
        ("bob", "phys"),
        ("erin", "chem"),
        ("alice", "chem"),
        ("alice", "phys"),
    ]


def test_job_sizes_by_account_matches_golden() -> None:
    df = build_job_sizes_by_account(_runs(), _assocs(), start=START, end=END)
    lines = _report("job_sizes", df, unit="minutes", total_s=TOTAL_S)
    assert lines == _expected("expected_job_sizes.txt")


def test_job_sizes_custom_grouping_and_flat_view() -> None:
    df = build_job_sizes_by_account(
        _runs(), _assocs(), start=START, end=END, grouping=[50, 250], flat=True
    )
    assert df.columns == ["cluster", "account", "0-49 CPUs", "50-249 CPUs", ">= 250 CPUs"]
    assert df.rows() == [
        ("c", "astro", 0.0, 0.0, 1_080_000.0),
        ("c", "chem", 72_539.0, 0.0, 0.0),
        ("c", "phys", 28_800.0, 115_200.0, 0.0),
    ]


def test_size_labels_and_bad_grouping() -> None:
    assert size_labels([50, 250, 500, 1000]) == [
        "0-49 CPUs",
        "50-249 CPUs",
        "250-499 CPUs",
        "500-999 CPUs",
        ">= 1000 CPUs",
    ]
    with pytest.raises(ValueError, match="increasing"):
        build_job_sizes_by_account(_runs(), None, start=START, end=END, grouping=[250, 50])


def test_cluster_utilization_with_capacity_matches_golden() -> None:
    df = build_cluster_utilization(_runs(), start=START, end=END, cluster_capacity={"c": 512})
    lines = _report("utilization", df, unit="minutes", total_s=512 * 86_400.0)
    assert lines == _expected("expected_utilization.txt")


def test_cluster_utilization_without_capacity_reports_only_allocated() -> None:
    df = build_cluster_utilization(_runs(), start=START, end=END)
    row = df.row(0, named=True)
    assert row["allocated_s"] == TOTAL_S
    assert row["idle_s"] is None and row["reported_s"] is None and row["down_s"] is None
    assert format_parsable(in_units(df, "utilization", unit="hours"))[1] == "c|360|||||"


def test_units_convert_and_truncate() -> None:
    df = build_user_utilization_by_account(_runs(), start=START, end=END)
    erin = df.filter(pl.col("login") == "erin")
    assert erin.get_column("used_s").to_list() == [43_680.0]
    for unit, value in [("seconds", 43_680), ("minutes", 728), ("hours", 12)]:
        assert in_units(erin, "user_by_account", unit=unit).get_column("Used").to_list() == [value]
    assert in_units(erin, "user_by_account", unit="percent", total_s=TOTAL_S)["Used"][0] == 3.37
    with pytest.raises(ValueError, match="unknown unit"):
        in_units(erin, "user_by_account", unit="days")


def test_gpu_tres_counts_gpu_seconds_and_names_the_tres() -> None:
    df = build_user_utilization_by_account(_runs(), start=START, end=END, tres="gres/gpu")
    assert df.select("login", "used_s").rows() == [("dave", 118.0)]
    shown = in_units(df, "user_by_account", unit="seconds", tres="gres/gpu")
    assert format_parsable(shown) == [
        "Cluster|Login|Proper Name|Account|TRES Name|Used|Energy",
        "c|dave||chem|gres/gpu|118|0",
    ]
    assert banner("user_by_account", start=START, end=END, tres="gres/gpu")[2] == (
        "Usage reported in TRES Minutes"
    )


def test_window_clips_to_the_second_and_rejects_empty_windows() -> None:
    used = window_usage(_runs(), start=START, end=END, tres="cpu").collect()
    assert sorted(used.get_column("window_s").to_list()) == [59, 1800, 2730, 3600, 7200, 14400]
    with pytest.raises(ValueError, match="not after"):
        window_usage(_runs(), start=END, end=START, tres="cpu")


def test_parsable_has_no_trailing_pipe_and_text_aligns() -> None:
    df = build_account_utilization_by_user(_runs(), _assocs(), start=START, end=END)
    lines = format_parsable(in_units(df, "account_by_user", unit="minutes"))
    assert all(not line.endswith("|") for line in lines)
    text = format_text(
        in_units(df, "account_by_user", unit="minutes").with_columns(df["depth"]),
        indent="Account",
    )
    assert text[0].split() == ["Cluster", "Account", "Login", "Proper", "Name", "Used", "Energy"]
    assert text[-1].startswith("c" + " " * 7 + "   astro carol")  # user row at depth 3
    assert text[-1].split()[-2:] == ["18000", "0"]
    assert "depth" not in text[0]


def test_json_envelope_counts_rows() -> None:
    df = build_user_utilization_by_account(_runs(), start=START, end=END)
    doc = to_json(in_units(df, "user_by_account", unit="minutes"))
    assert doc["count"] == 6
    assert doc["data"][0] == {  # type: ignore[index]
        "Cluster": "c",
        "Login": "carol",
        "Proper Name": "",
        "Account": "astro",
        "Used": 18000,
        "Energy": 0,
    }


# The command line, on the same site landed from a sacct --parsable2 file into a real store.


@pytest.fixture(scope="module")
def site_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from api.cli import app

    db = tmp_path_factory.mktemp("sreport") / "site.duckdb"
    runner = CliRunner()
    policy = runner.invoke(app, ["--db", str(db), "policy", "load", str(GOLDEN / "policy.toml")])
    assert policy.exit_code == 0, policy.output
    landed = runner.invoke(app, ["--db", str(db), "ingest", "file", str(GOLDEN / "sacct.txt")])
    assert landed.exit_code == 0, landed.output
    return db


def _cli(db: Path, *args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from api.cli import app

    result = CliRunner().invoke(app, ["--db", str(db), "sreport", *args])
    return result.exit_code, result.output


WINDOW = ("start=2026-11-01", "end=2026-11-02T00:00:00")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("cluster", "AccountUtilizationByUser", *WINDOW, "-P"), "expected_account_by_user.txt"),
        (
            ("cluster", "accountutilizationbyuser", *WINDOW, "-t", "percent", "-P"),
            "expected_account_by_user_percent.txt",
        ),
        (
            ("cluster", "UserUtilizationByAccount", *WINDOW, "-t", "hours", "-P"),
            "expected_user_by_account_hours.txt",
        ),
        (("user", "TopUsage", *WINDOW, "topcount=3", "group", "-P"), "expected_top_usage.txt"),
        (("job", "SizesByAccount", *WINDOW, "-P"), "expected_job_sizes.txt"),
        (
            ("cluster", "Utilization", *WINDOW, "--capacity", "512", "-P"),
            "expected_utilization.txt",
        ),
    ],
)
def test_cli_prints_what_sreport_would(site_db: Path, args: tuple[str, ...], expected: str) -> None:
    code, output = _cli(site_db, *args)
    assert code == 0, output
    assert output.splitlines() == _expected(expected)


def test_cli_noheader_csv_and_json(site_db: Path) -> None:
    code, output = _cli(site_db, "job", "SizesByAccount", *WINDOW, "grouping=50,250", "-P", "-n")
    assert code == 0, output
    assert output.splitlines() == ["c|chem|1208|0|0|5.59%", "c|phys|480|1920|18000|94.41%"]
    code, output = _cli(site_db, "user", "TopUsage", *WINDOW, "topcount=1", "--format", "csv")
    assert output.splitlines() == [
        "Cluster,Login,Proper Name,Account,Used,Energy",
        'c,carol,"",astro,18000,0',
    ]
    import json

    code, output = _cli(site_db, "cluster", "UserUtilizationByAccount", *WINDOW, "--format", "json")
    assert json.loads(output)["count"] == 6


def test_cli_default_window_is_yesterday(site_db: Path) -> None:
    code, output = _cli(site_db, "cluster", "Utilization", "-t", "h")
    assert code == 0, output
    from datetime import timedelta

    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    period = f"{yesterday.isoformat()}T00:00:00 - {yesterday.isoformat()}T23:59:59"
    assert output.splitlines()[1] == f"Cluster Utilization {period}"
    assert output.splitlines()[2] == "Usage reported in CPU Hours"


@pytest.mark.parametrize(
    "args",
    [
        ("cluster", "NoSuchReport", *WINDOW),
        ("user", "TopUsage", "topcount=x", *WINDOW),
        ("cluster", "Utilization", "start=2026-11-02", "end=2026-11-01"),
        ("cluster", "Utilization", "start=yesterday"),
        ("cluster", "Utilization", "-t", "days"),
    ],
)
def test_cli_usage_errors_exit_2(site_db: Path, args: tuple[str, ...]) -> None:
    code, output = _cli(site_db, *args)
    assert code == 2, output
