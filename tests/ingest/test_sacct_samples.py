"""parse_sacct against real sacct lines and what Open XDMoD extracts from them (samples/xdmod)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ingest.sources.sacct import SacctBatch, parse_sacct
from models import frames
from models.hostlist import expand_array_indexes

SAMPLES = Path(__file__).parent / "samples" / "xdmod"
# The field order of the samples (samples/xdmod/README.md).
FIELDS = [
    "JobID", "JobIDRaw", "Cluster", "Partition", "QOS", "Account", "Group", "GID", "User", "UID",
    "Submit", "Eligible", "Start", "End", "Elapsed", "ExitCode", "State", "NNodes", "NCPUS",
    "ReqCPUS", "ReqMem", "ReqTRES", "AllocTRES", "Timelimit", "NodeList", "JobName",
]  # fmt: skip
INPUTS = sorted((SAMPLES / "input").glob("*.log"))


def parse(name: str, **kwargs: Any) -> SacctBatch:
    path = SAMPLES / "input" / name
    return parse_sacct(path.read_text(encoding="utf-8"), source=name, fields=FIELDS, **kwargs)


def expected(name: str) -> Any:
    return json.loads((SAMPLES / "output" / name).read_text(encoding="utf-8"))


def epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def test_the_samples_are_all_there() -> None:
    assert len(INPUTS) == 5
    assert all((SAMPLES / "output" / f"{p.stem}.json").exists() for p in INPUTS)


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.stem)
def test_every_sample_line_is_a_run_or_quarantined(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    batch = parse(path.name)

    assert batch.lines_read == len(lines)
    assert batch.runs.schema == pl.Schema(frames.RUNS)
    assert batch.quarantine.schema == pl.Schema(frames.QUARANTINE)
    assert batch.steps.is_empty()
    quarantined = set(batch.quarantine["line_no"])
    keys = set(batch.runs["run_key"])
    for line_no, line in enumerate(lines, start=1):
        values = dict(zip(FIELDS, line.split("|"), strict=True))
        submit = datetime.fromisoformat(values["Submit"] + "+00:00").timestamp()
        key = f"{values['Cluster']}/{values['JobIDRaw']}/{int(submit)}"
        assert (line_no in quarantined) != (key in keys), line


def test_accounting_logs_match_xdmod_field_by_field() -> None:
    batch = parse("accounting-logs.log", cluster="testresource")
    records = expected("accounting-logs.json")
    assert batch.quarantine.is_empty()
    assert batch.runs.height == len(records)

    for run, want in zip(batch.runs.iter_rows(named=True), records, strict=True):
        state = run["state"] + (f" by {run['state_by_uid']}" if run["state_by_uid"] else "")
        got = {
            "job_id": run["job_id"],
            "job_id_raw": run["job_id_raw"],
            "cluster_name": run["cluster"],
            "partition_name": run["partition"] or "",
            "qos_name": run["qos"],
            "account_name": run["account"],
            "user_name": run["user"],
            "submit_time": epoch(run["submit_at"]),
            "eligible_time": epoch(run["eligible_at"]),
            "start_time": epoch(run["start_at"]),
            "end_time": epoch(run["end_at"]),
            "elapsed": run["elapsed_s"],
            "exit_code": run["exit_code"],
            "state": state,
            "nnodes": str(run["alloc_nodes"]),
            "ncpus": str(run["alloc_cpus"]),
            "timelimit": run["timelimit_s"],
            "node_list": run["nodelist"],
            "job_name": run["job_name"],
            "ngpus": run["alloc_gpus"],
        }
        assert got == {key: want[key] for key in got}, want["job_id"]
        assert run["run_key"] == f"testresource/{want['job_id_raw']}/{want['submit_time']}"


def test_accounting_logs_tres_and_nodes() -> None:
    runs = parse("accounting-logs.log").runs
    first = runs.row(0, named=True)
    assert first["cluster"] == "ub-hpc"  # the field as sacct printed it, when not overridden
    assert first["tres"] == [
        {"name": "billing", "count": 256.0},
        {"name": "cpu", "count": 256.0},
        {"name": "mem", "count": 3000.0},
        {"name": "node", "count": 32.0},
    ]
    assert first["billing"] == 256.0
    assert first["alloc_mem_mb"] == 3000.0
    # d09n04s[01-02], ..., d13n[03,05,07-08,16] expands to the job's 32 nodes.
    assert len(first["nodes"]) == 32 == len(set(first["nodes"]))
    assert first["nodes"][7:9] == ["d09n04s01", "d09n04s02"]
    assert first["nodes"][-5:] == ["d13n03", "d13n05", "d13n07", "d13n08", "d13n16"]
    cancelled = runs.row(1, named=True)
    assert (cancelled["state"], cancelled["state_by_uid"]) == ("CANCELLED", 102216)
    gpu_only = runs.row(3, named=True)
    assert gpu_only["tres"] == [{"name": "gres/gpu", "count": 2.0}]
    assert gpu_only["eligible_at"] is None  # "Unknown"
    assert gpu_only["partition"] is None


def test_non_ended_states_are_kept() -> None:
    # XDMoD skips them; fairledger keeps them, running jobs' usage accrues.
    runs = parse("non-ended-job-state.log").runs
    assert runs["state"].to_list() == ["RUNNING", "PENDING"]
    pending = runs.row(1, named=True)
    assert pending["start_at"] is None
    assert pending["submit_at"] is not None
    assert expected("non-ended-job-state.json")[0]["debug"][1].startswith("/^Skipping")


def test_unknown_states_are_quarantined_with_field_and_reason() -> None:
    batch = parse("unknown-job-state.log")
    assert batch.runs.is_empty()
    assert batch.quarantine.select("line_no", "record_id", "field", "reason").rows() == [
        (1, "3451067", "State", "unknown state 'FOO'"),
        (2, "3483276", "State", "unknown state 'BAR'"),
    ]
    raw = (SAMPLES / "input" / "unknown-job-state.log").read_text(encoding="utf-8").splitlines()
    assert batch.quarantine["raw"].to_list() == raw
    assert batch.quarantine["source"].to_list() == ["unknown-job-state.log"] * 2
    assert len(expected("unknown-job-state.json")) == 2


def test_multibyte_job_name_is_preserved() -> None:
    runs = parse("utf8-multibyte-chars.log").runs
    assert runs["job_name"].to_list() == [
        r["job_name"] for r in expected("utf8-multibyte-chars.json")
    ]
    assert runs["job_name"].to_list() == ["aàb"]


def test_array_ranges_expand_as_xdmod_does() -> None:
    path = SAMPLES / "input" / "accounting-logs-with-job-arrays.log"
    lines = path.read_text(encoding="utf-8").splitlines()
    indexes = []
    for line in lines:
        (run,) = parse_sacct(line, source=path.name, fields=FIELDS).runs.iter_rows(named=True)
        assert run["array_job_id"] == 4103947
        indexes.append(expand_array_indexes(run["array_task_id"]))
    assert indexes == expected("accounting-logs-with-job-arrays.json")


def test_array_lines_sharing_jobidraw_and_submit_are_one_run_the_last_wins() -> None:
    # All six lines have JobIDRaw 4103947 and one Submit: revisions of one run.
    batch = parse("accounting-logs-with-job-arrays.log")
    assert batch.runs.height == 1
    assert batch.runs.row(0, named=True)["job_id"] == "4103947_[9-11,13,16-20]"
    assert batch.runs["source_line"].to_list() == [6]
    assert batch.quarantine.is_empty()
