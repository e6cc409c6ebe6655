"""Ingest and recompute figures for a synthetic sacct dump, with DuckDB's read_csv as baseline.

    python bench/bench_ingest.py [--jobs 1000000] [--seed 42] [--workdir bench/out]

Prints, for one run on this machine: generation time, DuckDB ``read_csv`` of the file (the floor:
no validation, no quarantine, no upsert), ``fairledger ingest file`` of the same file into an
on-disk store (parse + validate + upsert), the ratio of the two, a second load of the same file
(idempotent: nothing changes), and a full fair-share recompute over the stored runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.load import load_sacct_file  # noqa: E402
from models.fairshare import compute_factors  # noqa: E402
from models.policy import load_policy  # noqa: E402
from models.store import open_store, read_runs, write_policy  # noqa: E402


def _timed(label: str, fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    print(f"{label:<58} {seconds:8.2f} s", flush=True)
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
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

    baseline_db = args.workdir / "baseline.duckdb"
    baseline_db.unlink(missing_ok=True)

    def read_csv() -> int:
        con = duckdb.connect(str(baseline_db))
        con.execute(
            f"CREATE TABLE raw AS SELECT * FROM read_csv('{dump}', delim='|', header=true, "
            "quote='', escape='', all_varchar=true, ignore_errors=true, "
            "nullstr=['', 'Unknown', 'None'])"
        )
        con.execute("CHECKPOINT")
        count = con.execute("SELECT count(*) FROM raw").fetchall()[0][0]
        con.close()
        return int(count)

    base_s, base_rows = _timed("baseline: DuckDB read_csv -> on-disk table", read_csv)

    store_path = args.workdir / "store.duckdb"
    store_path.unlink(missing_ok=True)
    con = open_store(store_path)
    write_policy(con, load_policy(policy_file), origin=str(policy_file))
    ingest_s, loaded = _timed(
        "fairledger ingest file (parse, validate, upsert, on disk)",
        lambda: load_sacct_file(con, dump),
    )
    print("   ", loaded.describe())
    again_s, again = _timed("same file again (idempotent)", lambda: load_sacct_file(con, dump))
    print("   ", again.describe())

    policy = load_policy(policy_file)
    read_s, runs = _timed("read runs for recompute", lambda: read_runs(con))
    as_of = datetime.now(UTC)
    recompute_s, factors = _timed(
        f"recompute fair-share ({runs.height:,} runs)",
        lambda: compute_factors(runs.lazy(), policy, as_of=as_of),
    )
    con.close()
    print()
    print(f"ingest / read_csv ratio:      {ingest_s / base_s:5.2f}x  ({base_rows:,} rows baseline)")
    print(f"ingest rate:    {lines / ingest_s:,.0f} lines/s, {size_mb / ingest_s:.0f} MB/s")
    print(
        f"recompute incl. read:         {read_s + recompute_s:.2f} s for {runs.height:,} runs "
        f"-> {factors.height:,} associations"
    )


if __name__ == "__main__":
    main()
