"""Quarantine retry for every parser: sacct --json (and slurmrestd, the same JSON), PBS, LSF and
JSON Lines records are parsed again with the parser they were read with.

Each case stores a batch as an older fairledger would have: one record its parser refused then
and parses now (the parser was fixed), and one the parser still refuses. A retry lands the first
(as a new batch, observed when the first batch was, and marked resolved by it), gives the second
the reason found now, and deletes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from ingest.quarantine import retry_quarantined
from ingest.sources.jobs_jsonl import parse_jobs_jsonl
from ingest.sources.lsf import parse_lsf_accounting
from ingest.sources.pbs import parse_pbs_accounting
from ingest.sources.sacct import SacctBatch
from ingest.sources.sacct_json import parse_sacct_json
from models.frames import QUARANTINE, RUNS, STEPS, conform, empty
from models.store import open_store, read_runs
from models.store.quarantine import ParsedWith, list_quarantine
from models.store.runs import write_batch

SAMPLES = Path(__file__).parent / "samples"
OBSERVED = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
JSONL = json.dumps(
    {
        "scheduler": "flux",
        "cluster": "lab",
        "job_id": "f2zQ",
        "user": "ana",
        "account": "chem",
        "submit_at": "2025-03-01T10:00:00Z",
        "start_at": "2025-03-01T10:05:00Z",
        "end_at": "2025-03-01T11:00:00Z",
        "state": "COMPLETED",
        "alloc_cpus": 8,
    }
)


def _first_line(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[0]


def _json_document(name: str, bad: bool) -> tuple[str, str]:
    """Return (a one-job document, the job as compact JSON) from a sample; ``bad`` spoils the
    job's submission time."""
    document = json.loads((SAMPLES / "sacct_json" / name).read_text(encoding="utf-8"))
    job = document["jobs"][0]
    if bad:
        job["time"]["submission"] = "soon"
    document["jobs"] = [job]
    return json.dumps(document), json.dumps(job, separators=(",", ":"))


CASES = {
    "pbs": (
        _first_line(SAMPLES / "pbs" / "input" / "accounting-logs.log"),
        "12/21/2009 15:27:00;E;7.edge;user=x group=y queue=q ctime=later start=1261425023",
    ),
    "lsf": (
        _first_line(SAMPLES / "lsf" / "input" / "accounting-logs.log"),
        '"JOB_FINISH" "9.11" 1389683139 404718',
    ),
    "jsonl": (JSONL, JSONL.replace('"alloc_cpus": 8', '"alloc_cpus": "eight"')),
}


def _parse(parser: str, text: str) -> SacctBatch:
    match parser:
        case "pbs":
            return parse_pbs_accounting(text, source="log", cluster="lab")
        case "lsf":
            return parse_lsf_accounting(text, source="log", cluster="lab")
        case "jsonl":
            return parse_jobs_jsonl(text, source="log")
    return parse_sacct_json(text, source="log", cluster="lab")


def _refused_then(good: SacctBatch, raw: str) -> pl.DataFrame:
    """The quarantine row an older parser wrote for a record this one reads."""
    return conform(
        pl.DataFrame({"source": ["log"], "line_no": [1], "record_id": [good.runs["job_id"][0]],
                      "field": ["start"], "reason": ["refused by an older parser"],
                      "raw": [raw]}),
        QUARANTINE,
    )  # fmt: skip


def _case(parser: str) -> tuple[SacctBatch, str, SacctBatch]:
    """Return (the good record parsed now, its raw text, the bad record parsed now)."""
    if parser in CASES:
        good_raw, bad_raw = CASES[parser]
        return _parse(parser, good_raw), good_raw, _parse(parser, bad_raw)
    name = {"sacct_json": "sacct-23.11-v0.0.40.json", "legacy": "sacct-22.05-dbv0.0.38.json"}
    good_doc, good_raw = _json_document(name[parser], bad=False)
    bad_doc, _ = _json_document(name[parser], bad=True)
    return _parse(parser, good_doc), good_raw, _parse(parser, bad_doc)


@pytest.mark.parametrize("parser", ["pbs", "lsf", "jsonl", "sacct_json", "legacy"])
def test_a_fixed_parser_lands_the_record_on_retry(tmp_path: Path, parser: str) -> None:
    good, good_raw, bad = _case(parser)
    assert good.runs.height == 1 and good.quarantine.height == 0
    assert bad.runs.height == 0 and bad.quarantine.height == 1  # the parser still refuses it
    recorded = "sacct_json" if parser == "legacy" else parser
    con = open_store(tmp_path / "s.duckdb")
    write_batch(
        con,
        source="log",
        scheduler="x",
        runs=empty(RUNS),
        steps=empty(STEPS),
        quarantine=pl.concat([_refused_then(good, good_raw), bad.quarantine]),
        lines_read=2,
        started_at=datetime.now(UTC),
        observed_at=OBSERVED,
        parsed_with=ParsedWith(recorded, None, "lab", None),
    )
    assert set(list_quarantine(con)[0]["parser"]) == {recorded}

    [outcome] = retry_quarantined(con, source="log")

    assert (outcome.retried, outcome.resolved, outcome.still_open) == (2, 1, 1), outcome
    runs = read_runs(con, columns=("run_key", "source_line"))
    assert runs.rows() == [(good.runs["run_key"][0], 1)]
    landed = con.execute("SELECT observed_at, batch_id FROM runs").fetchall()
    assert landed == [(OBSERVED, outcome.batch_id)]  # observed when it was first read
    if parser in ("sacct_json", "legacy"):
        assert con.execute("SELECT count(*) FROM steps").fetchall()[0][0] == good.steps.height

    every, total = list_quarantine(con)
    assert total == 2  # nothing deleted
    done = every.filter(pl.col("status") == "resolved").row(0, named=True)
    assert done["resolved_by_batch"] == outcome.batch_id and done["raw"] == good_raw
    still = every.filter(pl.col("status") == "open").row(0, named=True)
    expected = bad.quarantine.row(0, named=True)
    assert (still["field"], still["reason"], still["retries"]) == (
        expected["field"],
        expected["reason"],
        1,
    )
    con.close()


def test_a_refused_json_step_waits_for_its_job(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    step = conform(
        pl.DataFrame({"source": ["log"], "line_no": [1], "record_id": ["2001"],
                      "field": ["steps[0].step.id"], "reason": ["r"], "raw": ['{"step":{}}']}),
        QUARANTINE,
    )  # fmt: skip
    write_batch(con, source="log", scheduler="slurm", runs=empty(RUNS), steps=empty(STEPS),
                quarantine=step, lines_read=1, started_at=datetime.now(UTC),
                parsed_with=ParsedWith("sacct_json", None, "lab", None))  # fmt: skip
    [outcome] = retry_quarantined(con)
    assert outcome.retried == 0 and "load the document again" in outcome.describe()
    assert list_quarantine(con, status="open")[1] == 1
    con.close()
