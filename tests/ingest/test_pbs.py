"""parse_pbs_accounting against Open XDMoD's PBS/Torque samples, and bad records."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sources.pbs import parse_pbs_accounting
from models import frames
from tests.strategies import examples

SAMPLES = Path(__file__).parent / "samples" / "pbs"
LINES = (SAMPLES / "input" / "accounting-logs.log").read_text(encoding="utf-8").splitlines()
EXPECTED = list(json.loads((SAMPLES / "output" / "accounting-logs.json").read_text()).values())
# XDMoD counts exec_host entries where the record lists fewer slots than it allocates
# ("host/0*0"); fairledger falls back to resources_used.ncpus there (docs/sources.md).
CPU_DISAGREES = {"3073070"}


def one(line: str) -> dict[str, Any]:
    batch = parse_pbs_accounting(line, source="acct", cluster="edge")
    assert batch.quarantine.is_empty(), batch.quarantine.to_dicts()
    (row,) = batch.runs.to_dicts()
    return row


def epoch(value: datetime | None) -> str | None:
    return None if value is None else str(int(value.timestamp()))


@pytest.mark.parametrize(("line", "expected"), list(zip(LINES, EXPECTED, strict=True)))
def test_values_agree_with_xdmod(line: str, expected: dict[str, Any]) -> None:
    run = one(line)
    assert run["job_id"] == expected["job_id"]
    assert run["run_key"] == f"edge/{expected['job_id']}/{expected['ctime']}"
    assert run["scheduler"] == "pbs"
    assert (run["user"], run["partition"]) == (expected["user"], expected["queue"])
    assert run["account"] in (expected.get("account"), expected["groupname"], "[project1]")
    assert epoch(run["submit_at"]) == expected["ctime"]
    assert epoch(run["eligible_at"]) == expected.get("etime")
    assert (epoch(run["start_at"]), epoch(run["end_at"])) == (expected["start"], expected["end"])
    assert run["exit_code"] == expected["exit_status"]
    assert run["state"] == ("COMPLETED" if expected["exit_status"] == "0" else "FAILED")
    assert run["job_name"] == expected["jobname"]
    assert run["nodelist"] == expected.get("node_list")
    assert run["alloc_gpus"] == int(expected["resources_used_gpus"])
    if "resource_list_walltime" in expected:
        assert run["timelimit_s"] == expected["resource_list_walltime"]
    if "resource_list_mem" in expected:
        assert run["alloc_mem_mb"] * 1024**2 == expected["resource_list_mem"]
    if expected["job_id"] not in CPU_DISAGREES:
        assert run["alloc_cpus"] == expected.get("resources_used_cpus")
        assert run["alloc_nodes"] == expected.get("resources_used_nodes", run["alloc_nodes"])


def test_the_whole_file_lands_with_the_contract_schema() -> None:
    batch = parse_pbs_accounting("\n".join(LINES), source="acct", cluster="edge")
    assert batch.runs.schema == pl.Schema(frames.RUNS)
    assert batch.lines_read == 9
    # Lines 1 and 2 are the same run (with and without the server in the id): the last wins.
    assert batch.runs.height == 8
    assert batch.runs.filter(pl.col("job_id") == "6")["source_line"].to_list() == [2]


def test_ctime_keys_the_run_and_elapsed_is_end_minus_start() -> None:
    run = one(LINES[3])  # PBS Pro: resources_used.walltime says 0 for a 156 s run
    assert run["elapsed_s"] == 1453766437 - 1453766281
    assert run["alloc_cpus"] == 65 and run["nodes"] == ["c1", "c2", "c3", "c4", "c5"]
    assert run["submit_at"] == datetime.fromtimestamp(1453756297, UTC)


def test_other_record_types_are_skipped_and_counted() -> None:
    text = "\n".join([
        "01/26/2016 00:00:01;Q;2996.pbs;queue=workq",
        "01/26/2016 00:00:02;S;2996.pbs;user=u group=g queue=workq ctime=1453756297 start=1",
        "01/26/2016 00:00:03;D;2996.pbs;requestor=root@pbs",
        "01/26/2016 00:00:04;S;2997.pbs;user=u",
        LINES[4],
    ])  # fmt: skip
    batch = parse_pbs_accounting(text, source="acct", cluster="edge")
    assert batch.skipped == {"Q": 1, "S": 2, "D": 1}
    assert batch.runs["job_id"].to_list() == ["2995"] and batch.quarantine.is_empty()


def test_array_subjobs_and_quoted_names() -> None:
    line = (
        "03/01/2024 10:00:00;E;1234[7].pbs01;user=ana group=lab project=grant42 "
        'jobname="my run ü" queue=gpu ctime=1709280000 etime=1709280001 start=1709280100 '
        "end=1709283700 exec_host=g01/0*8 Resource_List.ngpus=2 Resource_List.mem=64gb "
        "Resource_List.walltime=02:00:00 Exit_status=-11"
    )
    run = one(line)
    assert (run["job_id"], run["array_job_id"], run["array_task_id"]) == ("1234[7]", 1234, "7")
    assert (run["account"], run["job_name"], run["state"]) == ("grant42", "my run ü", "FAILED")
    assert (run["alloc_gpus"], run["alloc_mem_mb"], run["alloc_cpus"]) == (2, 65536.0, 8)
    assert {"name": "gres/gpu", "count": 2.0} in run["tres"]


@pytest.mark.parametrize(
    ("replace", "field", "reason"),
    [
        (("user=anonuser ", ""), "user", "missing"),
        (("ctime=1453756297 ", ""), "ctime", "missing"),
        (("ctime=1453756297", "ctime=yesterday"), "ctime", "epoch seconds"),
        (("end=1453766437", "end=99999999999999"), "end", "epoch seconds"),
        (("Exit_status=0", "Exit_status=ok"), "Exit_status", "integer"),
        (("exec_host=c1/0-3+c2/0-7", "exec_host=c1/x"), "exec_host", "host/N"),
        (
            ("Resource_List.walltime=00:02:43", "Resource_List.walltime=2h"),
            "Resource_List.walltime",
            "HH:",
        ),
        (("2995.pbs;", "abc.pbs;"), "", "job id"),
        (("01/26/2016 00:00:37;E;", "garbage;"), "", "not a PBS accounting record"),
    ],
)
def test_a_bad_record_is_quarantined_and_the_others_land(
    replace: tuple[str, str], field: str, reason: str
) -> None:
    bad = LINES[4].replace(*replace)
    assert bad != LINES[4]
    batch = parse_pbs_accounting("\n".join([LINES[3], bad, LINES[5]]), source="acct", cluster="e")
    assert batch.runs["source_line"].to_list() == [1, 3]
    refused = batch.quarantine.row(0, named=True)
    assert (refused["line_no"], refused["field"], refused["raw"]) == (2, field, bad)
    assert reason in refused["reason"] and refused["source"] == "acct"


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(LINES) - 1), st.text(max_size=30)), max_size=8))
def test_fuzzed_records_never_crash_and_every_e_record_is_accounted_for(
    cuts: list[tuple[int, str]],
) -> None:
    lines = list(LINES[2:])
    for index, junk in cuts:
        line = lines[index % len(lines)]
        at = len(junk) * 7 % max(len(line), 1)
        lines[index % len(lines)] = line[:at] + junk + line[at + len(junk) :]
    text = "\n".join(line.replace("\r", " ") for line in lines)
    batch = parse_pbs_accounting(text, source="fuzz", cluster="e")
    records = {n for n, line in enumerate(text.splitlines(), start=1) if line.strip()}
    landed = set(batch.runs["source_line"])
    refused = set(batch.quarantine["line_no"])
    skipped = _skipped_lines(text)
    assert batch.lines_read == len(records) and sum(batch.skipped.values()) == len(skipped)
    # Every record is landed, refused or skipped, and only one of these; a run whose key a
    # later line repeats gives way to it.
    accepted = records - refused - skipped
    assert landed <= accepted and not refused & skipped
    assert batch.runs.height == batch.runs["run_key"].n_unique()
    assert bool(landed) == bool(accepted)


def _skipped_lines(text: str) -> set[int]:
    return {
        n
        for n, line in enumerate(text.splitlines(), start=1)
        if re.match(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d;[A-Za-z];[^;]*;", line)
        and line.split(";")[1] != "E"
    }
