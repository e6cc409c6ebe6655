"""A small store for the audit tests: a policy with grants, two batches (one revising a run)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from models.frames import QUARANTINE, RUNS, STEPS, conform
from models.policy import load_policy_text
from models.store import Connection, open_store, write_batch, write_policy

POLICY = """
[[clusters]]
name = "hpc"
partitions = [{ name = "gpu" }, { name = "cpu" }]

[[grants]]
id = "NIH-7"
funder = "NIH"
budget = "1000"
start = 2026-01-01
end = 2026-12-31
members = [{ account = "med", start = 2026-01-01 }]

[[grants]]
id = "OPEN-1"
funder = "uni"
budget = "10"
start = 2026-01-01
end = 2026-12-31
members = [{ account = "open", start = 2026-01-01 }]
"""

MARCH = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def runs_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Return run rows (defaults filled in) as a RUNS frame."""
    full = [
        {
            "scheduler": "slurm",
            "cluster": "hpc",
            "job_id": str(i + 100),
            "user": "alice",
            "partition": "gpu",
            "state": "COMPLETED",
            "submit_at": MARCH,
            "start_at": MARCH,
            "end_at": MARCH,
            "elapsed_s": 3600,
            "alloc_cpus": 4,
            "alloc_mem_mb": 8000.0,
            "tres": [{"name": "cpu", "count": 4.0}, {"name": "gres/gpu:a100", "count": 1.0}],
            "billing": 4.5,
            "nodelist": "gpu[001-002]",
            "nodes": ["gpu001", "gpu002"],
            "source": "sacct.txt",
            "source_line": i + 1,
            **row,
        }
        for i, row in enumerate(rows)
    ]
    return conform(pl.DataFrame(full, infer_schema_length=None), RUNS)


def land(
    con: Connection,
    rows: list[dict[str, object]],
    *,
    source: str = "sacct.txt",
    read_at: datetime = datetime(2026, 4, 1, tzinfo=UTC),
) -> int:
    """Write one batch of runs read at ``read_at``; return its batch id."""
    runs = runs_frame(rows)
    summary = write_batch(
        con,
        source=source,
        scheduler="slurm",
        runs=runs,
        steps=pl.DataFrame(schema=STEPS),
        quarantine=pl.DataFrame(schema=QUARANTINE),
        lines_read=runs.height,
        started_at=read_at,
    )
    return summary.batch_id


def build_store(path: Path) -> Connection:
    """Return an open store with a policy and two batches (run m1 revised by the second)."""
    con = open_store(path)
    write_policy(con, load_policy_text(POLICY), origin="policy.toml")
    land(
        con,
        [
            {"run_key": "hpc/101/1", "account": "med", "job_name": "prep é😀"},
            {"run_key": "hpc/102/1", "account": "med", "job_name": 'tab\there "q" \\ \x1f'},
            {"run_key": "hpc/103/1", "account": "open", "job_name": "other grant"},
            {
                "run_key": "hpc/104/1",
                "account": "med",
                "end_at": datetime(2026, 4, 2, tzinfo=UTC),
                "job_name": "april",
            },
            {"run_key": "hpc/105/1", "account": "med", "tres": [], "nodes": None, "billing": None},
        ],
    )
    land(
        con,
        [
            {"run_key": "hpc/101/1", "account": "med", "job_name": "prep é😀 (edited)"},
            {"run_key": "hpc/106/1", "account": "med", "job_name": "late", "alloc_gpus": 2},
        ],
        source="sacct-2.txt",
        read_at=datetime(2026, 4, 2, tzinfo=UTC),
    )
    return con
