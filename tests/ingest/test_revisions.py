"""Revisions: a run that arrives again with other content is a new version, the old one kept;
a requeued job is two runs, and fair-share counts both (as Slurm does)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from ingest.load import load_sacct_file
from models.fairshare.factors import compute_factors
from models.policy import load_policy_text
from models.store import open_store, read_runs
from models.store.runs import read_run_versions
from tests.kit import site_policy

HEADER = (
    "JobID|JobIDRaw|Cluster|Partition|QOS|Account|User|Submit|Eligible|Start|End|"
    "ElapsedRaw|Timelimit|ExitCode|State|NNodes|NCPUS|AllocTRES|NodeList|JobName"
)
POLICY = site_policy({"chem": ["alice"]}, account_shares=1, user_shares=1, half_life_s=0)


def _line(job: str, submit: str, start: str, end: str, state: str, cpus: int = 4) -> str:
    seconds = int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    return (
        f"{job}|{job}|lab|cpu|normal|chem|alice|{submit}|{submit}|{start}|{end}|{seconds}|"
        f"01:00:00|0:0|{state}|1|{cpus}|billing={cpus},cpu={cpus},mem=4000M,node=1|n01|j{job}"
    )


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_a_changed_record_is_a_new_version_and_the_old_one_is_kept(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    submit = "2026-11-01T00:00:00"
    # first seen running, then as it ended, then an admin fixed its End (runaway fix)
    first = _write(tmp_path / "a.txt", _line("7", submit, submit, "2026-11-01T02:00:00", "RUNNING"))
    ended = _write(
        tmp_path / "b.txt", _line("7", submit, submit, "2026-11-01T03:00:00", "COMPLETED")
    )
    fixed = _write(
        tmp_path / "c.txt", _line("7", submit, submit, "2026-11-01T02:30:00", "COMPLETED")
    )
    batches = [load_sacct_file(con, f).summary.batch_id for f in (first, ended, ended, fixed)]
    key = "lab/7/" + str(int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()))

    versions = read_run_versions(con, key)

    assert versions["version"].to_list() == [1, 2, 3]  # the re-delivery added nothing
    assert versions["state"].to_list() == ["RUNNING", "COMPLETED", "COMPLETED"]
    assert versions["elapsed_s"].to_list() == [7200, 10800, 9000]
    assert versions["batch_id"].to_list() == [batches[0], batches[1], batches[3]]
    assert versions["is_current"].to_list() == [False, False, True]
    assert versions["superseded_by_batch"].to_list() == [batches[1], batches[3], None]
    assert versions["row_hash"].n_unique() == 3
    assert versions["superseded_at"][0] is not None and versions["superseded_at"][2] is None
    # the runs table still holds one row per run: the current version
    assert read_runs(con).filter(pl.col("run_key") == key)["elapsed_s"].to_list() == [9000]
    assert read_run_versions(con, "lab/8/0").height == 0


def test_a_requeued_job_is_two_runs_and_both_count(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    # sacct --duplicates: the requeued run (earlier Submit), then the final one, one JobIDRaw
    requeued = _line("42", "2026-11-01T00:00:00", "2026-11-01T00:10:00",
                     "2026-11-01T01:10:00", "REQUEUED")  # fmt: skip
    final = _line("42", "2026-11-01T01:11:00", "2026-11-01T01:20:00",
                  "2026-11-01T03:20:00", "COMPLETED")  # fmt: skip
    loaded = load_sacct_file(con, _write(tmp_path / "rq.txt", requeued, final))
    assert loaded.summary.runs_new == 2 and loaded.quarantine.height == 0
    runs = read_runs(con, columns=("run_key", "state", "elapsed_s", "start_at", "end_at",
                                   "cluster", "account", "user", "partition", "qos", "tres",
                                   "alloc_cpus"))  # fmt: skip
    assert sorted(runs["state"].to_list()) == ["COMPLETED", "REQUEUED"]
    assert runs["run_key"].n_unique() == 2
    assert {k.rsplit("/", 1)[0] for k in runs["run_key"]} == {"lab/42"}

    policy = load_policy_text(POLICY)
    as_of = datetime(2026, 11, 2, tzinfo=UTC)

    def alice_usage(frame: pl.DataFrame) -> float:
        factors = compute_factors(frame.lazy(), policy, as_of=as_of)
        return float(factors.filter(pl.col("user") == "alice")["raw_usage"][0])

    both = alice_usage(runs)
    # no decay: usage is billing x seconds, 4 CPUs x (1 h + 2 h) for the two runs together
    assert both == pytest.approx(4 * 3 * 3600)
    alone = [alice_usage(runs.filter(pl.col("state") == s)) for s in ("REQUEUED", "COMPLETED")]
    assert alone == [pytest.approx(4 * 3600), pytest.approx(4 * 7200)]
