"""HTTP and recompute figures of the serving path, as ratios to baselines in the same run.

    python bench/bench_http.py [--sizes 5000,20000] [--duration 10] [--workdir bench/out]
                               [--dump /tmp/bench/sacct_1000000.txt]

For each size (user associations), builds a store (a 3-level account tree, three runs per
user) and serves it with a real uvicorn (1 worker, log level warning, no access log,
``bench_routes`` on), then measures with ``wrk -t1 -c64 --latency`` (installed with apt-get
when missing), in interleaved rounds (medians):

- ``GET /v1/factors`` (token, ETag) req/s ÷ req/s of ``/bench/factors-bytes``, the same bytes
  from memory with no auth and no ETag: the bandwidth ceiling (goal ≥ 0.8);
- ``GET /v1/factors`` with a matching ``If-None-Match`` (304) ÷ ``/v1/health`` (goal ≥ 0.8);
- p99 of ``GET /v1/factors/{cluster}/{account}/{user}`` (random associations) ÷ p99 of
  ``/v1/health`` (goal ≤ 1.5); wrk sends both through the same Lua request function.

Then the recompute: ``compute_factors`` over 1M runs and 20k user associations (synthetic
runs, Zipf-like users), and over the ``gen_sacct.py`` dump (``--dump``; its policy has ~18k
associations) when it exists, read from a store ingested once into the work directory; plus the
service's whole publish (read policy and runs, compute, serialise, store) on that store.
wrk shares the machine's cores with the server: the absolute figures are lower bounds.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.auth import Role, create_token  # noqa: E402
from api.service import Service  # noqa: E402
from api.settings import Settings  # noqa: E402
from models.fairshare.factors import compute_factors  # noqa: E402
from models.frames import QUARANTINE, RUNS, STEPS, conform  # noqa: E402
from models.policy import Association, Cluster, Partition, Policy  # noqa: E402
from models.store import (  # noqa: E402
    open_store,
    read_active_policy,
    read_runs,
    write_batch,
    write_policy,
)
from models.store.handle import StoreHandle  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)
GOALS = {"factors": (">=", 0.8), "not_modified": (">=", 0.8), "p99": ("<=", 1.5)}

SERVER = """
import sys, uvicorn
sys.path.insert(0, {root!r})
from api.main import create_app
from api.settings import load_settings
from pathlib import Path
app = create_app(load_settings(Path({config!r})))
uvicorn.run(app, host="127.0.0.1", port={port}, workers=1, log_level="warning",
            access_log=False)
"""
# The single-association route and its baseline go through the same Lua request function, so
# the load generator does the same work for both.
RANDOM_PATHS = """
local paths = {{{paths}}}
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


# ----------------------------------------------------------------------------- synthetic data


