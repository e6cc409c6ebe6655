"""Ingest and recompute figures for a synthetic sacct dump, with DuckDB's read_csv as baseline.

    python bench/bench_ingest.py [--jobs 1000000] [--seed 42] [--workdir bench/out] [--repeat 1]

Prints, for one run on this machine: generation time, DuckDB ``read_csv`` of the file (the floor:
no validation, no quarantine, no upsert), ``fairledger ingest file`` of the same file into an
on-disk store (parse + validate + upsert), the ratio of the two, a second load of the same file
(idempotent: nothing changes), and a full fair-share recompute over the stored runs. For
context it also times a typed ``read_csv`` (times parsed, counts as integers, TRES counts pulled
out of AllocTRES, like perf-limits.md's L5) and prints the ingest's ratio to that.

``fairledger ingest file`` lands a file in batches of ``CHUNK_LINES`` lines by default, the next
parsed while one lands; the single-batch load (``load_sacct_file`` without ``chunk_lines``: one
parse, one batch) is timed first, the batched one after it in
a process of its own (its own peak RSS), each into a fresh store.

Each step shows wall seconds and the process's CPU seconds (steadier than wall time when other
work shares the machine). The baseline runs in a child process, so each peak RSS is its own:
the baseline's, and this process's after the first ingest (policy and store opened, file
parsed and landed). With ``--repeat N`` the baseline and the first ingest run N times,
alternating, into fresh files, and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.load import CHUNK_LINES, load_sacct_file  # noqa: E402
from models.fairshare.factors import compute_factors  # noqa: E402
from models.policy import load_policy  # noqa: E402
from models.store import Connection, open_store, read_runs, write_policy  # noqa: E402


def _timed(label: str, fn):  # type: ignore[no-untyped-def]
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{label:<58} {seconds:8.2f} s  (CPU {cpu:6.2f} s)", flush=True)
    return seconds, result


def _peak_rss_gb() -> float:
    """Return this process's peak resident set size so far, in GB.

    Linux's VmHWM where there is one: getrusage's maxrss survives exec, so a child started by
    this process would report this process's peak as its own.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return kib * 1024 / 1e9


def _create_on_disk(db: Path, table: str, select: str) -> dict[str, float]:
    """Return wall and CPU seconds, rows and peak RSS of creating ``table`` in a fresh ``db``
    from ``select`` and checkpointing it to disk."""
    db.unlink(missing_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE {table} AS {select}")
    con.execute("CHECKPOINT")
    count = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    con.close()
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "rows": int(count),
        "peak_rss_gb": _peak_rss_gb(),
    }


def read_csv_baseline(dump: Path, db: Path) -> dict[str, float]:
    """Return wall and CPU seconds, rows and peak RSS of DuckDB reading ``dump`` into ``db``."""
    return _create_on_disk(
        db,
        "raw",
        f"SELECT * FROM read_csv('{dump}', delim='|', header=true, quote='', escape='', "
        "all_varchar=true, ignore_errors=true, nullstr=['', 'Unknown', 'None'])",
    )


# The typed reference: the file's columns read with their types (times parsed, counts as
# integers) and the TRES counts fairledger uses pulled out of AllocTRES, as perf-limits.md's L5
# does. Context for the goal's untyped baseline, not a replacement of it.
_TYPED_COLUMNS = {
    **{name: "VARCHAR" for name in ("JobID", "JobIDRaw", "Cluster", "Partition", "QOS")},
    **{name: "VARCHAR" for name in ("Account", "User")},
    **{name: "TIMESTAMP" for name in ("Submit", "Eligible", "Start", "End")},
    "Elapsed": "VARCHAR",
    "ElapsedRaw": "BIGINT",
    "Timelimit": "VARCHAR",
    "ExitCode": "VARCHAR",
    "State": "VARCHAR",
    "NNodes": "INTEGER",
    "NCPUS": "INTEGER",
    **{name: "VARCHAR" for name in ("ReqMem", "AllocTRES", "NodeList", "Reservation", "JobName")},
}


def typed_read_csv(dump: Path, db: Path) -> dict[str, float]:
    """Return wall and CPU seconds, rows and peak RSS of DuckDB reading ``dump`` with types
    (and TRES counts) into ``db``."""
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in _TYPED_COLUMNS.items())
    tres = ", ".join(
        f"TRY_CAST(regexp_extract(AllocTRES, '(^|,){name}=([0-9.]+)', 2) AS DOUBLE) AS tres_{name}"
        for name in ("billing", "cpu", "node", "gres/gpu")
    ).replace("tres_gres/gpu", "tres_gpu")
    return _create_on_disk(
        db,
        "typed",
        f"SELECT *, {tres} FROM read_csv('{dump}', delim='|', header=true, quote='', "
        f"escape='', auto_detect=false, columns={{{columns}}}, "
        "timestampformat='%Y-%m-%dT%H:%M:%S', ignore_errors=true, "
        "nullstr=['', 'Unknown', 'None'])",
    )


