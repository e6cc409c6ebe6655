"""parse_lsf_accounting against Open XDMoD's lsb.acct samples (the spec of field positions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sources.lsf import parse_lsf_accounting, tokens
from models import frames
from tests.strategies import examples, one_line_text

SAMPLES = Path(__file__).parent / "samples" / "lsf"
LINES = (SAMPLES / "input" / "accounting-logs.log").read_text(encoding="utf-8").splitlines()
EXPECTED: list[dict[str, Any]] = json.loads(
    (SAMPLES / "output" / "accounting-logs.json").read_text(encoding="utf-8")
)


def one(line: str) -> dict[str, Any]:
    batch = parse_lsf_accounting(line, source="lsb.acct", cluster="yellow")
    assert batch.quarantine.is_empty(), batch.quarantine.to_dicts()
    (row,) = batch.runs.to_dicts()
    return row


def quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def test_tokens_unquote_and_keep_doubled_quotes() -> None:
    fields = tokens(LINES[1])
    assert fields[:4] == ["JOB_FINISH", "9.11", "1389683139", "404717"]
    assert fields[35] == EXPECTED[1]["command"]  # '#BSUB -R "span[ptile=16]"' inside


@pytest.mark.parametrize(("line", "expected"), list(zip(LINES, EXPECTED, strict=True)))
def test_values_agree_with_xdmod(line: str, expected: dict[str, Any]) -> None:
    run = one(line)
    assert run["scheduler"] == "lsf"
    assert run["run_key"] == f"yellow/{expected['job_id']}/{expected['submit_time']}"
    assert (run["job_id"], run["user"]) == (expected["job_id"], expected["user_name"])
    assert (run["account"], run["partition"]) == (expected["project_name"], expected["queue"])
    assert int(run["submit_at"].timestamp()) == int(expected["submit_time"])
    assert int(run["start_at"].timestamp()) == int(expected["start_time"])
    assert int(run["end_at"].timestamp()) == int(expected["event_time"])
    assert run["eligible_at"] is None  # begin_time 0: no -b
    assert run["elapsed_s"] == int(expected["event_time"]) - int(expected["start_time"])
    assert run["alloc_cpus"] == int(expected["num_processors"])
    assert run["nodelist"] == expected["node_list"]
    assert run["alloc_nodes"] == len(expected["node_list"].split(","))
    assert run["state"] == "COMPLETED" and expected["j_status"] == "64"
    assert (run["exit_code"], run["job_name"]) == (expected["exit_status"], expected["job_name"])


def test_multibyte_text_does_not_shift_the_fields() -> None:
    text = (SAMPLES / "input" / "utf8-multibyte-chars.log").read_text(encoding="utf-8")
    assert tokens(text)[35] == "aàb"
    renamed = text.replace('"abcde0040" "aàb"', '"ジョブ名 ü" "aàb"')
    run = one(renamed)
    assert (run["job_name"], run["account"], run["exit_code"]) == ("ジョブ名 ü", "anonproject", "0")


def test_array_elements_failed_jobs_and_other_events() -> None:
    fields = tokens(LINES[1])
    # Positions with 0 asked and 8 execution hosts: jStatus 32, exitStatus 57, idx 61.
    fields[32], fields[57], fields[61] = "32", "1", "3"
    line = " ".join(
        quoted(f) if not f.replace(".", "").lstrip("-").isdigit() else f for f in fields
    )
    text = "\n".join(['"JOB_NEW" "9.11" 1389642318 404718', line, '"EVENT_ADRSV_FINISH" "9.11"'])
    batch = parse_lsf_accounting(text, source="lsb.acct", cluster="yellow")
    (run,) = batch.runs.to_dicts()
    assert (run["job_id"], run["array_job_id"], run["array_task_id"]) == ("404717[3]", 404717, "3")
    assert (run["state"], run["exit_code"]) == ("FAILED", "1")
    assert batch.skipped == {"JOB_NEW": 1, "EVENT_ADRSV_FINISH": 1}
    assert batch.runs.schema == pl.Schema(frames.RUNS) and batch.lines_read == 3


@pytest.mark.parametrize(
    ("cut", "field"),
    [(23, "numExHosts"), (30, "execHosts"), (60, "idx"), (40, "jStatus")],
)
def test_a_short_record_is_quarantined_naming_the_missing_field(cut: int, field: str) -> None:
    short = (
        " ".join(LINES[0].split(" ")[:cut])
        if cut != 40
        else LINES[0].replace(" 64 60.0", " 7 60.0")
    )
    batch = parse_lsf_accounting("\n".join([short, LINES[1]]), source="lsb.acct", cluster="y")
    assert batch.runs["source_line"].to_list() == [2]
    refused = batch.quarantine.row(0, named=True)
    assert (refused["line_no"], refused["field"], refused["record_id"]) == (1, field, "404717")


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), one_line_text(max_size=12)), max_size=6))
def test_fuzzed_records_never_crash_and_each_lands_or_is_quarantined(
    edits: list[tuple[int, str]],
) -> None:
    fields = tokens(LINES[1])
    for index, junk in edits:
        fields[index % len(fields)] = junk
    line = " ".join(quoted(f) for f in fields)
    batch = parse_lsf_accounting(line, source="fuzz", cluster="y")
    if fields[0] != "JOB_FINISH":
        assert batch.skipped == {fields[0]: 1}
    else:
        assert batch.runs.height + batch.quarantine.height == 1
        assert batch.quarantine["reason"].is_not_null().all()