def synthetic_policy(users: int, *, cluster: str = "bench") -> Policy:
    """Return a policy with ``users`` user associations: root -> 10 divisions -> departments ->
    groups of 20 users."""
    groups = max(1, users // 20)
    depts = max(1, groups // 5)
    assocs = [Association(cluster=cluster, account="root")]
    assocs += [
        Association(cluster=cluster, account=f"div{d}", parent="root", shares=10 + d)
        for d in range(10)
    ]
    assocs += [
        Association(cluster=cluster, account=f"dept{d}", parent=f"div{d % 10}", shares=5 + d % 7)
        for d in range(depts)
    ]
    assocs += [
        Association(cluster=cluster, account=f"grp{g}", parent=f"dept{g % depts}", shares=1 + g % 5)
        for g in range(groups)
    ]
    assocs += [
        Association(cluster=cluster, account=f"grp{u % groups}", user=f"u{u:05d}", shares=1)
        for u in range(users)
    ]
    partition = Partition(name="cpu", tres_billing_weights="CPU=1.0,Mem=0.25G", default=True)
    return Policy(clusters=[Cluster(name=cluster, partitions=[partition])], associations=assocs)


def synthetic_runs(policy: Policy, n: int, *, seed: int = 1, zipf: bool = False) -> pl.DataFrame:
    """Return ``n`` completed runs (``RUNS``) of the policy's users over the last 30 days."""
    rng = random.Random(seed)
    users = [(a.account, a.user) for a in policy.associations if a.user]
    cluster = policy.clusters[0].name
    if zipf:
        weights = [1 / (i + 1) ** 0.8 for i in range(len(users))]
        chosen = rng.choices(users, weights=weights, k=n)
    else:
        chosen = [users[i % len(users)] for i in range(n)]
    starts = [NOW - timedelta(seconds=rng.randrange(60, 30 * 86400)) for _ in range(n)]
    seconds = [rng.randrange(60, 12 * 3600) for _ in range(n)]
    cpus = [rng.choice([1, 4, 16, 64]) for _ in range(n)]
    return conform(
        pl.DataFrame(
            {
                "run_key": [f"{cluster}/{i}/0" for i in range(n)],
                "scheduler": "slurm",
                "cluster": cluster,
                "job_id": [str(i) for i in range(n)],
                "account": [a for a, _ in chosen],
                "user": [u for _, u in chosen],
                "partition": "cpu",
                "qos": "normal",
                "state": "COMPLETED",
                "alloc_cpus": cpus,
                "tres": [[{"name": "cpu", "count": float(c)}] for c in cpus],
                "start_at": starts,
                "end_at": [s + timedelta(seconds=d) for s, d in zip(starts, seconds, strict=True)],
                "elapsed_s": seconds,
                "source": "bench",
            }
        ),
        RUNS,
    )


def build_store(path: Path, users: int) -> dict[str, str]:
    """Create a store with the synthetic site; return tokens by role."""
    path.unlink(missing_ok=True)
    policy = synthetic_policy(users)
    con = open_store(path)
    try:
        write_policy(con, policy, origin="bench")
        write_batch(
            con,
            source="bench",
            scheduler="slurm",
            runs=synthetic_runs(policy, users * 3),
            steps=pl.DataFrame(schema=STEPS),
            quarantine=pl.DataFrame(schema=QUARANTINE),
            lines_read=users * 3,
            started_at=NOW,
        )
        return {r: create_token(con, Role(r))[1] for r in ("scheduler", "admin")}
    finally:
        con.close()


# ----------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk missing: apt-get install -y wrk", flush=True)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed and apt-get could not install it")
    return found


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    url: str, *, duration: int, headers: dict[str, str] | None = None, script: Path | None = None
) -> dict[str, float]:
    """Return rps, p50 and p99 (ms) and errors of ``wrk -t1 -c64 --latency`` on ``url``."""
    argv = [ensure_wrk(), "-t1", "-c64", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*timeout (\d+)", out)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "non_2xx": float(bad.group(1)) if bad else 0.0,
        "timeouts": float(errors.group(1)) if errors else 0.0,
    }


def _line(label: str, r: dict[str, float]) -> str:
    extra = ""
    if r["non_2xx"] or r["timeouts"]:
        extra = f"  [{r['non_2xx']:.0f} non-2xx, {r['timeouts']:.0f} timeouts]"
    latency = f"p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms"
    return f"  {label:<44} {r['rps']:9,.0f} req/s  {latency}{extra}"


def verdict(name: str, value: float) -> str:
    op, goal = GOALS[name]
    ok = value >= goal if op == ">=" else value <= goal
    return f"{value:5.2f} (goal {op} {goal}: {'met' if ok else 'NOT met'})"


# ----------------------------------------------------------------------------- HTTP


def serve(workdir: Path, db: Path, port: int) -> subprocess.Popen[bytes]:
    config = workdir / f"bench_{port}.toml"
    config.write_text(
        f'db = "{db}"\nrecompute_interval_s = 86400\nbench_routes = true\n', encoding="utf-8"
    )
    code = SERVER.format(root=str(ROOT), config=str(config), port=port)
    log = open(workdir / f"server_{port}.log", "wb")  # noqa: SIM115 - lives with the process
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


LABELS = {
    "bare": "bare route, same bytes (ceiling)",
    "factors": "GET /v1/factors (token, ETag)",
    "health": "GET /v1/health (trivial)",
    "cached": "GET /v1/factors If-None-Match (304)",
    "one": "GET /v1/factors/{c}/{a}/{u} (random)",
}


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def bench_http(
    users: int, *, workdir: Path, duration: int, rounds: int, port: int
) -> dict[str, float]:
    db = workdir / f"http_{users}.duckdb"
    t0 = time.perf_counter()
    tokens = build_store(db, users)
    print(f"\n{users:,} user associations: store built in {time.perf_counter() - t0:.1f} s")
    server = serve(workdir, db, port)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {tokens['scheduler']}"}
    try:
        status = f"{base}/v1/status"
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        wait(
            lambda: httpx.get(status, headers=admin).json()["recompute"]["published_snapshot_id"],
            120,
            "the first snapshot",
        )
        first = httpx.get(f"{base}/v1/factors", headers=auth)
        body = first.json()
        etag = first.headers["etag"]
        print(
            f"  snapshot {body['snapshot']['snapshot_id']}: {body['count']:,} associations, "
            f"JSON {len(first.content) / 1e6:.2f} MB"
        )
        rows = [r for r in body["data"] if r["user"]]
        sample = random.Random(3).sample(rows, min(1000, len(rows)))
        paths = ",".join(f'"/v1/factors/{r["cluster"]}/{r["account"]}/{r["user"]}"' for r in sample)
        script = workdir / f"assoc_{users}.lua"
        script.write_text(RANDOM_PATHS.format(paths=paths, token=tokens["scheduler"]))
        trivial = workdir / "health.lua"
        trivial.write_text(RANDOM_PATHS.format(paths='"/v1/health"', token=tokens["scheduler"]))

        runs: dict[str, list[dict[str, float]]] = {name: [] for name in LABELS}
        for _ in range(rounds):  # interleaved rounds, medians: the VM is noisy
            runs["bare"].append(wrk(f"{base}/bench/factors-bytes", duration=duration))
            runs["factors"].append(wrk(f"{base}/v1/factors", duration=duration, headers=auth))
            runs["health"].append(wrk(base, duration=duration, script=trivial))
            runs["cached"].append(
                wrk(
                    f"{base}/v1/factors",
                    duration=duration,
                    headers={**auth, "If-None-Match": etag},
                )
            )
            runs["one"].append(wrk(base, duration=duration, script=script))
        medians = {name: _median(results) for name, results in runs.items()}
        for name, label in LABELS.items():
            print(_line(label, medians[name]))
    finally:
        server.terminate()
        server.wait(timeout=60)
    bare, factors, health = medians["bare"], medians["factors"], medians["health"]
    cached, one = medians["cached"], medians["one"]
    figures = {
        "factors": factors["rps"] / bare["rps"],
        "not_modified": cached["rps"] / health["rps"],
        "p99": one["p99"] / health["p99"],
    }
    print(f"  factors / bare route            {verdict('factors', figures['factors'])}")
    print(f"  304 / health                    {verdict('not_modified', figures['not_modified'])}")
    print(f"  one association p99 / health p99 {verdict('p99', figures['p99'])}")
    return figures


# ----------------------------------------------------------------------------- recompute


def best_of(n: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench_recompute_synthetic(users: int, runs: int) -> float:
    policy = synthetic_policy(users)
    frame = synthetic_runs(policy, runs, zipf=True).select(
        "run_key", "cluster", "account", "user", "partition", "qos", "state", "tres",
        "alloc_cpus", "start_at", "end_at", "elapsed_s",
    )  # fmt: skip
    seconds, factors = best_of(3, lambda: compute_factors(frame.lazy(), policy, as_of=NOW))
    print(
        f"  compute_factors, synthetic: {runs:,} runs -> {factors.height:,} associations "
        f"({users:,} users)   {seconds:6.3f} s (best of 3; goal <= 1 s)"
    )
    return float(seconds)


def bench_recompute_dump(dump: Path, workdir: Path) -> None:
    policy_file = Path(f"{dump}.policy.toml")
    if not dump.exists() or not policy_file.exists():
        print(f"  (no {dump}: python bench/gen_sacct.py 1000000 {dump} makes one)")
        return
    store = workdir / f"{dump.stem}.duckdb"
    if not store.exists():
        print(f"  ingesting {dump} once into {store} ...", flush=True)
        from ingest.load import load_sacct_file
        from models.policy import load_policy

        con = open_store(store)
        write_policy(con, load_policy(policy_file), origin=str(policy_file))
        load_sacct_file(con, dump)
        con.close()
    handle = StoreHandle.open(store)
    try:
        with handle.reading() as cur:
            active = read_active_policy(cur)
            assert active is not None
            read_s, runs = best_of(3, lambda: read_runs(handle.read()))
        compute_s, factors = best_of(
            3, lambda: compute_factors(runs.lazy(), active.policy, as_of=NOW, unknown="drop")
        )
        print(
            f"  compute_factors, gen_sacct dump: {runs.height:,} runs -> {factors.height:,} "
            f"associations   {compute_s:6.3f} s (best of 3; read_runs {read_s:.2f} s)"
        )
        service = Service(Settings(db=store, snapshots_kept=2), handle)
        publish_s, _ = best_of(3, service.publish)
        print(
            f"  whole publish (read policy+runs, compute, serialise, store)      "
            f"{publish_s:6.3f} s (best of 3)"
        )
    finally:
        handle.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--dump", type=Path, default=Path("/tmp/bench/sacct_1000000.txt"))
    parser.add_argument("--port", type=int, default=8431)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-recompute", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"fairledger HTTP bench, {os.cpu_count()} CPUs, wrk -t1 -c64 -d{args.duration}s, "
        f"medians of {args.rounds} interleaved rounds"
    )
    results = {}
    if not args.skip_http:
        for size in (int(s) for s in args.sizes.split(",")):
            results[size] = bench_http(
                size,
                workdir=args.workdir,
                duration=args.duration,
                rounds=args.rounds,
                port=args.port,
            )
    if not args.skip_recompute:
        print("\nrecompute")
        bench_recompute_synthetic(20_000, 1_000_000)
        bench_recompute_dump(args.dump, args.workdir)
    if results:
        print("\nsummary (ratios)")
        for size, figures in results.items():
            print(
                f"  {size:>6,} assoc: factors/bare {figures['factors']:.2f}, "
                f"304/health {figures['not_modified']:.2f}, p99 one/health {figures['p99']:.2f}"
            )


if __name__ == "__main__":
    main()