def _in_child(flag: str, label: str, dump: Path, db: Path) -> dict[str, Any]:
    """Run this script with ``flag`` (one measurement) in a child process, print its figures
    under ``label`` and return them: the child's peak RSS is its own."""
    done = subprocess.run(
        [sys.executable, __file__, flag, str(dump), str(db)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    print(
        f"{label:<58} {figures['wall_s']:8.2f} s  (CPU {figures['cpu_s']:6.2f} s)  "
        f"peak RSS {figures['peak_rss_gb']:.2f} GB",
        flush=True,
    )
    if "summary" in figures:
        print("   ", figures["summary"])
    return figures


def chunked_load(dump: Path, db: Path) -> dict[str, Any]:
    """Return wall and CPU seconds and peak RSS of ``fairledger ingest file``'s load of
    ``dump`` (chunks of ``CHUNK_LINES``) into a fresh store ``db``, and its summary."""
    db.unlink(missing_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    con = open_store(db)
    loaded = load_sacct_file(con, dump, chunk_lines=CHUNK_LINES)
    con.close()
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "peak_rss_gb": _peak_rss_gb(),
        "summary": loaded.describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline-only", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chunked-only", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--typed-only", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_only:
        print(json.dumps(read_csv_baseline(*args.baseline_only)))
        return
    if args.typed_only:
        print(json.dumps(typed_read_csv(*args.typed_only)))
        return
    if args.chunked_only:
        print(json.dumps(chunked_load(*args.chunked_only)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    dump = args.workdir / f"sacct_{args.jobs}.txt"
    policy_file = Path(f"{dump}.policy.toml")
    if not dump.exists() or not policy_file.exists():
        _timed(
            f"generate {args.jobs:,} jobs",
            lambda: subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "gen_sacct.py"),
                    str(args.jobs),
                    str(dump),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
            ),
        )
    size_mb = dump.stat().st_size / 1e6
    lines = sum(1 for _ in dump.open("rb")) - 1
    print(f"file: {dump} ({size_mb:,.0f} MB, {lines:,} data lines)")

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    baseline_db = args.workdir / "baseline.duckdb"
    store_path = args.workdir / "store.duckdb"
    base_runs: list[float] = []
    typed_runs: list[float] = []
    ingest_runs: list[float] = []
    con: Connection | None = None
    for _ in range(max(1, args.repeat)):
        base = _in_child(
            "--baseline-only", "baseline: DuckDB read_csv -> on-disk table", dump, baseline_db
        )
        base_runs.append(base["wall_s"])
        typed = _in_child(
            "--typed-only", "reference: DuckDB typed read_csv + TRES -> on disk", dump, baseline_db
        )
        typed_runs.append(typed["wall_s"])
        if con is not None:
            con.close()
        store_path.unlink(missing_ok=True)
        store = con = open_store(store_path)
        write_policy(con, load_policy(policy_file), origin=str(policy_file))
        ingest_s, loaded = _timed(
            "ingest the file as one batch (parse, validate, upsert, on disk)",
            lambda: load_sacct_file(store, dump),  # noqa: B023 (called at once)
        )
        ingest_runs.append(ingest_s)
        print("   ", loaded.describe())
        print(f"    peak RSS of this process so far: {_peak_rss_gb():.2f} GB", flush=True)
    assert con is not None
    base_s, ingest_s = statistics.median(base_runs), statistics.median(ingest_runs)
    base_rows = int(base["rows"])
    baseline_db.unlink(missing_ok=True)
    _, again = _timed("same file again (idempotent)", lambda: load_sacct_file(con, dump))
    print("   ", again.describe())

    # What the command line does by default (batches of about CHUNK_LINES lines), in a process
    # of its own: its time and peak RSS are not those of a process that already holds a store.
    chunked_db = args.workdir / "store_chunked.duckdb"
    label = f"in batches of {CHUNK_LINES:,} lines (the CLI), own process"
    chunked_s = _in_child("--chunked-only", label, dump, chunked_db)["wall_s"]
    chunked_db.unlink(missing_ok=True)

    policy = load_policy(policy_file)
    read_s, runs = _timed("read runs for recompute", lambda: read_runs(con))
    as_of = datetime.now(UTC)
    recompute_s, factors = _timed(
        f"recompute fair-share ({runs.height:,} runs)",
        lambda: compute_factors(runs.lazy(), policy, as_of=as_of),
    )
    con.close()
    print()
    print(
        f"ingest / read_csv ratio:      {ingest_s / base_s:5.2f}x  ({base_rows:,} rows baseline; "
        f"medians of {len(ingest_runs)}: {ingest_s:.2f} s / {base_s:.2f} s)"
    )
    print(f"ingest rate:    {lines / ingest_s:,.0f} lines/s, {size_mb / ingest_s:.0f} MB/s")
    print(f"in {CHUNK_LINES:,}-line batches / read_csv: {chunked_s / base_s:5.2f}x")
    typed_s = statistics.median(typed_runs)
    print(
        f"reference, typed read_csv + TRES: {typed_s:.2f} s (median of {len(typed_runs)}); "
        f"one batch / it {ingest_s / typed_s:.2f}x, {CHUNK_LINES:,}-line batches / it "
        f"{chunked_s / typed_s:.2f}x"
    )
    print(
        f"recompute incl. read:         {read_s + recompute_s:.2f} s for {runs.height:,} runs "
        f"-> {factors.height:,} associations"
    )
    print(f"load average after:  {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
