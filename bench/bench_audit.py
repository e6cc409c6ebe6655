"""`fairledger audit verify` over a store of 1M runs landed in ~100 batches, against a baseline.

    python bench/bench_audit.py [--runs 1000000] [--batches 100] [--workdir bench/out]

Generates run frames directly (no parsing), lands them with ``write_batch`` (each batch also
revises 5% of the previous batch's runs, so run_history holds versions too), then prints:
the ingest time (which includes hashing each batch's record lines for its log entry), the time
of ``verify_store`` (chain + every run version's record hash recomputed and compared + batch
and policy hashes), and the baseline: one DuckDB scan computing ``sha256`` of the same columns
cast to text and joined (no JSON, no comparison), with the ratio of the two. The store is kept
in the workdir and reused when it exists.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.audit.records import RECORD_COLUMNS  # noqa: E402
from models.frames import QUARANTINE, RUNS, STEPS, conform  # noqa: E402
from models.store import open_store, write_batch  # noqa: E402
from models.store.audit_verify import verify_store  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _frame(first: int, count: int, *, revision: int = 0) -> pl.DataFrame:
    """Return ``count`` synthetic runs with ids from ``first`` (``revision`` changes elapsed)."""
    ids = pl.int_range(first, first + count, eager=True)
    users = [f"user{i % 997}" for i in range(first, first + count)]
    frame = pl.DataFrame(
        {
            "run_key": [f"hpc/{i}/{1767225600 + i}" for i in range(first, first + count)],
            "scheduler": "slurm",
            "cluster": "hpc",
            "job_id": ids.cast(pl.String),
            "job_id_raw": ids.cast(pl.String),
            "user": users,
            "account": [f"acct{i % 97}" for i in range(first, first + count)],
            "partition": ["gpu" if i % 5 == 0 else "cpu" for i in range(first, first + count)],
            "qos": "normal",
            "state": "COMPLETED",
            "exit_code": "0:0",
            "submit_at": [T0 + timedelta(seconds=i * 3) for i in range(first, first + count)],
            "start_at": [T0 + timedelta(seconds=i * 3 + 60) for i in range(first, first + count)],
            "end_at": [
                T0 + timedelta(seconds=i * 3 + 3660 + revision) for i in range(first, first + count)
            ],
            "elapsed_s": 3600 + revision,
            "alloc_nodes": 1,
            "alloc_cpus": [1 + i % 64 for i in range(first, first + count)],
            "alloc_mem_mb": [4000.0 * (1 + i % 8) for i in range(first, first + count)],
            "tres": [
                [{"name": "cpu", "count": float(1 + i % 64)}, {"name": "mem", "count": 4000.0}]
                for i in range(first, first + count)
            ],
            "billing": [float(1 + i % 64) for i in range(first, first + count)],
            "nodelist": [f"cn{i % 500:03d}" for i in range(first, first + count)],
            "nodes": [[f"cn{i % 500:03d}"] for i in range(first, first + count)],
            "job_name": [f"job-{i % 1000}" for i in range(first, first + count)],
            "source": "bench",
            "source_line": ids,
        }
    )
    return conform(frame, RUNS)


def _land(con, runs: pl.DataFrame, read_at: datetime) -> None:  # type: ignore[no-untyped-def]
    write_batch(
        con,
        source="bench",
        scheduler="slurm",
        runs=runs,
        steps=pl.DataFrame(schema=STEPS),
        quarantine=pl.DataFrame(schema=QUARANTINE),
        lines_read=runs.height,
        started_at=read_at,
    )


def _baseline_sql() -> str:
    cast = ", ".join(f"coalesce(CAST(\"{name}\" AS VARCHAR), '')" for name, _ in RECORD_COLUMNS)
    return (
        f"SELECT count(*), max(h) FROM (SELECT sha256(concat_ws(chr(31), {cast})) AS h FROM ("
        f"SELECT * EXCLUDE (superseded_at, superseded_by_batch) FROM run_history "
        f"UNION ALL BY NAME SELECT * FROM runs))"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / f"audit_{args.runs}_{args.batches}.duckdb"
    fresh = not db.exists()
    con = open_store(db)
    per = args.runs // args.batches
    if fresh:
        t0 = time.perf_counter()
        for b in range(args.batches):
            runs = _frame(b * per, per)
            if b:  # revise 5% of the previous batch's runs
                runs = pl.concat([runs, _frame((b - 1) * per, per // 20, revision=b)])
            _land(con, runs, T0 + timedelta(days=1 + b))
        print(
            f"ingest {args.runs:,} runs in {args.batches} batches {time.perf_counter() - t0:9.2f} s"
        )
    versions = con.execute(
        "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM run_history)"
    ).fetchall()[0][0]

    t0 = time.perf_counter()
    count, _ = con.execute(_baseline_sql()).fetchall()[0]
    baseline = time.perf_counter() - t0
    assert count == versions

    t0 = time.perf_counter()
    report = verify_store(con)
    verify = time.perf_counter() - t0
    assert report.ok, report.first
    print(f"run versions                                   {versions:>12,}")
    print(f"log entries                                    {report.counts['entries']:>12,}")
    print(f"baseline: DuckDB sha256 scan of the columns    {baseline:9.2f} s")
    print(f"audit verify (chain + records + batches)       {verify:9.2f} s")
    print(f"ratio verify / baseline                        {verify / baseline:9.2f}")
    con.close()


if __name__ == "__main__":
    main()
