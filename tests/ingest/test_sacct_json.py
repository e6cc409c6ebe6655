"""parse_sacct_json on both layouts (dbv0.0.38 and data_parser v0.0.40), bad jobs, fuzzed input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sources.sacct_json import json_layout, parse_sacct_json
from models import frames
from models.errors import ParseError
from tests.strategies import any_floats, examples

SAMPLES = Path(__file__).parent / "samples" / "sacct_json"
V38 = "sacct-22.05-dbv0.0.38.json"
V40 = "sacct-23.11-v0.0.40.json"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return document


def parse(document: dict[str, Any], **kwargs: Any) -> Any:
    return parse_sacct_json(json.dumps(document), source="test.json", **kwargs)


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def run(batch: Any, job_id: str) -> dict[str, Any]:
    rows = batch.runs.filter(pl.col("job_id") == job_id).to_dicts()
    assert len(rows) == 1, job_id
    row: dict[str, Any] = rows[0]
    return row


@pytest.mark.parametrize(
    ("name", "layout"), [(V38, "openapi/dbv0.0.38"), (V40, "data_parser/v0.0.40")]
)
def test_the_layout_is_detected(name: str, layout: str) -> None:
    assert json_layout(load(name), name) == layout


@pytest.mark.parametrize("name", [V38, V40])
def test_every_job_lands_with_the_contract_schema(name: str) -> None:
    batch = parse(load(name))
    assert batch.runs.schema == pl.Schema(frames.RUNS)
    assert batch.steps.schema == pl.Schema(frames.STEPS)
    assert batch.quarantine.is_empty()
    assert batch.lines_read == len(load(name)["jobs"]) == batch.runs.height
    assert batch.runs["scheduler"].unique().to_list() == ["slurm"]
    assert batch.runs["source_line"].to_list() == list(range(1, batch.runs.height + 1))


def test_dbv0_0_38_values() -> None:
    batch = parse(load(V38))
    s = 1700000000
    first = run(batch, "101")
    assert first["run_key"] == f"lab/101/{s}"
    assert (first["submit_at"], first["start_at"], first["end_at"]) == (
        at(s),
        at(s + 5),
        at(s + 65),
    )
    assert (first["elapsed_s"], first["timelimit_s"]) == (60, 3600)
    assert (first["alloc_nodes"], first["alloc_cpus"], first["alloc_mem_mb"]) == (2, 4, 4000.0)
    assert first["billing"] == 4.0 and first["nodes"] == ["c1", "c2"]
    assert first["reservation"] is None  # dbv0.0.38 prints an unset name as 0
    task = run(batch, "102_3")
    assert (task["job_id_raw"], task["array_job_id"], task["array_task_id"]) == ("103", 102, "3")
    assert (task["alloc_gpus"], task["gpu_type"], task["state"]) == (2, "a100", "TIMEOUT")
    assert task["exit_code"] == "0:15" and task["job_name"] == "训练-ε"
    assert {"name": "gres/gpu:a100", "count": 2.0} in task["tres"]
    never = run(batch, "104")
    assert (
        never["start_at"] is None and never["nodes"] == [] and never["nodelist"] == "None assigned"
    )
    het = run(batch, "105+0")
    assert (het["het_job_id"], het["het_offset"]) == (105, 0)
    # written from the docs ("FAILED", 1); real 22.05 writes "SUCCESS", 0: see test_json_sources
    assert (het["state"], het["exit_code"]) == ("FAILED", "1:0")


def test_dbv0_0_38_steps_belong_to_their_run() -> None:
    steps = parse(load(V38)).steps
    assert steps["job_id"].to_list() == ["101.batch", "101.extern", "101.0"]
    assert steps["run_key"].unique().to_list() == ["lab/101/1700000000"]
    assert steps["step_key"].to_list()[0] == "lab/101.batch/1700000000"
    extern = steps.row(1, named=True)
    assert (extern["alloc_cpus"], extern["alloc_nodes"], extern["nodelist"]) == (4, 2, "c[1-2]")


def test_data_parser_v0_0_40_values() -> None:
    batch = parse(load(V40))
    t = 1730000000
    first = run(batch, "2001")
    assert (first["elapsed_s"], first["timelimit_s"], first["alloc_mem_mb"]) == (120, 3600, 4096.0)
    task = run(batch, "2000_7")
    assert (task["array_task_id"], task["state"], task["gpu_type"]) == (
        "7",
        "OUT_OF_MEMORY",
        "h100",
    )
    assert task["job_name"] == "ジョブ"
    pending = run(batch, "2003")
    assert pending["state"] == "PENDING" and pending["timelimit_s"] is None  # infinite limit
    assert pending["start_at"] is None and pending["end_at"] is None
    running = run(batch, "2004")
    assert running["start_at"] == at(t + 61) and running["end_at"] is None
    steps = batch.steps
    assert steps["state"].to_list() == ["COMPLETED", "COMPLETED"]
    assert steps["start_at"].to_list() == [at(t + 3), at(t + 3)]  # number objects


def test_cluster_replaces_the_jobs_cluster() -> None:
    batch = parse(load(V40), cluster="prod")
    assert batch.runs["run_key"].str.starts_with("prod/").all()
    assert batch.steps["step_key"].str.starts_with("prod/").all()


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda j: j["time"].update(submission=0), "time.submission", "missing"),
        (lambda j: j.pop("user") and j["association"].pop("user"), "association.user", "missing"),
        (lambda j: j["state"].update(current="EXPLODED"), "state.current", "unknown state"),
        (lambda j: j.update(job_id="abc"), "job_id", "expected a number"),
        (lambda j: j.update(job_id=-4), "job_id", "positive job id"),
        (lambda j: j.update(nodes="c[1-"), "nodes", "unbalanced"),
        (lambda j: j["tres"]["allocated"].append({"count": 3}), "tres.allocated[4]", "type"),
        (lambda j: j["time"].update(start="soon"), "time.start", "expected a number"),
        (lambda j: j["time"].update(end=10**15), "time.end", "expected epoch seconds"),
    ],
)
def test_a_bad_job_is_quarantined_and_the_others_land(mutate: Any, field: str, reason: str) -> None:
    document = load(V38)
    mutate(document["jobs"][0])
    batch = parse(document)
    assert batch.runs.height == 3 and batch.steps.is_empty()  # job 1's steps go with it
    bad = batch.quarantine.row(0, named=True)
    assert (bad["line_no"], bad["field"]) == (1, field)
    assert reason in bad["reason"]
    assert json.loads(bad["raw"])["name"] == "sim run"


def test_a_bad_step_is_quarantined_alone() -> None:
    document = load(V38)
    document["jobs"][0]["steps"][1]["state"] = None
    batch = parse(document)
    assert batch.runs.height == 4 and batch.steps["step_id"].to_list() == ["batch", "0"]
    bad = batch.quarantine.row(0, named=True)
    assert (bad["line_no"], bad["record_id"], bad["field"]) == (1, "101", "steps[1].state")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected a JSON object"),
        ('{"jobs": []}', "unknown sacct --json layout"),
        ('{"meta": {"plugin": {"type": "openapi/dbv0.0.36"}}, "jobs": []}', "dbv0.0.36"),
        ('{"meta": {"plugin": {"data_parser": "data_parser/v0.0.99"}}, "jobs": []}', "v0.0.99"),
    ],
)
def test_an_unreadable_document_raises(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace(".", r"\.").replace("[", r"\[")):
        parse_sacct_json(text, source="x.json")


def test_reported_errors_refuse_the_document() -> None:
    document = load(V40)
    document["errors"] = [{"error": "Unable to query", "error_number": 9001}]
    with pytest.raises(ParseError, match="Unable to query"):
        parse(document)


def _mutations() -> st.SearchStrategy[tuple[int, str, Any]]:
    paths = ["job_id", "user", "account", "cluster", "nodes", "name", "state", "time",
             "tres", "array", "het", "steps", "partition", "exit_code", "time.submission",
             "time.end", "time.limit", "array.job_id", "array.task_id", "het.job_offset",
             "het.job_id", "allocation_nodes", "tres.allocated", "state.current"]  # fmt: skip
    numbers = st.one_of(
        st.integers(-(2**70), 2**70), any_floats,
        st.fixed_dictionaries({"set": st.booleans(), "infinite": st.booleans(),
                               "number": st.integers(-(2**40), 2**40)}),
    )  # fmt: skip
    junk = st.one_of(
        st.none(), st.booleans(), numbers, st.text(max_size=8),
        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers()),
        st.lists(st.fixed_dictionaries({"type": st.sampled_from(["cpu", "node", "gres"]),
                                        "name": st.sampled_from(["", "gpu", None]),
                                        "count": numbers}), max_size=3),
    )  # fmt: skip
    return st.tuples(st.integers(0, 3), st.sampled_from(paths), junk)


def _put(job: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(job.get(part), dict):
            job[part] = {}
        job = job[part]
    job[last] = value


@pytest.mark.slow
@settings(max_examples=examples(300), deadline=None)
@given(st.lists(_mutations(), max_size=6), st.sampled_from([V38, V40]))
def test_fuzzed_jobs_never_crash_and_every_job_is_accounted_for(
    mutations: list[tuple[int, str, Any]], name: str
) -> None:
    document = copy.deepcopy(_DOCS[name])
    for index, path, value in mutations:
        _put(document["jobs"][index], path, value)
    batch = parse(document)
    refused_jobs = set(
        batch.quarantine.filter(~pl.col("field").str.starts_with("steps["))["line_no"]
    )
    landed = set(batch.runs["source_line"])
    assert landed | refused_jobs == {1, 2, 3, 4} and not landed & refused_jobs
    assert batch.quarantine["reason"].is_not_null().all()


_DOCS = {V38: load(V38), V40: load(V40)}
