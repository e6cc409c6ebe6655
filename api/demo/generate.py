"""Regenerate the embedded demo site: ``python -m api.demo.generate`` writes policy.toml and
sacct.txt beside this file. Deterministic (fixed seed); the files are committed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
START = datetime(2026, 10, 1)
DAYS = 30

TREE: dict[str, tuple[str, int, dict[str, int | str]]] = {  # account: (parent, shares, users)
    "physics": ("root", 40, {"alice": 10, "bob": 10}),
    "theory": ("physics", 20, {"carol": "parent", "dave": 5}),
    "chemistry": ("root", 30, {"erin": 10, "alice": 10, "ivan": 10}),
    "biology": ("root", 20, {"frank": 10, "grace": 5}),
    "ml-lab": ("root", 30, {"heidi": 20, "judy": 10, "mallory": 10}),
    "teaching": ("root", 5, {"niaj": 1, "olivia": 1}),
}
PARTITIONS = {
    "cpu": ("CPU=1.0,Mem=0.25G", "c[001-032]", 32, 0),
    "gpu": ("CPU=0.5,Mem=0.25G,GRES/gpu=8.0", "g[01-08]", 16, 4),
}
# user: (how many jobs per day, share of GPU jobs)
HABITS = {
    "alice": (6, 0.0), "bob": (3, 0.1), "carol": (4, 0.0), "dave": (2, 0.5), "erin": (5, 0.0),
    "ivan": (1, 0.0), "frank": (3, 0.2), "grace": (1, 0.0), "heidi": (5, 0.9), "judy": (3, 0.7),
    "mallory": (2, 0.8), "niaj": (1, 0.0), "olivia": (0.3, 0.0),
}  # fmt: skip
FIELDS = (
    "JobID|JobIDRaw|Cluster|Partition|QOS|Account|User|Submit|Eligible|Start|End|Elapsed|"
    "ElapsedRaw|Timelimit|ExitCode|State|NNodes|NCPUS|ReqMem|AllocTRES|NodeList|Reservation|JobName"
)


def _policy() -> str:
    lines = [
        "[[clusters]]",
        'name = "demo"',
        "partitions = [",
        *[
            f'    {{ name = "{p}", tres_billing_weights = "{w}", '
            f"default = {str(p == 'cpu').lower()} }},"
            for p, (w, *_rest) in PARTITIONS.items()
        ],
        "]",
        "",
        "[[qos]]",
        'name = "normal"',
        "",
        "[[qos]]",
        'name = "scavenger"',
        "usage_factor = 0.25",
        "",
        "[decay]",
        "half_life_s = 604800",
        'model = "slurm"',
        "",
        '[[associations]]\ncluster = "demo"\naccount = "root"\n',
        '[[associations]]\ncluster = "demo"\naccount = "root"\nuser = "root"\n',
    ]
    for account, (parent, shares, users) in TREE.items():
        lines.append(
            f'[[associations]]\ncluster = "demo"\naccount = "{account}"\n'
            f'parent = "{parent}"\nshares = {shares}\n'
        )
        for user, user_shares in users.items():
            value = f'"{user_shares}"' if isinstance(user_shares, str) else user_shares
            lines.append(
                f'[[associations]]\ncluster = "demo"\naccount = "{account}"\n'
                f'user = "{user}"\nshares = {value}\n'
            )
    return "\n".join(lines)


def _fmt(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S") if t else "Unknown"


def _elapsed(seconds: int) -> str:
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _sacct(rng: random.Random) -> str:
    accounts = {u: [a for a, (_, _, us) in TREE.items() if u in us] for u in HABITS}
    rows = [FIELDS]
    job_id = 5000
    for day in range(DAYS):
        for user, (rate, gpu_share) in HABITS.items():
            for _ in range(int(rate) + (rng.random() < rate % 1)):
                job_id += 1
                gpu = rng.random() < gpu_share
                partition = "gpu" if gpu else "cpu"
                weights, nodes, node_cpus, node_gpus = PARTITIONS[partition]
                cpus = rng.choice([1, 2, 4, 8, 16]) if not gpu else rng.choice([4, 8])
                gpus = rng.choice([1, 2, 4]) if gpu else 0
                mem_mb = cpus * rng.choice([1000, 2000, 4000])
                submit = START + timedelta(days=day, seconds=rng.randrange(86400))
                start = submit + timedelta(seconds=rng.randrange(5, 3600))
                limit = rng.choice([3600, 4 * 3600, 12 * 3600])
                run = int(min(limit + 30, rng.expovariate(1 / (limit / 3))))
                state, exit_code = rng.choices(
                    [("COMPLETED", "0:0"), ("FAILED", "1:0"), ("TIMEOUT", "0:15"),
                     ("CANCELLED by 0", "0:15")],
                    weights=[80, 8, 6, 6],
                )[0]  # fmt: skip
                if state == "TIMEOUT":
                    run = limit + rng.randrange(10, 60)
                end = start + timedelta(seconds=run)
                node = (
                    f"{nodes.split('[')[0]}{rng.randrange(1, 9):0{len(nodes.split('-')[-1]) - 1}d}"
                )
                tres = f"billing={int(cpus)},cpu={cpus},mem={mem_mb}M,node=1"
                if gpus:
                    tres = (
                        f"billing={cpus},cpu={cpus},gres/gpu:a100={gpus},gres/gpu={gpus},"
                        f"mem={mem_mb}M,node=1"
                    )
                qos = "scavenger" if user == "mallory" and rng.random() < 0.5 else "normal"
                name = rng.choice(["vasp", "lammps", "train", "analysis", "préparation", "sim"])
                account = rng.choice(accounts[user])
                rows.append(
                    f"{job_id}|{job_id}|demo|{partition}|{qos}|{account}|{user}|"
                    f"{_fmt(submit)}|{_fmt(submit)}|{_fmt(start)}|{_fmt(end)}|{_elapsed(run)}|{run}|"
                    f"{_elapsed(limit)}|{exit_code}|{state}|1|{cpus}|{mem_mb}M|{tres}|{node}||{name}"
                )
                rows.append(
                    f"{job_id}.batch|{job_id}.batch|demo|||{account}||{_fmt(start)}|{_fmt(start)}|{_fmt(start)}|"
                    f"{_fmt(end)}|{_elapsed(run)}|{run}||{exit_code}|{state.split()[0]}|1|{cpus}||"
                    f"cpu={cpus},mem={mem_mb}M,node=1|{node}||batch"
                )
    return "\n".join(rows) + "\n"


def main() -> None:
    """Write the demo files."""
    (HERE / "policy.toml").write_text(_policy(), encoding="utf-8")
    (HERE / "sacct.txt").write_text(_sacct(random.Random(2026)), encoding="utf-8")


if __name__ == "__main__":
    main()
