"""The policy's ``fairshare.count_requeued_runs``: every run of a requeued job counts (Slurm's
way, the default), or only its last run (latest submit).

Golden case, no decay (usage = billing x seconds), computed by hand:

- alice's job 42 was requeued: run 1 (4 CPUs, 00:10-01:10, 3600 s, REQUEUED), run 2 (4 CPUs,
  01:20-03:20, 7200 s); bob's job 43 ran once (4 CPUs, 2.5 h = 9000 s).
- every run: alice 4 x (3600 + 7200) = 43200, bob 4 x 9000 = 36000; total 79200. With equal
  shares (S = 0.5) LevelFS alice = 0.5 / (43200/79200) = 0.91667, bob = 0.5 / (36000/79200) =
  1.1: bob ranks first (FairShare 1.0), alice 0.5.
- the last run only: alice 4 x 7200 = 28800, bob 36000; total 64800. LevelFS alice =
  0.5 / (28800/64800) = 1.125, bob = 0.5 / (36000/64800) = 0.9: alice 1.0, bob 0.5.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from ingest.load import load_sacct_file
from models.fairshare.factors import compute_factors
from models.fairshare.usage import usage_rates
from models.policy import load_policy_text
from models.store import open_store, read_runs
from tests.kit import site_policy

HEADER = (
    "JobID|JobIDRaw|Cluster|Partition|QOS|Account|User|Submit|Eligible|Start|End|"
    "ElapsedRaw|Timelimit|ExitCode|State|NNodes|NCPUS|AllocTRES|NodeList|JobName"
)
LINES = [  # sacct --duplicates: both runs of job 42, one JobIDRaw
    "42|42|lab|cpu|normal|chem|alice|2026-11-01T00:00:00|2026-11-01T00:00:00|2026-11-01T00:10:00|"
    "2026-11-01T01:10:00|3600|05:00:00|0:0|REQUEUED|1|4|billing=4,cpu=4,node=1|n01|a",
    "42|42|lab|cpu|normal|chem|alice|2026-11-01T01:11:00|2026-11-01T01:11:00|2026-11-01T01:20:00|"
    "2026-11-01T03:20:00|7200|05:00:00|0:0|COMPLETED|1|4|billing=4,cpu=4,node=1|n01|a",
    "43|43|lab|cpu|normal|chem|bob|2026-11-01T00:00:00|2026-11-01T00:00:00|2026-11-01T00:30:00|"
    "2026-11-01T03:00:00|9000|05:00:00|0:0|COMPLETED|1|4|billing=4,cpu=4,node=1|n02|b",
]
AS_OF = datetime(2026, 11, 2, tzinfo=UTC)


def policy_toml(count: str) -> str:
    """Return the site's policy with ``fairshare.count_requeued_runs = count``."""
    extra = f"[fairshare]\ncount_requeued_runs = {count}\n"
    return site_policy({"chem": ["alice", "bob"]}, half_life_s=0, extra=extra)


@pytest.fixture
def runs(tmp_path: Path) -> pl.DataFrame:
    path = tmp_path / "rq.txt"
    path.write_text("\n".join([HEADER, *LINES]) + "\n", encoding="utf-8")
    con = open_store(tmp_path / "s.duckdb")
    assert load_sacct_file(con, path).summary.runs_new == 3
    frame = read_runs(con)  # the columns the service reads
    con.close()
    return frame


@pytest.mark.parametrize(
    ("count", "usage", "factor"),
    [
        ("true", {"alice": 43200.0, "bob": 36000.0}, {"alice": 0.5, "bob": 1.0}),
        ("false", {"alice": 28800.0, "bob": 36000.0}, {"alice": 1.0, "bob": 0.5}),
    ],
)
def test_requeued_runs_count_as_the_policy_says(
    runs: pl.DataFrame, count: str, usage: dict[str, float], factor: dict[str, float]
) -> None:
    policy = load_policy_text(policy_toml(count))
    factors = compute_factors(runs.lazy(), policy, as_of=AS_OF).filter(pl.col("user") != "")
    got = {r["user"]: (r["raw_usage"], r["fairshare"]) for r in factors.iter_rows(named=True)}
    assert got == {
        user: (pytest.approx(usage[user]), pytest.approx(factor[user])) for user in usage
    }


def test_only_the_earlier_run_of_the_job_stops_counting(runs: pl.DataFrame) -> None:
    policy = load_policy_text(policy_toml("false"))
    rated = usage_rates(runs.lazy(), policy).collect().sort("submit_at", "user")
    assert rated.select("user", "state", "usage_factor").rows() == [
        ("alice", "REQUEUED", 0.0),
        ("bob", "COMPLETED", 1.0),
        ("alice", "COMPLETED", 1.0),
    ]
    with pytest.raises(ValueError, match="job_id_raw"):
        usage_rates(runs.drop("job_id_raw").lazy(), policy)
