"""Compliance verdicts for N synthetic runs (issue 7: "Verdicts for 1M runs").

    python bench/bench_verdicts.py [--runs 1000000] [--seed 7] [--repeat 3]

A site of 2,656 nodes in four partitions (cn[0001-2000] cpu, gpu[001-256] gpu with a100/h100,
sec[001-128] secure, big[001-272] bigmem), two regimes with six certifications (named node
sets, ``*`` sets, a renewal at mid-year, a GPU-model restriction) and an inventory in which 56
GPU nodes move to the secure partition on 2026-07-01. Every run is charged to a grant with a
regime and runs on 1 to 8 consecutive nodes of its partition (4.5 on average), with a few
unknown nodes and missing node lists mixed in.

Prints, for the best of ``--repeat`` runs: the seconds ``run_verdicts`` takes (wall clock, and
the process's CPU seconds, which other load on the machine inflates less), runs/s, node
checks/s, and the ratio to a baseline measured on the same frames in the same process: a plain
polars explode of the node lists joined to the inventory and counted per run (the least any
per-node check has to do). Also times the audit-log hash of the verdict rows
(``models.compliance.verdict_audit``), which a stored batch adds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.compliance.registry import inventory_frame
from models.compliance.verdict_audit import verdict_rows_sha256
from models.compliance.verdicts import run_verdicts
from models.policy import Policy

POLICY = {
    "clusters": [
        {
            "name": "hpc",
            "partitions": [{"name": p} for p in ("cpu", "gpu", "secure", "bigmem")],
        }
    ],
    "grants": [
        {
            "id": "NIH-1",
            "funder": "NIH",
            "budget": "1",
            "start": "2026-01-01",
            "end": "2026-12-31",
            "regime": "hipaa",
        },
        {
            "id": "DOE-9",
            "funder": "DOE",
            "budget": "1",
            "start": "2026-01-01",
            "end": "2026-12-31",
            "regime": "export-controlled",
        },
    ],
    "compliance": {
        "regimes": [{"name": "hipaa"}, {"name": "export-controlled"}],
        "certifications": [
            {
                "id": "hipaa-sec",
                "regime": "hipaa",
                "cluster": "hpc",
                "partitions": ["secure"],
                "nodes": "sec[001-128],gpu[200-256]",
                "start": "2026-01-01",
            },
            {
                "id": "hipaa-gpu-h1",
                "regime": "hipaa",
                "cluster": "hpc",
                "partitions": ["gpu"],
                "nodes": "gpu[001-128]",
                "gpu_models": ["a100"],
                "start": "2026-01-01",
                "end": "2026-06-30",
            },
            {
                "id": "hipaa-gpu-h2",
                "regime": "hipaa",
                "cluster": "hpc",
                "partitions": ["gpu"],
                "nodes": "gpu[001-096]",
                "gpu_models": ["a100"],
                "start": "2026-07-01",
            },
            {
                "id": "ec-cpu",
                "regime": "export-controlled",
                "cluster": "hpc",
                "partitions": ["cpu", "bigmem"],
                "start": "2026-01-01",
            },
            {
                "id": "ec-gpu",
                "regime": "export-controlled",
                "cluster": "hpc",
                "partitions": ["gpu"],
                "nodes": "gpu[001-256]",
                "start": "2026-01-01",
                "end": "2026-09-30",
            },
            {
                "id": "ec-sec",
                "regime": "export-controlled",
                "cluster": "hpc",
                "partitions": ["*"],
                "nodes": "sec[001-128]",
                "start": "2026-03-01",
            },
        ],
        "nodes": [
            {
                "cluster": "hpc",
                "names": "cn[0001-2000]",
                "partitions": ["cpu"],
                "start": "2025-01-01",
            },
            {
                "cluster": "hpc",
                "names": "gpu[001-160]",
                "partitions": ["gpu"],
                "gpu_model": "a100",
                "start": "2025-01-01",
            },
            {
                "cluster": "hpc",
                "names": "gpu[161-199]",
                "partitions": ["gpu"],
                "gpu_model": "h100",
                "start": "2025-01-01",
            },
            {
                "cluster": "hpc",
                "names": "gpu[200-256]",
                "partitions": ["gpu"],
                "gpu_model": "h100",
                "start": "2025-01-01",
                "end": "2026-06-30",
            },
            {
                "cluster": "hpc",
                "names": "gpu[200-256]",
                "partitions": ["secure"],
                "gpu_model": "h100",
                "start": "2026-07-01",
            },
            {
                "cluster": "hpc",
                "names": "sec[001-128]",
                "partitions": ["secure"],
                "start": "2025-06-01",
            },
            {
                "cluster": "hpc",
                "names": "big[001-272]",
                "partitions": ["bigmem"],
                "start": "2025-01-01",
            },
        ],
    },
}

# partition: (node prefix, zero padding, first number, how many)
NODE_SETS = {
    "cpu": ("cn", 4, 1, 2000),
    "gpu": ("gpu", 3, 1, 256),
    "secure": ("sec", 3, 1, 128),
    "bigmem": ("big", 3, 1, 272),
}


def synthetic_runs(n: int, seed: int) -> pl.DataFrame:
    """Return ``n`` runs (the columns ``run_verdicts`` reads) spread over 2026."""
    rng = random.Random(seed)
    parts = rng.choices(list(NODE_SETS), weights=[0.5, 0.25, 0.15, 0.1], k=n)
    year_start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    start = [int((year_start + rng.uniform(0, 364 * 86400)) * 1e6) for _ in range(n)]
    frame = pl.DataFrame(
        {
            "run_key": [f"hpc/{i}/0" for i in range(n)],
            "grant_id": rng.choices(["NIH-1", "DOE-9"], k=n),
            "cluster": ["hpc"] * n,
            "partition": parts,
            "gpu_type": ["a100" if p == "gpu" else None for p in parts],
            "start_at": start,
            "end_at": [s + int(rng.expovariate(1 / 6 / 3600) * 1e6) for s in start],
            "first": [rng.random() for _ in range(n)],
            "count": [rng.randint(1, 8) for _ in range(n)],
            "odd": [rng.random() for _ in range(n)],
        }
    ).with_columns(pl.col("start_at", "end_at").cast(pl.Datetime("us", "UTC")))
    pieces = []
    for name, (prefix, width, first, size) in NODE_SETS.items():
        part = frame.filter(pl.col("partition") == name)
        lo = (pl.col("first") * (size - 8)).cast(pl.Int64) + first
        pieces.append(
            part.with_columns(
                nodes=pl.int_ranges(lo, lo + pl.col("count")).list.eval(
                    pl.concat_str(pl.lit(prefix), pl.element().cast(pl.String).str.zfill(width))
                )
            )
        )
    runs = pl.concat(pieces)
    # 0.1 % without a node list, 0.1 % with a node unknown to the inventory
    return runs.with_columns(
        nodes=pl.when(pl.col("odd") < 0.001)
        .then(pl.lit([], dtype=pl.List(pl.String)))
        .when(pl.col("odd") > 0.999)
        .then(pl.col("nodes").list.concat(pl.lit(["ghost01"])))
        .otherwise("nodes")
    ).drop("first", "count", "odd")


def baseline(runs: pl.DataFrame, inventory: pl.DataFrame) -> pl.DataFrame:
    """Return per run how many inventory rows its nodes match (explode + join + count)."""
    return (
        runs.lazy()
        .select("run_key", "cluster", pl.col("nodes").alias("node"))
        .explode("node")
        .join(inventory.lazy(), on=["cluster", "node"], how="left")
        .group_by("run_key")
        .agg(pl.len())
        .collect()
    )


def best_of(repeat: int, work: object) -> tuple[float, float, pl.DataFrame]:
    """Return (best wall seconds, process CPU seconds of that run, its result)."""
    best, result = (float("inf"), 0.0), pl.DataFrame()
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best[0], best[1], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    policy = Policy.model_validate(POLICY)
    runs = synthetic_runs(args.runs, args.seed)
    node_checks = int(runs.get_column("nodes").list.len().sum())
    inventory = inventory_frame(policy.compliance.nodes)

    base_s, base_cpu, _ = best_of(args.repeat, lambda: baseline(runs, inventory))
    verdict_s, verdict_cpu, verdicts = best_of(
        args.repeat,
        lambda: run_verdicts(runs, grants=policy.grants, compliance=policy.compliance),
    )
    hash_s, hash_cpu, _ = best_of(
        1, lambda: pl.DataFrame({"h": [verdict_rows_sha256(verdicts.with_columns(row_hash=None))]})
    )
    counts = dict(verdicts.group_by("verdict").len().sort("verdict").iter_rows())
    rules = verdicts.group_by("rule").len().sort("len", descending=True).head(6)
    print(f"runs: {runs.height:,}, node checks: {node_checks:,} (x2: start and end)")
    print(
        f"verdicts: {verdict_s:.2f} s, {runs.height / verdict_s:,.0f} runs/s, "
        f"{node_checks / verdict_s:,.0f} nodes/s (CPU {verdict_cpu:.2f} s)"
    )
    print(
        f"baseline (explode + join inventory + count): {base_s:.2f} s (CPU {base_cpu:.2f} s); "
        f"ratio {verdict_s / base_s:.1f}x"
    )
    print(f"audit hash of the rows (canonical JSON lines): {hash_s:.2f} s (CPU {hash_cpu:.2f} s)")
    print(f"counts: {counts}")
    print("top rules:", dict(rules.iter_rows()))


if __name__ == "__main__":
    main()
