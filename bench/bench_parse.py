"""Time ``parse_sacct`` on a generated dump against DuckDB's ``read_csv`` of the same file.

    python bench/gen_sacct.py 1000000 /tmp/sacct_1m.txt
    python bench/bench_parse.py /tmp/sacct_1m.txt [--repeat 3]

Prints the median wall time of each (and the CPU time of parse_sacct) and their ratio. The
baseline is what DuckDB needs just to read the file into a typed in-memory table (explicit column
types, times as TIMESTAMP, nulls for ``Unknown``/``None``/empty, quoting off): no TRES, no node
lists, no quarantine, no keys. It skips lines with a ``|`` inside the job name, which parse_sacct
keeps. parse_sacct gets the file's bytes already read, as ``fairledger ingest file`` gives them
(reading them is timed apart); DuckDB reads the file itself, from the page cache. The peak RSS
printed is this process's (the bytes, parse_sacct's peak, and DuckDB's tables).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.sources.sacct import SACCT_FORMAT, parse_sacct

DUCK_TYPES = {
    "NNodes": "INTEGER",
    "NCPUS": "INTEGER",
    "ElapsedRaw": "BIGINT",
    "Submit": "TIMESTAMP",
    "Eligible": "TIMESTAMP",
    "Start": "TIMESTAMP",
    "End": "TIMESTAMP",
}


def duckdb_baseline(path: Path) -> tuple[float, int]:
    """Return (seconds, rows) for DuckDB reading ``path`` into an in-memory table."""
    columns = ", ".join(f"'{f}': '{DUCK_TYPES.get(f, 'VARCHAR')}'" for f in SACCT_FORMAT)
    con = duckdb.connect()
    began = time.perf_counter()
    con.execute(
        "CREATE TABLE jobs AS SELECT * FROM read_csv(?, delim='|', header=true, quote='', "
        "escape='', auto_detect=false, nullstr=['', 'Unknown', 'None'], ignore_errors=true, "
        f"timestampformat='%Y-%m-%dT%H:%M:%S', columns={{{columns}}})",
        [str(path)],
    )
    seconds = time.perf_counter() - began
    rows = int(con.execute("SELECT count(*) FROM jobs").fetchall()[0][0])
    con.close()
    return seconds, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    size_mb = args.path.stat().st_size / 2**20

    began = time.perf_counter()
    data = args.path.read_bytes()
    read_s = time.perf_counter() - began

    parse_times: list[float] = []
    parse_cpu: list[float] = []
    duck_times: list[float] = []
    for _ in range(max(1, args.repeat)):
        began, cpu = time.perf_counter(), time.process_time()
        batch = parse_sacct(data, source=str(args.path))
        parse_times.append(time.perf_counter() - began)
        parse_cpu.append(time.process_time() - cpu)
        counts = (batch.lines_read, batch.runs.height, batch.steps.height, batch.quarantine.height)
        del batch
        seconds, duck_rows = duckdb_baseline(args.path)
        duck_times.append(seconds)

    parse_s, duck_s = statistics.median(parse_times), statistics.median(duck_times)
    lines, runs, steps, quarantined = counts
    print(f"file             {args.path} ({size_mb:.1f} MiB, {lines:,} data lines)")
    print(f"read bytes       {read_s:6.2f} s")
    print(
        f"parse_sacct      {parse_s:6.2f} s  ({lines / parse_s / 1000:,.0f} k lines/s; "
        f"{runs:,} runs, {steps:,} steps, {quarantined:,} quarantined)  "
        f"runs: {', '.join(f'{t:.2f}' for t in parse_times)}; "
        f"CPU {statistics.median(parse_cpu):.2f} s"
    )
    print(
        f"duckdb read_csv  {duck_s:6.2f} s  ({duck_rows / duck_s / 1000:,.0f} k rows/s; "
        f"{duck_rows:,} rows)  runs: {', '.join(f'{t:.2f}' for t in duck_times)}"
    )
    print(f"ratio            {parse_s / duck_s:6.2f} x the DuckDB baseline")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(f"peak RSS         {peak_gb:6.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
