"""Scale: a 10M-run store on this machine (issue 5, item 7).

    python bench/bench_scale.py [--jobs 10000000] [--seed 42] [--workdir /tmp/bench10m]
                                [--chunk-lines 500000] [--keep]

Generates the dump with bench/gen_sacct.py's generator, streamed to disk (the generator's own
``main`` keeps every line in memory: ~5.5 GB of text per 10M jobs), then runs each phase in its
own process so its peak RSS (``resource.getrusage``) is its own:

1. ``ingest``: ``load_sacct_file(..., chunk_lines=N)`` (what ``fairledger ingest file`` does)
   into an on-disk store: time, rate, peak RSS, store file size;
2. ``recompute``: ``read_runs`` + ``compute_factors`` over every run: time of each, peak RSS;
3. ``publish``: the service's recompute-and-publish (``Service.publish``) on that store: time of
   the first publish (snapshot written) and of a second one (nothing new), peak RSS;
4. ``incremental``: a 10k-run window (new jobs) landed into the full store: time, peak RSS.

The dump and the store are deleted at the end unless ``--keep``; a dump already in the workdir
(``sacct_<jobs>.txt`` with its policy) is reused.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest.load import CHUNK_LINES  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def generate(jobs: int, seed: int, out: Path) -> float:
    """Write the dump and its policy, streaming lines to disk; return the seconds taken."""
    from bench import gen_sacct

    class Streaming(gen_sacct.Generator):
        def __init__(self, n_jobs: int, seed: int, handle: TextIO) -> None:
            super().__init__(n_jobs, seed)
            self.handle = handle

        def emit(self, fields: dict[str, str]) -> None:
            super().emit(fields)
            if len(self.lines) >= 200_000:
                self.flush()

        def flush(self) -> None:
            if self.lines:
                self.handle.write("\n".join(self.lines))
                self.handle.write("\n")
                self.lines.clear()

    began = time.perf_counter()
    with out.open("w", encoding="utf-8", newline="\n") as handle:
        gen = Streaming(jobs, seed, handle)
        gen.run()
        gen.flush()
    policy = out.with_name(out.name + ".policy.toml")
    policy.write_text(gen_sacct.policy(gen).to_toml(), encoding="utf-8")
    return time.perf_counter() - began


def window(dump: Path, out: Path, jobs: int) -> Path:
    """Write a file of ``jobs`` new jobs: the dump's first jobs with other job ids."""
    lines: list[str] = []
    with dump.open(encoding="utf-8") as handle:
        header = next(handle)
        count = 0
        for line in handle:
            job_id, raw, rest = line.split("|", 2)
            if "." not in job_id:
                count += 1
                if count > jobs:
                    break
            lines.append(f"9{job_id}|9{raw}|{rest}")
    out.write_text(header + "".join(lines), encoding="utf-8")
    return out


