"""Sizes beyond the documented bounds (docs/ingest.md#bounds): every parser that produces runs
quarantines such a run with its line, field and reason, and lands the good records beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.sources.jobs_jsonl import parse_jobs_jsonl
from ingest.sources.lsf import parse_lsf_accounting
from ingest.sources.pbs import parse_pbs_accounting
from ingest.sources.sacct import SacctBatch, parse_sacct
from ingest.sources.sacct_json import parse_sacct_json
from models.frames import MAX_ELAPSED_S, MAX_MEM_MB

SAMPLES = Path(__file__).parent / "samples"


def jsonl(job_id: str, **changes: Any) -> str:
    base = {"scheduler": "flux", "cluster": "lab", "job_id": job_id, "user": "ana",
            "account": "chem", "submit_at": "2026-03-01T10:00:00Z",
            "start_at": "2026-03-01T10:05:00Z", "end_at": "2026-03-01T11:00:00Z",
            "state": "COMPLETED", "alloc_cpus": 8}  # fmt: skip
    return json.dumps({**base, **changes})


def refused(batch: SacctBatch) -> list[tuple[int, str, str]]:
    return [(r["line_no"], r["field"], r["reason"]) for r in batch.quarantine.iter_rows(named=True)]


def test_a_huge_memory_line_is_quarantined_and_the_good_one_lands() -> None:
    text = "\n".join([jsonl("bad", alloc_mem_mb=1e19), jsonl("good", alloc_mem_mb=4096)])
    batch = parse_jobs_jsonl(text, source="push")
    assert batch.runs["job_id"].to_list() == ["good"]
    assert batch.runs["alloc_mem_mb"].to_list() == [4096.0]
    assert refused(batch) == [
        (
            1,
            "alloc_mem_mb",
            f"alloc_mem_mb 1e+19 is beyond the bound of {MAX_MEM_MB} "
            "(no job reaches it; see docs/ingest.md#bounds)",
        )
    ]
    assert batch.quarantine["record_id"].to_list() == ["bad"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tres": {"cpu": 8, "mem": 1e19}}, "alloc_mem_mb"),
        ({"tres": {"cpu": 8, "energy": 1e300}}, "tres.energy"),
        ({"billing": 1e300}, "billing"),
        ({"alloc_mem_mb": MAX_MEM_MB + 1}, "alloc_mem_mb"),
        ({"start_at": "1971-01-01T00:00:00Z", "end_at": "2199-01-01T00:00:00Z"}, "elapsed_s"),
    ],
)
def test_every_size_is_bounded_in_json_lines(changes: dict[str, Any], field: str) -> None:
    batch = parse_jobs_jsonl("\n".join([jsonl("good"), jsonl("bad", **changes)]), source="push")
    assert batch.runs["job_id"].to_list() == ["good"]
    assert [(line, f) for line, f, _ in refused(batch)] == [(2, field)]


def test_a_run_at_the_bounds_lands() -> None:
    batch = parse_jobs_jsonl(
        jsonl("edge", alloc_mem_mb=MAX_MEM_MB, alloc_gpus=2**31 - 1), source="p"
    )
    assert batch.quarantine.is_empty() and batch.runs.height == 1


def test_sacct_text_refuses_sizes_beyond_the_bounds() -> None:
    header = "JobIDRaw|Cluster|Account|User|State|Submit|Start|End|ElapsedRaw|AllocTRES"
    times = "2026-01-01T00:00:00|2026-01-01T00:00:00|2026-01-01T01:00:00"
    lines = [
        header,
        f"1|c|a|u|COMPLETED|{times}|3600|cpu=4,mem=8G,node=1",
        f"2|c|a|u|COMPLETED|{times}|3600|cpu=4,mem=9999999999P,node=1",
        f"3|c|a|u|COMPLETED|{times}|{MAX_ELAPSED_S + 1}|cpu=4,mem=8G,node=1",
        f"4|c|a|u|COMPLETED|{times}|3600|cpu=99999999999,mem=8G,node=1",
        f"5|c|a|u|COMPLETED|{times}|3600|cpu=4,mem=8G,energy={'9' * 400}",
    ]
    batch = parse_sacct("\n".join(lines), source="sacct.txt")
    assert batch.runs["job_id"].to_list() == ["1"]
    got = refused(batch)
    assert [(line, f) for line, f, _ in got] == [
        (3, "AllocTRES"), (4, "ElapsedRaw"), (5, "AllocTRES"), (6, "AllocTRES")
    ]  # fmt: skip
    assert got[0][2].startswith("alloc_mem_mb 1.0")
    assert got[1][2].startswith(f"elapsed_s {MAX_ELAPSED_S + 1} is beyond the bound")
    assert got[2][2].startswith("cpu 99999999999.0 is beyond the bound")
    assert got[3][2].startswith("a TRES count is beyond the bound")


def test_sacct_json_refuses_a_job_with_huge_memory() -> None:
    document = json.loads((SAMPLES / "sacct_json" / "sacct-23.11-v0.0.40.json").read_text())
    bad = document["jobs"][0]
    next(t for t in bad["tres"]["allocated"] if t["type"] == "mem")["count"] = 2 * 10**15
    batch = parse_sacct_json(json.dumps(document), source="sacct.json", cluster="lab")
    assert refused(batch) == [
        (
            1,
            "alloc_mem_mb",
            f"alloc_mem_mb 2000000000000000 is beyond the bound of {MAX_MEM_MB} "
            "(no job reaches it; see docs/ingest.md#bounds)",
        )
    ]
    assert str(bad["job_id"]) not in batch.runs["job_id_raw"].to_list()
    assert batch.runs.height == len(document["jobs"]) - 1


def test_pbs_and_lsf_refuse_sizes_beyond_the_bounds() -> None:
    log = (SAMPLES / "pbs" / "input" / "accounting-logs.log").read_text().splitlines()
    pbs = next(line for line in log if "Resource_List.mem=1993mb" in line)
    bad = pbs.replace("Resource_List.mem=1993mb", "Resource_List.mem=99999999999tb")
    batch = parse_pbs_accounting("\n".join([pbs, bad]), source="pbs.log", cluster="lab")
    assert batch.runs.height == 1
    assert [(line, f) for line, f, _ in refused(batch)] == [(2, "alloc_mem_mb")]

    lsf = (SAMPLES / "lsf" / "input" / "accounting-logs.log").read_text().splitlines()[0]
    # ended in 2198 after starting in 1970: an elapsed time no run has
    bad = lsf.replace(" 1389683139 ", " 7200000000 ", 1).replace(" 1389642771 ", " 1 ", 1)
    batch = parse_lsf_accounting("\n".join([lsf, bad]), source="lsf.log", cluster="lab")
    assert batch.runs.height == 1
    assert [(line, f) for line, f, _ in refused(batch)] == [(2, "elapsed_s")]
