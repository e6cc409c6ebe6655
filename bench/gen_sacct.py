"""Write a deterministic synthetic ``sacct --parsable2`` dump and a matching policy.

    python bench/gen_sacct.py N OUT [--seed S]

writes OUT (a header line with the fields of ``SACCT_FORMAT``, then N jobs: allocation lines,
each followed by its steps) and ``OUT.policy.toml`` (clusters, partitions with
TRESBillingWeights, QOS, and the association tree root -> divisions -> departments -> groups
with every user of the dump placed in its accounts), so a full recompute over the dump can run.

The traps of a real site are built in (see shared/reference/perf-limits.md section 1): ~5k users
with Zipf-like activity, 3 clusters and 6 partitions, ~8 % array tasks (their JobIDRaw differs,
the last task keeps the array id, pending remainders print as ``123_[5-9]``), requeued jobs
(two records, one JobIDRaw, two Submit times), steps ``.batch`` / ``.extern`` / ``.N`` with
empty User, Partition and QOS, ``CANCELLED by UID``, RUNNING (End ``Unknown``), PENDING
(Start = End = ``Unknown``, ``None assigned``), cancelled before start (Start ``None``), memory
in M, G or T, typed GPUs, bracketed node lists, ``UNLIMITED`` and ``Partition_Limit`` time
limits, and a few job names with quotes, commas, multibyte characters or a ``|``.

Plain Python (random.Random(seed)): the same N and seed give the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.sources.sacct import SACCT_FORMAT
from models.hostlist import compress_hostlist
from models.policy import (
    Association,
    Cluster,
    Partition,
    Policy,
    Qos,
    parse_billing_weights,
)


@dataclass(frozen=True)
class Part:
    cluster: str
    name: str
    prefix: str  # node name prefix
    nodes: int
    width: int  # zero padding of node numbers
    cores: int
    mem_mb: int  # per node
    gpus: int  # per node
    gpu_type: str
    weights: str  # TRESBillingWeights


PARTITIONS = (
    Part("alpine", "compute", "cn", 1200, 4, 64, 256_000, 0, "", "CPU=1.0,Mem=0.25G"),
    Part("alpine", "gpu-v100", "gv", 96, 3, 40, 384_000, 4, "v100",
         "CPU=1.0,Mem=0.25G,GRES/gpu=8.0"),
    Part("birch", "general", "b", 800, 3, 48, 192_000, 0, "", "CPU=1.0"),
    Part("birch", "bigmem", "bm", 32, 2, 96, 3_072_000, 0, "", "CPU=1.0,Mem=0.125G"),
    Part("cedar", "a100", "ga", 64, 3, 64, 512_000, 8, "a100",
         "CPU=1.0,Mem=0.25G,GRES/gpu=16.0"),
    Part("cedar", "debug", "dbg", 8, 2, 32, 128_000, 0, "", "CPU=2.0"),
)  # fmt: skip
PART_WEIGHTS = (34, 10, 30, 4, 12, 10)  # share of the jobs
BILLING = {p.name: parse_billing_weights(p.weights) for p in PARTITIONS}
QOS = (("normal", 1.0, 80), ("high", 2.0, 8), ("low", 0.5, 10), ("debug", 1.0, 2))

# (state, weight); "CANCELLED by" gets a uid, "CANCELLED_PENDING" is cancelled before start.
STATES = (
    ("COMPLETED", 700), ("FAILED", 80), ("CANCELLED", 45), ("CANCELLED_PENDING", 15),
    ("TIMEOUT", 40), ("OUT_OF_MEMORY", 10), ("NODE_FAIL", 3), ("PREEMPTED", 5),
    ("RUNNING", 30), ("PENDING", 40), ("REQUEUED", 5), ("BOOT_FAIL", 1), ("DEADLINE", 1),
)  # fmt: skip
EXIT_CODES = {
    "COMPLETED": "0:0", "FAILED": "1:0", "CANCELLED": "0:15", "TIMEOUT": "0:15",
    "OUT_OF_MEMORY": "0:125", "NODE_FAIL": "0:0", "PREEMPTED": "0:15", "RUNNING": "0:0",
    "PENDING": "0:0", "REQUEUED": "0:0", "BOOT_FAIL": "0:0", "DEADLINE": "0:0",
}  # fmt: skip
NAME_WORDS = (
    "train", "eval", "sim", "md", "relax", "scf", "bench", "align", "assemble", "render",
    "cfd", "wrf", "lammps", "gromacs", "vasp", "bert", "resnet", "sweep", "postproc", "jupyter",
)  # fmt: skip
ODD_NAMES = (
    'run "final"', "it's-done", "a,b,c", "x=1,y=2", "résumé-α", "データ解析", 'say "hi", ok',
)  # fmt: skip
USERS = 5000
DIVISIONS, DEPARTMENTS, GROUPS = 10, 60, 430
EPOCH0 = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())
SPAN_S = 365 * 86400
DAY_TEXT = [(dt.date(2025, 1, 1) + dt.timedelta(days=d)).isoformat() for d in range(-40, 400)]


def stamp(ts: int) -> str:
    """Return ``YYYY-MM-DDTHH:MM:SS`` for an epoch second (UTC), cheaply."""
    day, sec = divmod(ts - EPOCH0, 86400)
    hours, rest = divmod(sec, 3600)
    return f"{DAY_TEXT[day + 40]}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def duration(seconds: int) -> str:
    """Return sacct's ``[D-]HH:MM:SS``."""
    days, sec = divmod(seconds, 86400)
    text = f"{sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d}"
    return f"{days}-{text}" if days else text


