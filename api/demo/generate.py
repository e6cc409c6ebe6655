"""Regenerate the embedded demo site: ``python -m api.demo.generate`` writes policy.toml and
sacct.txt beside this file. Deterministic (fixed seed); the files are committed.

The site: two clusters (``hpc``: cpu, bigmem and an A100 gpu partition; ``ai``: H100 nodes and a
debug partition), 50 accounts in a 3-level tree under root (5 divisions, 15 departments, 30
groups), 300 users (some in two groups, some ``Fairshare=parent``), and 90 days of jobs: GPU
jobs, multi-node jobs, job arrays, failures, timeouts, out-of-memory, node failures, jobs
cancelled by an admin, jobs still running and jobs still pending at the end, scavenger QOS.
Activity is skewed (a few heavy users, a long tail) so the factors spread.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
START = datetime(2026, 8, 1)  # noqa: DTZ001 - sacct prints zone-less times; the demo's are UTC
DAYS = 90
END = START + timedelta(days=DAYS)
SEED = 2026
USERS = 300

DIVISIONS = {  # division: (shares, departments)
    "sciences": (40, ["physics", "chemistry", "biology"]),
    "engineering": (30, ["mech", "elec", "civil"]),
    "medicine": (20, ["genomics", "imaging", "epidemiology"]),
    "computing": (30, ["ml", "systems", "theory"]),
    "humanities": (5, ["linguistics", "history", "economics"]),
}
GROUP_SUFFIXES = ("lab", "hpc")  # each department has two groups: <dept>-lab, <dept>-hpc

# partition: (billing weights, node prefix, nodes, cpus per node, gpus per node, gpu type)
PARTITIONS: dict[str, dict[str, tuple[str, str, int, int, int, str]]] = {
    "hpc": {
        "cpu": ("CPU=1.0,Mem=0.25G", "c", 64, 64, 0, ""),
        "bigmem": ("CPU=1.0,Mem=0.5G", "m", 4, 64, 0, ""),
        "gpu": ("CPU=1.0,Mem=0.25G,GRES/gpu=16.0", "g", 8, 32, 4, "a100"),
    },
    "ai": {
        "h100": ("CPU=0.5,Mem=0.1G,GRES/gpu=32.0", "h", 16, 64, 8, "h100"),
        "debug": ("CPU=0.5,Mem=0.1G,GRES/gpu=32.0", "hd", 2, 64, 8, "h100"),
    },
}
DEFAULT_PARTITION = {"hpc": "cpu", "ai": "h100"}
QOS = {"normal": 1.0, "high": 2.0, "scavenger": 0.25, "debug": 1.0}
FIELDS = (
    "JobID|JobIDRaw|Cluster|Partition|QOS|Account|User|Submit|Eligible|Start|End|Elapsed|"
    "ElapsedRaw|Timelimit|ExitCode|State|NNodes|NCPUS|ReqMem|AllocTRES|NodeList|Reservation|"
    "JobName"
)
NAMES = ("vasp", "lammps", "gromacs", "train", "finetune", "eval", "analysis", "préparation",
         "sim", "cfd", "align", "render", "notebook")  # fmt: skip
ENDINGS = [  # (state, exit code, weight)
    ("COMPLETED", "0:0", 78), ("FAILED", "1:0", 8), ("TIMEOUT", "0:15", 5),
    ("CANCELLED by 0", "0:15", 3), ("CANCELLED by {uid}", "0:15", 3),
    ("OUT_OF_MEMORY", "0:125", 2), ("NODE_FAIL", "0:0", 1),
]  # fmt: skip


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    groups: tuple[str, ...]  # first is the main one
    clusters: tuple[str, ...]
    jobs_per_day: float
    gpu_share: float
    parent_shares: bool


def _groups() -> list[tuple[str, str, str]]:
    """Return (group, department, division) for the 30 leaf accounts."""
    return [
        (f"{dept}-{suffix}", dept, division)
        for division, (_, depts) in DIVISIONS.items()
        for dept in depts
        for suffix in GROUP_SUFFIXES
    ]


def _users(rng: random.Random) -> list[User]:
    groups = _groups()
    users = []
    for i in range(USERS):
        group, _, division = groups[i % len(groups)]
        extra = rng.random() < 0.1
        other = rng.choice([g for g, _, _ in groups if g != group]) if extra else None
        gpu_heavy = division in ("computing", "medicine") or rng.random() < 0.15
        clusters = ("hpc", "ai") if gpu_heavy else ("hpc",)
        users.append(
            User(
                name=f"u{i:03d}",
                uid=10000 + i,
                groups=(group, other) if other else (group,),
                clusters=clusters,
                # Zipf-like: a few users run most jobs
                jobs_per_day=min(4.0, 1.6 / (1 + (rng.random() * 40))) * rng.choice([1, 1, 1, 4]),
                gpu_share=rng.uniform(0.4, 0.9) if gpu_heavy else rng.uniform(0.0, 0.1),
                parent_shares=rng.random() < 0.05,
            )
        )
    return users


def _policy(users: list[User]) -> str:
    lines: list[str] = []
    for cluster, partitions in PARTITIONS.items():
        lines += ["[[clusters]]", f'name = "{cluster}"', "partitions = ["]
        for name, (weights, *_rest) in partitions.items():
            default = str(name == DEFAULT_PARTITION[cluster]).lower()
            lines.append(
                f'    {{ name = "{name}", tres_billing_weights = "{weights}", '
                f"default = {default} }},"
            )
        lines += ["]", ""]
    for name, factor in QOS.items():
        lines += ["[[qos]]", f'name = "{name}"', f"usage_factor = {factor}", ""]
    lines += ["[decay]", "half_life_s = 604800", 'model = "slurm"', ""]
    lines += ["[fairshare]", 'algorithm = "fair_tree"', ""]

    def assoc(cluster: str, account: str, **fields: object) -> None:
        lines.extend(["[[associations]]", f'cluster = "{cluster}"', f'account = "{account}"'])
        for key, value in fields.items():
            lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
        lines.append("")

    for cluster in PARTITIONS:
        assoc(cluster, "root")
        assoc(cluster, "root", user="root", shares=1)
        for division, (division_shares, depts) in DIVISIONS.items():
            assoc(cluster, division, parent="root", shares=division_shares)
            for n, dept in enumerate(depts):
                assoc(cluster, dept, parent=division, shares=10 + 5 * n)
                for m, suffix in enumerate(GROUP_SUFFIXES):
                    assoc(cluster, f"{dept}-{suffix}", parent=dept, shares=20 - 10 * m)
        for user in users:
            if cluster not in user.clusters:
                continue
            for group in user.groups:
                shares: object = "parent" if user.parent_shares else 1 + user.uid % 3
                assoc(cluster, group, user=user.name, shares=shares)
    return "\n".join(lines)


def _fmt(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S") if t else "Unknown"


def _elapsed(seconds: int) -> str:
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _nodelist(prefix: str, width: int, numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"{prefix}{numbers[0]:0{width}d}"
    first, last = numbers[0], numbers[-1]
    return f"{prefix}[{first:0{width}d}-{last:0{width}d}]"


class _Jobs:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows = [FIELDS]
        self.next_id = 100000
        self.runs = 0

    def add(self, user: User, submit: datetime) -> None:
        rng = self.rng
        cluster = rng.choice(user.clusters)
        gpu = rng.random() < user.gpu_share or cluster == "ai"
        if cluster == "ai":
            partition = "debug" if rng.random() < 0.1 else "h100"
        elif gpu:
            partition = "gpu"
        else:
            partition = "bigmem" if rng.random() < 0.08 else "cpu"
        _, prefix, n_nodes, node_cpus, node_gpus, gpu_type = PARTITIONS[cluster][partition]
        nodes = rng.choices([1, 2, 4], weights=[85, 10, 5])[0] if partition == "cpu" else 1
        gpus = rng.choice([1, 2, 4, node_gpus]) if node_gpus else 0
        cpus = nodes * (rng.choice([1, 4, 8, 16, 32, node_cpus]) if not gpus else 8 * gpus)
        cpus = min(cpus, nodes * node_cpus)
        mem_mb = cpus * rng.choice([1000, 2000, 4000]) * (4 if partition == "bigmem" else 1)
        qos = "debug" if partition == "debug" else rng.choices(
            ["normal", "high", "scavenger"], weights=[85, 5, 10]
        )[0]  # fmt: skip
        limit = 1800 if partition == "debug" else rng.choice([3600, 4 * 3600, 12 * 3600, 86400])
        account = user.groups[0] if len(user.groups) == 1 or rng.random() < 0.7 else user.groups[1]
        name = rng.choice(NAMES)
        tasks = rng.randint(4, 16) if rng.random() < 0.02 else 0  # an array job
        array_id = self.next_id
        for task in range(max(tasks, 1)):
            self.next_id += 1
            job_raw = self.next_id
            job_id = f"{array_id}_{task}" if tasks else str(job_raw)
            eligible = submit + timedelta(seconds=task * rng.randrange(0, 120))
            first = rng.randrange(1, n_nodes - nodes + 2)
            nodelist = _nodelist(prefix, 3 if n_nodes > 9 else 2, list(range(first, first + nodes)))
            tres = f"billing={cpus},cpu={cpus}"
            if gpus:
                tres += f",gres/gpu:{gpu_type}={gpus},gres/gpu={gpus}"
            tres += f",mem={mem_mb}M,node={nodes}"
            start = eligible + timedelta(seconds=rng.randrange(5, 6 * 3600))
            state, exit_code = "", "0:0"
            if start >= END:  # still pending when the records were taken
                self._row(job_id, job_raw, cluster, partition, qos, account, user, submit,
                          eligible, None, None, 0, limit, "0:0", "PENDING", nodes, cpus, mem_mb,
                          f"billing={cpus},cpu={cpus},mem={mem_mb}M,node={nodes}",
                          "None assigned", name)  # fmt: skip
                continue
            run = int(min(limit, rng.expovariate(3 / limit)) + rng.randrange(5, 60))
            ending = rng.choices(ENDINGS, weights=[w for *_, w in ENDINGS])[0]
            state, exit_code = ending[0].format(uid=user.uid), ending[1]
            if state == "TIMEOUT":
                run = limit + rng.randrange(10, 90)
            elif state == "NODE_FAIL":
                run = rng.randrange(60, max(61, run))
            end: datetime | None = start + timedelta(seconds=run)
            if end is not None and end >= END:
                end, state, exit_code = None, "RUNNING", "0:0"
                run = int((END - start).total_seconds())
            self._row(job_id, job_raw, cluster, partition, qos, account, user, submit, eligible,
                      start, end, run, limit, exit_code, state, nodes, cpus, mem_mb, tres,
                      nodelist, name)  # fmt: skip
            if end is not None and rng.random() < 0.3:  # a batch step for some jobs
                self.rows.append(
                    f"{job_id}.batch|{job_raw}.batch|{cluster}|||{account}||{_fmt(start)}|"
                    f"{_fmt(start)}|{_fmt(start)}|{_fmt(end)}|{_elapsed(run)}|{run}||{exit_code}|"
                    f"{state.split()[0]}|1|{cpus // nodes}||cpu={cpus // nodes},"
                    f"mem={mem_mb // nodes}M,node=1|{nodelist.split('[')[0]}||batch"
                )

    def _row(self, job_id: str, job_raw: int, cluster: str, partition: str, qos: str,
             account: str, user: User, submit: datetime, eligible: datetime,
             start: datetime | None, end: datetime | None, run: int, limit: int, exit_code: str,
             state: str, nodes: int, cpus: int, mem_mb: int, tres: str, nodelist: str,
             name: str) -> None:  # fmt: skip
        self.runs += 1
        self.rows.append(
            f"{job_id}|{job_raw}|{cluster}|{partition}|{qos}|{account}|{user.name}|"
            f"{_fmt(submit)}|{_fmt(eligible)}|{_fmt(start)}|{_fmt(end)}|{_elapsed(run)}|{run}|"
            f"{_elapsed(limit)}|{exit_code}|{state}|{nodes}|{cpus}|{mem_mb}M|{tres}|{nodelist}||"
            f"{name}"
        )


def _sacct(rng: random.Random, users: list[User]) -> tuple[str, int]:
    jobs = _Jobs(rng)
    for day in range(DAYS):
        for user in users:
            rate = user.jobs_per_day * (0.3 if (START + timedelta(days=day)).weekday() >= 5 else 1)
            count = int(rate) + (rng.random() < rate % 1)
            for _ in range(count):
                submit = START + timedelta(days=day, seconds=rng.randrange(86400))
                jobs.add(user, submit)
    return "\n".join(jobs.rows) + "\n", jobs.runs


def main() -> None:
    """Write the demo files."""
    rng = random.Random(SEED)
    users = _users(rng)
    (HERE / "policy.toml").write_text(_policy(users), encoding="utf-8")
    text, runs = _sacct(rng, users)
    (HERE / "sacct.txt").write_text(text, encoding="utf-8")
    print(f"wrote {HERE / 'policy.toml'} and {HERE / 'sacct.txt'} ({runs} runs, {len(text)} bytes)")  # noqa: T201 - a maintainer's script: it says what it wrote


if __name__ == "__main__":
    main()