def phase_ingest(store: Path, dump: Path, chunk_lines: int) -> dict[str, Any]:
    from ingest.load import LoadProgress, load_sacct_file
    from models.policy import load_policy
    from models.store import open_store, write_policy

    policy = Path(f"{dump}.policy.toml")
    con = open_store(store)
    write_policy(con, load_policy(policy), origin=str(policy))
    began = time.perf_counter()

    def report(p: LoadProgress) -> None:
        if p.batches % 10 == 0:
            seconds = time.perf_counter() - began
            print(
                f"  {p.batches} batches, {p.lines_done:,} lines, "
                f"{p.bytes_done / p.bytes_total:.0%} in {seconds:.0f} s "
                f"(RSS peak {_peak_rss_mb():,.0f} MB)",
                file=sys.stderr,
                flush=True,
            )

    loaded = load_sacct_file(con, dump, chunk_lines=chunk_lines, on_progress=report)
    seconds = time.perf_counter() - began
    con.execute("CHECKPOINT")
    con.close()
    s = loaded.summary
    return {
        "seconds": seconds,
        "batches": len(loaded.batches),
        "lines": s.lines_read,
        "runs": s.runs_new + s.runs_changed,
        "steps": s.steps_new,
        "quarantined": s.quarantined,
        "describe": loaded.describe(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def phase_recompute(store: Path, *, lean: bool = False) -> dict[str, Any]:
    """Time ``read_runs`` (the service's columns, or ``FACTOR_COLUMNS`` when ``lean``) and
    ``compute_factors`` over every run of the store."""
    from datetime import UTC, datetime

    from models.fairshare.factors import compute_factors
    from models.store import open_store, read_active_policy, read_runs
    from models.store.runs import FACTOR_COLUMNS, USAGE_COLUMNS

    con = open_store(store)
    active = read_active_policy(con)
    assert active is not None
    clusters = [c.name for c in active.policy.clusters]
    began = time.perf_counter()
    runs = read_runs(con, clusters=clusters, columns=FACTOR_COLUMNS if lean else USAGE_COLUMNS)
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    factors = compute_factors(runs.lazy(), active.policy, as_of=datetime.now(UTC), unknown="drop")
    compute_s = time.perf_counter() - began
    con.close()
    return {
        "read_s": read_s,
        "compute_s": compute_s,
        "runs": runs.height,
        "runs_mb": runs.estimated_size() / 1e6,
        "associations": factors.height,
        "peak_rss_mb": _peak_rss_mb(),
    }


def phase_publish(store: Path) -> dict[str, Any]:
    from api.service import Service
    from api.settings import Settings
    from models.store.handle import StoreHandle

    handle = StoreHandle.open(store)
    service = Service(Settings(db=store), handle)
    service.load()
    began = time.perf_counter()
    first = service.publish()
    first_s = time.perf_counter() - began
    began = time.perf_counter()
    second = service.publish()
    second_s = time.perf_counter() - began
    handle.close()
    return {
        "first_s": first_s,
        "first_published": first is not None,
        "second_s": second_s,
        "second_published": second is not None,
        "associations": first.frame.height if first is not None else None,
        "peak_rss_mb": _peak_rss_mb(),
    }


def phase_incremental(store: Path, dump: Path, jobs: int) -> dict[str, Any]:
    from ingest.load import load_sacct_file
    from models.store import open_store

    path = window(dump, dump.with_name("window.txt"), jobs)
    con = open_store(store)
    began = time.perf_counter()
    loaded = load_sacct_file(con, path, chunk_lines=250_000)
    seconds = time.perf_counter() - began
    con.close()
    path.unlink()
    return {"seconds": seconds, "describe": loaded.describe(), "peak_rss_mb": _peak_rss_mb()}


def _phase(name: str, *args: str) -> dict[str, Any]:
    """Run one phase in a fresh process; return what it reports."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--phase", name, *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - began
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench10m"))
    parser.add_argument("--chunk-lines", type=int, default=CHUNK_LINES)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the dump and the store")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # a child process: one phase, its result as the last line of stdout
        phases = {
            "ingest": lambda: phase_ingest(args.store, args.dump, args.chunk_lines),
            "recompute": lambda: phase_recompute(args.store),
            "recompute-lean": lambda: phase_recompute(args.store, lean=True),
            "publish": lambda: phase_publish(args.store),
            "incremental": lambda: phase_incremental(args.store, args.dump, args.window),
        }
        print(json.dumps(phases[args.phase]()))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    dump = args.workdir / f"sacct_{args.jobs}.txt"
    store = args.workdir / "store.duckdb"
    if dump.exists() and Path(f"{dump}.policy.toml").exists():
        print(f"reusing {dump}")
    else:
        seconds = generate(args.jobs, args.seed, dump)
        print(f"generate {args.jobs:,} jobs: {seconds:.0f} s")
    size = dump.stat().st_size
    print(f"dump: {dump} ({size / 1e9:.2f} GB)", flush=True)
    store.unlink(missing_ok=True)
    common = ["--store", str(store), "--dump", str(dump)]

    ingest = _phase("ingest", *common, "--chunk-lines", str(args.chunk_lines))
    store_mb = store.stat().st_size / 1e6
    print(
        f"ingest: {ingest['seconds']:.0f} s, {ingest['batches']} batches, "
        f"{ingest['lines'] / ingest['seconds']:,.0f} lines/s, "
        f"{size / 1e6 / ingest['seconds']:.1f} MB/s, peak RSS {ingest['peak_rss_mb']:,.0f} MB; "
        f"store {store_mb:,.0f} MB\n    {ingest['describe']}",
        flush=True,
    )
    recompute = _phase("recompute", *common)
    print(
        f"recompute: read_runs {recompute['read_s']:.2f} s ({recompute['runs']:,} runs, "
        f"{recompute['runs_mb']:,.0f} MB frame) + compute_factors {recompute['compute_s']:.2f} s "
        f"-> {recompute['associations']:,} associations; peak RSS "
        f"{recompute['peak_rss_mb']:,.0f} MB",
        flush=True,
    )
    lean = _phase("recompute-lean", *common)
    print(
        f"recompute reading FACTOR_COLUMNS only: read_runs {lean['read_s']:.2f} s "
        f"({lean['runs_mb']:,.0f} MB frame) + compute_factors {lean['compute_s']:.2f} s; "
        f"peak RSS {lean['peak_rss_mb']:,.0f} MB",
        flush=True,
    )
    publish = _phase("publish", *common)
    print(
        f"publish: first {publish['first_s']:.2f} s (published: {publish['first_published']}), "
        f"second {publish['second_s']:.2f} s (published: {publish['second_published']}), "
        f"{publish['associations']} associations; "
        f"peak RSS {publish['peak_rss_mb']:,.0f} MB",
        flush=True,
    )
    incremental = _phase("incremental", *common, "--window", str(args.window))
    print(
        f"incremental {args.window:,}-job window into the full store: "
        f"{incremental['seconds']:.2f} s, peak RSS {incremental['peak_rss_mb']:,.0f} MB\n"
        f"    {incremental['describe']}",
        flush=True,
    )
    if not args.keep:
        store.unlink(missing_ok=True)
        dump.unlink(missing_ok=True)
        Path(f"{dump}.policy.toml").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
