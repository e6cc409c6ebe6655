"""parse_jobs_jsonl: the scheduler-neutral JSON Lines record, and fuzzed input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sources.jobs_jsonl import JobRecord, parse_jobs_jsonl
from models import frames
from tests.strategies import examples, one_line_text

GOOD: dict[str, Any] = {
    "scheduler": "flux",
    "cluster": "tioga",
    "job_id": "f2zQxA7",
    "user": "ana",
    "account": "climate",
    "submit_at": "2025-03-01T10:00:00Z",
    "start_at": "2025-03-01T11:00:00+01:00",
    "end_at": 1740830400,
    "state": "COMPLETED",
    "partition": "pbatch",
    "alloc_cpus": 96,
    "alloc_mem_mb": 4096,
    "tres": {"cpu": 96, "gres/gpu:mi250x": 4, "node": 2},
    "nodelist": "tioga[10-11]",
    "job_name": "模拟",
}


def line(**changes: Any) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}, ensure_ascii=False)


def parse(*lines: str) -> Any:
    return parse_jobs_jsonl("\n".join(lines), source="push")


def test_a_good_record_becomes_a_run() -> None:
    batch = parse(line())
    assert batch.quarantine.is_empty() and batch.runs.schema == pl.Schema(frames.RUNS)
    run = batch.runs.row(0, named=True)
    submit = datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert run["run_key"] == f"tioga/f2zQxA7/{int(submit.timestamp())}"
    assert (run["scheduler"], run["submit_at"]) == ("flux", submit)
    assert run["start_at"] == datetime(2025, 3, 1, 10, tzinfo=UTC)  # +01:00 read as UTC
    assert run["end_at"] == datetime.fromtimestamp(1740830400, UTC)
    assert run["elapsed_s"] == 1740830400 - int(submit.timestamp())
    assert (run["alloc_cpus"], run["alloc_mem_mb"], run["alloc_nodes"]) == (96, 4096.0, 2)
    assert (run["alloc_gpus"], run["gpu_type"]) == (4, "mi250x")
    assert run["nodes"] == ["tioga10", "tioga11"] and run["job_name"] == "模拟"
    assert (run["source"], run["source_line"]) == ("push", 1)


def test_run_id_joins_the_key_and_a_repeated_key_keeps_the_last_line() -> None:
    batch = parse(line(run_id="attempt-1"), line(run_id="attempt-2"), line(), line(state="FAILED"))
    keys = batch.runs["run_key"].to_list()
    assert keys[0].endswith("/attempt-1") and keys[1].endswith("/attempt-2")
    assert batch.runs.height == 3
    assert batch.runs.filter(pl.col("source_line") == 4)["state"].to_list() == ["FAILED"]


def test_running_and_pending_records() -> None:
    batch = parse(
        line(job_id="1", state="RUNNING", end_at=None),
        line(job_id="2", state="PENDING", start_at=None, end_at=None),
    )
    assert batch.quarantine.is_empty()
    assert batch.runs["elapsed_s"].to_list() == [None, None]


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        (line(user=...), "user", "Field required"),
        (line(submit_at="2025-03-01T10:00:00"), "submit_at", "timezone"),
        (line(submit_at="yesterday"), "submit_at", "datetime"),
        (line(state="DONE"), "state", "unknown state 'DONE'"),
        (line(job_id="ns/job"), "job_id", "pattern"),
        (line(alloc_cpus=-1), "alloc_cpus", "greater than or equal to 0"),
        (line(tres={"cpu": "many"}), "tres.cpu", "number"),
        (line(colour="red"), "colour", "Extra inputs"),
        (line(end_at="2025-03-01T09:00:00Z"), "", "end_at is before start_at"),
        (line(state="RUNNING"), "", "a RUNNING run has no end_at"),
        (line(nodelist="n[1-"), "nodelist", "unbalanced"),
        ("{not json", "", "not JSON"),
        ("[1, 2]", "", "expected a JSON object"),
    ],
)
def test_a_bad_line_is_quarantined_with_field_and_reason(bad: str, field: str, reason: str) -> None:
    batch = parse(line(job_id="1"), bad, line(job_id="3"))
    assert batch.runs["job_id"].to_list() == ["1", "3"]
    refused = batch.quarantine.row(0, named=True)
    assert (refused["line_no"], refused["field"], refused["raw"]) == (2, field, bad)
    assert reason in refused["reason"]


def test_the_error_count_is_in_the_reason_and_the_job_id_is_kept() -> None:
    batch = parse(line(user=..., account=..., job_id="77"))
    refused = batch.quarantine.row(0, named=True)
    assert refused["record_id"] == "77" and "(and 1 more error)" in refused["reason"]


def test_blank_lines_are_skipped_but_numbered() -> None:
    batch = parse("", line(), "   ", line(job_id="2"))
    assert batch.lines_read == 2 and batch.runs["source_line"].to_list() == [2, 4]


def test_the_schema_is_published() -> None:
    schema = JobRecord.model_json_schema()
    required = {"scheduler", "cluster", "job_id", "user", "account", "submit_at", "start_at",
                "end_at", "state"}  # fmt: skip
    assert set(schema["required"]) == required


# Breakages a pushing source could produce, each making a line invalid.
BREAKAGES: list[tuple[str, Any]] = [
    ("user", ...), ("account", ...), ("submit_at", ...), ("state", "Done"), ("state", 3),
    ("submit_at", "2025-13-01T00:00:00Z"), ("submit_at", True), ("cluster", ""),
    ("job_id", 12), ("alloc_gpus", -2), ("alloc_mem_mb", "lots"), ("tres", [1]),
    ("nodelist", "a[2-1]"), ("scheduler", "Slurm!"), ("unknown_key", 1), ("end_at", "soon"),
    ("alloc_cpus", 2**40), ("tres", {"cpu": 1e12}), ("submit_at", 10**15),
]  # fmt: skip


@st.composite
def jsonl_lines(draw: st.DrawFn) -> tuple[str, bool]:
    """Return a line and whether it is good."""
    kind = draw(st.sampled_from(["good", "broken", "junk"]))
    job_id = str(draw(st.integers(1, 10**6)))
    if kind == "good":
        state = draw(st.sampled_from(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"]))
        return line(job_id=job_id, state=state, alloc_cpus=draw(st.integers(0, 512))), True
    if kind == "broken":
        key, value = draw(st.sampled_from(BREAKAGES))
        return line(job_id=job_id, **{key: value}) if key != "job_id" else line(job_id=value), False
    junk = draw(one_line_text(min_size=1))
    return (junk, False) if junk.strip() else ("{}", False)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(jsonl_lines(), max_size=20))
def test_every_bad_line_is_quarantined_and_every_good_line_lands(
    lines: list[tuple[str, bool]],
) -> None:
    batch = parse_jobs_jsonl("\n".join(text for text, _ in lines), source="fuzz")
    good = {n for n, (_, ok) in enumerate(lines, start=1) if ok}
    bad = {n for n, (_, ok) in enumerate(lines, start=1) if not ok}
    assert set(batch.quarantine["line_no"]) == bad
    assert batch.quarantine["reason"].is_not_null().all()
    # Good lines with the same job id share a key; the last one of each lands.
    last_of_key: dict[str, int] = {}
    for n in sorted(good):
        last_of_key[json.loads(lines[n - 1][0])["job_id"]] = n
    assert set(batch.runs["source_line"]) == set(last_of_key.values())
    assert batch.lines_read == len(lines)


def test_the_documented_example_lands() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "ingest-jsonl.md").read_text(encoding="utf-8")
    example = doc.split("## Example", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    batch = parse_jobs_jsonl(example, source="docs")
    assert batch.quarantine.is_empty(), batch.quarantine.to_dicts()
    assert batch.runs["scheduler"].to_list() == ["flux", "kubernetes", "site-script"]
    assert batch.runs["alloc_gpus"].to_list() == [8, 8, 0]
