"""Hypothesis: a sacct file mixing good and corrupted lines loses nothing and counts nothing twice.

Every corrupted line is quarantined under its physical line number; every good line lands
exactly once, as a run or a step. The one knock-on effect is documented: a step whose
allocation line lost its Submit (bad Submit, or a line with missing fields) has no run to
belong to and is quarantined too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sources.sacct import SACCT_FORMAT, parse_sacct
from tests.strategies import examples

HEADER = "|".join(SACCT_FORMAT)
WHERE = {name: i for i, name in enumerate(SACCT_FORMAT)}

# How a line is broken, and the field quarantine must name ("" for the whole line).
CORRUPTIONS: dict[str, tuple[str, str, str]] = {
    "bad_int": ("NCPUS", "12x", "NCPUS"),
    "bad_time": ("Start", "2025-13-01T10:00:00", "Start"),
    "bad_submit": ("Submit", "yesterday", "Submit"),
    "bad_state": ("State", "EXPLODED", "State"),
    "bad_tres": ("AllocTRES", "cpu=4,mem", "AllocTRES"),
    "bad_nodes": ("NodeList", "cn[0-", "NodeList"),
    "missing_fields": ("", "", ""),
}
# A step's Submit is its own start; the run key comes from its allocation, so a bad step
# Submit is still an unparseable time on that line.
LOSES_SUBMIT = {"bad_submit", "missing_fields"}

names = st.text(alphabet=st.sampled_from(list("abcxyz-_.,'\"|= é日")), max_size=12)


@dataclass
class Line:
    text: str
    kind: str  # "run" or "step"
    job: int  # index of the job it belongs to
    corruption: str | None


def render(values: dict[str, str], corruption: str | None) -> str:
    if corruption is None:
        return "|".join(values[f] for f in SACCT_FORMAT)
    field, bad, _ = CORRUPTIONS[corruption]
    if corruption == "missing_fields":
        return "|".join(values[f] for f in SACCT_FORMAT[:-3])
    return "|".join(bad if f == field else values[f] for f in SACCT_FORMAT)


@st.composite
def sacct_files(draw: st.DrawFn) -> list[Line]:
    n_jobs = draw(st.integers(min_value=1, max_value=12))
    lines: list[Line] = []
    for job in range(n_jobs):
        job_id = str(1000 + job)
        nodes = draw(st.sampled_from(["cn001", "cn[001-004]", "gpu[1,3-4]", "None assigned"]))
        alloc = {
            "JobID": job_id,
            "JobIDRaw": job_id,
            "Cluster": draw(st.sampled_from(["alpine", "birch"])),
            "Partition": "compute",
            "QOS": "normal",
            "Account": "physics",
            "User": draw(st.sampled_from(["alice", "bob", "zoë"])),
            "Submit": f"2025-03-{1 + job:02d}T10:00:00",
            "Eligible": draw(st.sampled_from(["2025-03-01T10:00:00", "Unknown"])),
            "Start": draw(st.sampled_from(["2025-03-20T10:05:00", "Unknown", "None"])),
            "End": draw(st.sampled_from(["2025-03-20T11:05:00", "Unknown"])),
            "Elapsed": "01:00:00",
            "ElapsedRaw": "3600",
            "Timelimit": draw(st.sampled_from(["02:00:00", "UNLIMITED", "1-00:00:00"])),
            "ExitCode": "0:0",
            "State": draw(st.sampled_from(["COMPLETED", "CANCELLED by 42", "RUNNING", "F"])),
            "NNodes": "1",
            "NCPUS": str(draw(st.integers(min_value=0, max_value=512))),
            "ReqMem": "4G",
            "AllocTRES": draw(
                st.sampled_from(["", "cpu=4,mem=4G,node=1", "billing=8,cpu=8,gres/gpu:a100=1"])
            ),
            "NodeList": nodes,
            "Reservation": "",
            "JobName": draw(names),
        }
        lines.append(Line("", "run", job, draw(st.none() | st.sampled_from(list(CORRUPTIONS)))))
        lines[-1].text = render(alloc, lines[-1].corruption)
        for suffix in draw(st.lists(st.sampled_from(["batch", "extern", "0", "1"]), unique=True)):
            values = {
                **alloc,
                "JobID": f"{job_id}.{suffix}",
                "JobIDRaw": f"{job_id}.{suffix}",
                "User": "",
                "Partition": "",
                "QOS": "",
                "Submit": "2025-03-20T10:05:00",
            }
            corruption = draw(st.none() | st.sampled_from(list(CORRUPTIONS)))
            lines.append(Line(render(values, corruption), "step", job, corruption))
    return lines


@pytest.mark.slow
@settings(max_examples=examples(60), deadline=None)
@given(lines=sacct_files(), blanks=st.lists(st.integers(min_value=0, max_value=40), max_size=4))
def test_bad_lines_are_quarantined_and_good_lines_land_once(
    lines: list[Line], blanks: list[int]
) -> None:
    # Physical layout: the header, then the lines with blank lines slipped in between.
    physical: list[str] = [HEADER]
    line_no: dict[int, int] = {}
    for i, item in enumerate(lines):
        physical.extend([""] * blanks.count(i))
        physical.append(item.text)
        line_no[i] = len(physical)
    batch = parse_sacct("\n".join(physical) + "\n", source="fuzz")

    orphaned_jobs = {
        item.job for item in lines if item.kind == "run" and item.corruption in LOSES_SUBMIT
    }
    # The field named is the first bad one in the line (a wrong field count trumps all).
    expected_bad: dict[int, str] = {}
    for i, item in enumerate(lines):
        if item.corruption == "missing_fields":
            expected_bad[line_no[i]] = ""
        elif item.kind == "step" and item.job in orphaned_jobs:
            expected_bad[line_no[i]] = "JobID"
        elif item.corruption is not None:
            expected_bad[line_no[i]] = CORRUPTIONS[item.corruption][2]

    quarantine = batch.quarantine
    assert quarantine["line_no"].is_unique().all()
    assert dict(zip(quarantine["line_no"], quarantine["field"], strict=True)) == expected_bad
    good = {line_no[i]: item for i, item in enumerate(lines) if line_no[i] not in expected_bad}
    run_lines = sorted(n for n, item in good.items() if item.kind == "run")
    step_lines = sorted(n for n, item in good.items() if item.kind == "step")
    assert batch.runs["source_line"].to_list() == run_lines
    assert batch.steps["source_line"].to_list() == step_lines
    assert batch.lines_read == len(lines)
    # Each step hangs off its own allocation's run.
    runs_by_job = dict(zip(batch.runs["job_id"], batch.runs["run_key"], strict=True))
    for step_id, run_key in zip(batch.steps["job_id"], batch.steps["run_key"], strict=True):
        if step_id.split(".")[0] in runs_by_job:
            assert runs_by_job[step_id.split(".")[0]] == run_key