def mem_text(mb: int) -> str:
    """Return memory as sacct prints it: the largest unit that divides exactly."""
    if mb % (1024 * 1024) == 0:
        return f"{mb // (1024 * 1024)}T"
    if mb % 1024 == 0:
        return f"{mb // 1024}G"
    return f"{mb}M"


def account_names() -> tuple[list[tuple[str, str]], list[str]]:
    """Return (account, parent) for every account below root, and the leaf group names."""
    pairs: list[tuple[str, str]] = []
    divisions = [f"div{i:02d}" for i in range(DIVISIONS)]
    pairs += [(d, "root") for d in divisions]
    departments = [f"dept{i:02d}" for i in range(DEPARTMENTS)]
    pairs += [(d, divisions[i % DIVISIONS]) for i, d in enumerate(departments)]
    groups = [f"grp{i:03d}" for i in range(GROUPS)]
    pairs += [(g, departments[i % DEPARTMENTS]) for i, g in enumerate(groups)]
    return pairs, groups


class Generator:
    """Produces the dump's lines job by job; all randomness from one seeded generator."""

    def __init__(self, n_jobs: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n_jobs = n_jobs
        self.users = [f"u{i:04d}" for i in range(USERS)]
        self.uids = {u: 20000 + i for i, u in enumerate(self.users)}
        _, groups = account_names()
        # Every user has a primary group; one in ten also charges a second one.
        self.accounts = {
            u: [groups[self.rng.randrange(GROUPS)]]
            + ([groups[self.rng.randrange(GROUPS)]] if self.rng.random() < 0.1 else [])
            for u in self.users
        }
        clusters = sorted({p.cluster for p in PARTITIONS})
        self.next_id = {c: 1_000_000 * (i + 1) for i, c in enumerate(clusters)}
        self.now = EPOCH0 + SPAN_S  # the moment the dump was taken
        self.lines: list[str] = []

    def node_list(self, part: Part, count: int) -> tuple[str, str]:
        """Return a compressed list of ``count`` nodes of the partition, and its first node."""
        rng = self.rng
        if rng.random() < 0.8 or count >= part.nodes // 2:
            first = rng.randrange(max(1, part.nodes - count))
            numbers = list(range(first, first + count))
        else:
            numbers = sorted(rng.sample(range(part.nodes), count))
        names = [f"{part.prefix}{n:0{part.width}d}" for n in numbers]
        return compress_hostlist(names), names[0]

    def emit(self, fields: dict[str, str]) -> None:
        self.lines.append("|".join(fields.get(f, "") for f in SACCT_FORMAT))

    def job_name(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.001:
            return rng.choice(ODD_NAMES)
        if roll < 0.00105:
            return "pipe|in|name"
        return f"{rng.choice(NAME_WORDS)}-{rng.randrange(1000)}"

    def job(
        self,
        *,
        part: Part,
        user: str,
        qos: str,
        state: str,
        job_id: str,
        job_id_raw: str,
        submit: int,
        name: str,
    ) -> None:
        rng = self.rng
        if state in ("PENDING", "RUNNING"):
            # Jobs still queued or running when the dump was taken were submitted lately.
            submit = self.now - rng.randrange(2 * 86400)
        account = rng.choice(self.accounts[user])
        nodes = 1 if rng.random() < 0.75 else rng.choice((1, 2, 2, 4, 4, 8, 16))
        nodes = min(nodes, part.nodes)
        if part.gpus:
            gpus_node = rng.choice((1, 1, 2, 4, part.gpus))
            cpus_node = min(part.cores, gpus_node * rng.choice((4, 8, 10)))
        else:
            gpus_node = 0
            cpus_node = rng.choice((1, 2, 4, 8, 16, 32, part.cores))
        mem_node = min(part.mem_mb, cpus_node * rng.choice((1000, 2000, 4096, 8192, 16384)))
        limit_min = rng.choice((30, 60, 120, 240, 720, 1440, 2880, 4320))
        limit_text = duration(limit_min * 60)
        roll = rng.random()
        if roll < 0.01:
            limit_text = "UNLIMITED"
        elif roll < 0.015:
            limit_text = "Partition_Limit"
        eligible = submit + (0 if rng.random() < 0.9 else rng.randrange(3600))
        eligible_text = stamp(eligible) if rng.random() < 0.97 else "Unknown"
        wait = int(rng.expovariate(1 / 1800))
        start = eligible + wait
        run = max(1, int(rng.expovariate(1 / 5400)))
        if state == "TIMEOUT":
            run = limit_min * 60 + rng.randrange(1, 90)
        elif run > limit_min * 60:
            run = limit_min * 60
        by = ""
        if state == "PENDING" or start >= self.now:
            state = "PENDING"
            start_text = end_text = "Unknown"
            elapsed = 0
            nodes_text = first_node = "None assigned"
        elif state == "CANCELLED_PENDING":
            state, by = "CANCELLED", f" by {self.uids[user] if rng.random() < 0.9 else 0}"
            start_text, end_text = "None", stamp(min(self.now, eligible + wait // 2))
            elapsed = 0
            nodes_text = first_node = "None assigned"
        else:
            if state == "RUNNING" or start + run >= self.now:
                state = "RUNNING"
                end_text = "Unknown"
                elapsed = self.now - start
            else:
                end_text = stamp(start + run)
                elapsed = run
            if state == "CANCELLED":
                by = f" by {self.uids[user] if rng.random() < 0.9 else 0}"
            start_text = stamp(start)
            nodes_text, first_node = self.node_list(part, nodes)
        started = start_text not in ("Unknown", "None")
        cpus, mem = cpus_node * nodes, mem_node * nodes
        gpus = gpus_node * nodes
        weights = BILLING[part.name]
        billing = (
            cpus * weights.get("cpu", 0.0)
            + mem * weights.get("mem", 0.0)
            + gpus * weights.get("gres/gpu", 0.0)
        )
        tres = ""
        if started:
            items = [f"billing={int(billing)}", f"cpu={cpus}"]
            if gpus:
                items += [f"gres/gpu:{part.gpu_type}={gpus}", f"gres/gpu={gpus}"]
            items += [f"mem={mem_text(mem)}", f"node={nodes}"]
            tres = ",".join(items)
        if rng.random() < 0.3:
            req_mem = f"{mem_node}Mn" if rng.random() < 0.5 else f"{mem_node // cpus_node}Mc"
        else:
            req_mem = mem_text(mem)
        alloc = {
            "JobID": job_id,
            "JobIDRaw": job_id_raw,
            "Cluster": part.cluster,
            "Partition": part.name,
            "QOS": qos,
            "Account": account,
            "User": user,
            "Submit": stamp(submit),
            "Eligible": eligible_text,
            "Start": start_text,
            "End": end_text,
            "Elapsed": duration(elapsed),
            "ElapsedRaw": str(elapsed),
            "Timelimit": limit_text,
            "ExitCode": EXIT_CODES[state],
            "State": state + by,
            "NNodes": str(nodes),
            "NCPUS": str(cpus),
            "ReqMem": req_mem,
            "AllocTRES": tres,
            "NodeList": nodes_text,
            "Reservation": "maint" if rng.random() < 0.01 else "",
            "JobName": name,
        }
        self.emit(alloc)
        if started:
            self.steps(alloc, first_node=first_node, mem_node=mem_node, billing=int(billing))

    def steps(self, alloc: dict[str, str], *, first_node: str, mem_node: int, billing: int) -> None:
        """Emit the steps of a started job: as sacct prints them, Submit is the step's start."""
        rng = self.rng
        names = []
        if rng.random() < 0.8:
            names.append("batch")
        if rng.random() < 0.35:
            names.append("extern")
        names += [str(i) for i in range(rng.choice((0, 0, 0, 0, 1, 1, 2)))]
        cpus, nodes = int(alloc["NCPUS"]), int(alloc["NNodes"])
        for step in names:
            nodes_s = 1 if step == "batch" else nodes
            cpus_s = cpus // nodes * nodes_s
            tres = f"cpu={cpus_s},mem={mem_text(mem_node * nodes_s)},node={nodes_s}"
            if step == "extern":
                tres = f"billing={billing},{tres}"  # only .extern carries billing
            if alloc["End"] == "Unknown":
                state = "RUNNING"
            else:
                state = "COMPLETED" if step == "extern" else alloc["State"]
            self.emit(
                {
                    **alloc,
                    "JobID": f"{alloc['JobID']}.{step}",
                    "JobIDRaw": f"{alloc['JobIDRaw']}.{step}",
                    "Partition": "",
                    "QOS": "",
                    "User": "",
                    "Submit": alloc["Start"],
                    "Eligible": alloc["Start"],
                    "Timelimit": "",
                    "ExitCode": "0:0" if state == "COMPLETED" else alloc["ExitCode"],
                    "State": state,
                    "NNodes": str(nodes_s),
                    "NCPUS": str(cpus_s),
                    "ReqMem": "",
                    "AllocTRES": tres,
                    "NodeList": first_node if step == "batch" else alloc["NodeList"],
                    "Reservation": "",
                    "JobName": step if step in ("batch", "extern") else alloc["JobName"],
                }
            )

    def run(self) -> list[str]:
        rng = self.rng
        n = self.n_jobs
        weights = [1 / (i + 1) ** 1.1 for i in range(USERS)]
        users = rng.choices(self.users, weights=weights, k=n)
        parts = rng.choices(PARTITIONS, weights=PART_WEIGHTS, k=n)
        qos = rng.choices([q[0] for q in QOS], weights=[q[2] for q in QOS], k=n)
        states = rng.choices([s[0] for s in STATES], weights=[s[1] for s in STATES], k=n)
        self.lines.append("|".join(SACCT_FORMAT))
        done = 0
        while done < n:
            part, user = parts[done], users[done]
            submit = EPOCH0 + SPAN_S * done // n + rng.randrange(600)
            cluster = part.cluster
            base = self.next_id[cluster]
            self.next_id[cluster] += rng.randrange(1, 4)
            name = self.job_name()
            if rng.random() < 0.012 and n - done > 2:
                done += self.array(part, user, qos[done], states, done, base, submit, name)
                continue
            if states[done] == "REQUEUED":
                # --duplicates shows the earlier run too: same JobIDRaw, earlier Submit.
                self.job(
                    part=part,
                    user=user,
                    qos=qos[done],
                    state="REQUEUED",
                    job_id=str(base),
                    job_id_raw=str(base),
                    submit=submit - 7200,
                    name=name,
                )
                done += 1
                if done >= n:
                    break
                states[done] = "COMPLETED"
            self.job(
                part=part,
                user=user,
                qos=qos[done],
                state=states[done],
                job_id=str(base),
                job_id_raw=str(base),
                submit=submit,
                name=name,
            )
            done += 1
        return self.lines

    def array(
        self,
        part: Part,
        user: str,
        qos: str,
        states: list[str],
        done: int,
        base: int,
        submit: int,
        name: str,
    ) -> int:
        """Emit one job array; return how many allocation lines it took."""
        rng = self.rng
        size = min(rng.randrange(2, 14), self.n_jobs - done)
        pending_rest = rng.random() < 0.25 and size > 2
        started = size - 1 if pending_rest else size
        cluster = part.cluster
        for task in range(1, started + 1):
            last = task == size
            raw = base if last else self.next_id[cluster]
            if not last:
                self.next_id[cluster] += 1
            state = states[done + task - 1]
            if state in ("PENDING", "REQUEUED"):
                state = "COMPLETED"
            self.job(
                part=part,
                user=user,
                qos=qos,
                state=state,
                job_id=f"{base}_{task}",
                job_id_raw=str(raw),
                submit=submit,
                name=name,
            )
        if pending_rest:
            spec = f"[{size}]" if rng.random() < 0.5 else f"[{size}-{size + 4}%2]"
            self.job(
                part=part,
                user=user,
                qos=qos,
                state="PENDING",
                job_id=f"{base}_{spec}",
                job_id_raw=str(base),
                submit=submit,
                name=name,
            )
        return size


def policy(gen: Generator) -> Policy:
    """Return the policy that matches the dump: the same tree on every cluster."""
    pairs, _ = account_names()
    rng = random.Random(0)
    shares = {account: rng.randrange(1, 100) for account, _ in pairs}
    clusters = sorted({p.cluster for p in PARTITIONS})
    assocs: list[Association] = []
    for cluster in clusters:
        assocs.append(Association(cluster=cluster, account="root"))
        assocs += [
            Association(cluster=cluster, account=a, parent=p, shares=shares[a]) for a, p in pairs
        ]
        assocs += [
            Association(cluster=cluster, account=a, user=u)
            for u, accounts in gen.accounts.items()
            for a in dict.fromkeys(accounts)  # a second group may repeat the first: one association
        ]
    return Policy(
        clusters=[
            Cluster(
                name=c,
                partitions=[
                    Partition(name=p.name, tres_billing_weights=p.weights, default=i == 0)
                    for i, p in enumerate(q for q in PARTITIONS if q.cluster == c)
                ],
            )
            for c in clusters
        ],
        qos=[Qos(name=name, usage_factor=factor) for name, factor, _ in QOS],
        associations=assocs,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n_jobs", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    gen = Generator(args.n_jobs, args.seed)
    lines = gen.run()
    with args.out.open("w", encoding="utf-8", newline="\n") as handle:
        for i in range(0, len(lines), 100_000):
            handle.write("\n".join(lines[i : i + 100_000]))
            handle.write("\n")
    policy_path = args.out.with_name(args.out.name + ".policy.toml")
    policy_path.write_text(policy(gen).to_toml(), encoding="utf-8")
    size = args.out.stat().st_size
    print(
        f"{args.out}: {len(lines) - 1:,} data lines ({args.n_jobs:,} jobs), "
        f"{size / 2**20:.1f} MiB; {policy_path.name}; {time.perf_counter() - began:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
