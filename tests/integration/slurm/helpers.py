"""Helpers of the real-Slurm integration tests: run fairledger's CLI for one lab cluster, read
what Slurm printed."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Capture:
    """What `lab.capture` wrote for one cluster, right after a priority tick."""

    cluster: str
    dir: Path
    as_of: datetime  # when sshare was taken (UTC, whole seconds)
    tick: datetime  # the decay thread's last run before it

    @property
    def as_of_text(self) -> str:
        return self.as_of.strftime("%Y-%m-%dT%H:%M:%SZ")

    def text(self, name: str) -> str:
        return (self.dir / name).read_text(encoding="utf-8")


@dataclass
class LabRun:
    """The lab after the workload: its captures per cluster and how long each phase took."""

    lab: Any  # lab.Lab
    state: Path
    since: str  # sacct --starttime of the captures (UTC, a minute before the workload)
    jobs: dict[str, dict[str, str]]  # cluster -> workload label -> job id
    captures: dict[str, Capture]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Site:
    """A fairledger store fed from one lab cluster: the live policy, the live sacct."""

    cluster: str
    dir: Path
    conf: Path  # the cluster's slurm.conf
    config: Path  # fairledger settings (db, [[sources]], [delivery])

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PYTHONPATH": str(ROOT),
            "SLURM_CONF": str(self.conf),
            "TZ": "UTC",
            "HOME": str(self.dir),
        }

    def fl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``fairledger --config <config> ARGS`` (the real CLI, in a subprocess)."""
        done = subprocess.run(
            [sys.executable, "-m", "api", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.dir,
            env=self.env(),
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"fairledger {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}"
            )
        return done


def make_site(cluster: str, capture: Capture, conf: Path, since: str, where: Path) -> Site:
    """Import the policy from the live slurm.conf and sacctmgr output and ingest the live
    sacct through the scheduled sacct source (``fairledger ingest sacct``)."""
    where.mkdir(parents=True, exist_ok=True)
    config = where / "fairledger.toml"
    config.write_text(
        f'db = "{where / "fairledger.duckdb"}"\n\n'
        "[[sources]]\n"
        f'name = "sacct-{cluster}"\n'
        f'cluster = "{cluster}"\n'
        'command = "sacct"\n'
        f'initial_start = "{since}"\n'
        "min_interval_s = 0\n"
        "retries = 1\n"
        "backoff_s = 1.0\n"
        "timeout_s = 60\n\n"
        "[delivery]\n"
        f'cluster = "{cluster}"\n'
        f'state_path = "{where / "site-factors.json"}"\n',
        encoding="utf-8",
    )
    site = Site(cluster, where, conf, config)
    site.fl(
        "policy", "import-slurm",
        "--slurm-conf", str(conf),
        "--assoc", str(capture.dir / "assoc_lft.txt"),
        "--qos", str(capture.dir / "qos.txt"),
        "--out", str(where / "policy.toml"),
    )  # fmt: skip
    site.fl("ingest", "sacct", "--force")
    return site


def sshare_columns(text: str, columns: int) -> list[str]:
    """Return sshare's lines cut to their first ``columns`` fields."""
    return ["|".join(line.split("|")[:columns]) for line in text.splitlines() if line.strip()]


_ASSOC = re.compile(r"^ClusterName=(\S+) Account=(\S+) UserName=(\S*?)(?:\(\d+\))? ")
_USAGE = re.compile(r"UsageRaw/Norm/Efctv=([0-9.]+|inf|nan)/")


def assoc_mgr_usage(text: str) -> dict[tuple[str, str], float]:
    """Return UsageRaw (two decimals) per (account, user) from ``scontrol show assoc_mgr``."""
    usage: dict[tuple[str, str], float] = {}
    key: tuple[str, str] | None = None
    for line in text.splitlines():
        if (m := _ASSOC.match(line)) is not None:
            key = (m.group(2), m.group(3))
        elif key is not None and (u := _USAGE.search(line)) is not None:
            usage[key] = float(u.group(1))
            key = None
    return usage


def sacct_rows(text: str) -> list[dict[str, str]]:
    """Return the allocation rows (no steps) of ``sacct --parsable2`` output with a header."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0].split("|")
    rows = [dict(zip(header, line.split("|"), strict=True)) for line in lines[1:]]
    return [r for r in rows if "." not in r["JobID"]]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def usage_close(ours: float, slurm: float, rel: float) -> bool:
    """Whether ``ours`` is within ``rel`` of Slurm's two-decimal value (plus its rounding)."""
    return math.isclose(ours, slurm, rel_tol=rel, abs_tol=0.005 + 1e-9)
