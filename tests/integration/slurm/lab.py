"""A throw-away Slurm 22.05 with accounting, for fairledger's integration tests.

Runs Debian 12's slurmctld/slurmd/slurmdbd, munge and a private MariaDB as root without
systemd, every file under one state directory (see shared/reference/slurm-lab.md). One MariaDB
and one slurmdbd serve one or more *clusters*; each cluster is its own slurmctld and slurmd
(one node, fake CPUs, memory and GPUs) with its own slurm.conf, so several priority
configurations (no decay, a short half-life, classic fair-share) run the same workload side by
side instead of one after the other.

    python lab.py up STATEDIR [--cluster lab[:HALFLIFE[:FLAGS]]]...   # default: one cluster "lab"
    python lab.py down STATEDIR          # stops, by pid, every daemon `up` started
    python lab.py restart-ctld STATEDIR --cluster NAME:HALFLIFE[:FLAGS]  # new slurm.conf
    python lab.py site STATEDIR          # the test association tree, QOS and Unix users
    python lab.py workload STATEDIR      # submit the test jobs everywhere, wait until all ended
    python lab.py capture STATEDIR OUTDIR [--since ISO]  # after the next priority tick
    python lab.py golden STATEDIR OUTDIR [--cluster ...]  # up, site, workload, capture, down
    eval "$(python lab.py env STATEDIR [CLUSTER])"       # SLURM_CONF for client commands

Client commands need SLURM_CONF=STATEDIR/<cluster>/slurm.conf (gres.conf beside it). Ports are
picked free at `up` and kept in STATEDIR/lab.json. Stdlib only; Python 3.11.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge",
            "mariadb-server", "mariadb-client",
            "slurmrestd", "slurm-wlm-jwt-plugin"]  # slurmrestd; auth/jwt for its tokens
BINARIES = ["slurmctld", "slurmd", "slurmdbd", "sbatch", "sacctmgr", "munged",
            "mariadbd", "mariadb-install-db", "mariadb", "slurmrestd"]
REST_USER = "fairledger"  # slurmrestd's client: a plain user (the lab has no PrivateData)
DB_PASS = "fairledger-lab"
BILLING = {"cpu": 'TRESBillingWeights="CPU=1.0,Mem=0.25G"',
           "gpu": 'TRESBillingWeights="CPU=0.5,Mem=0.25G,GRES/gpu=4.0"'}
ALL_STATES = "BF,CA,CD,DL,F,NF,OOM,PD,PR,R,RQ,RS,RV,S,TO"
SACCT_FORMAT = ("JobID,JobIDRaw,Cluster,Partition,QOS,Account,User,Submit,Eligible,Start,End,"
                "Elapsed,ElapsedRaw,ExitCode,State,NNodes,NCPUS,ReqMem,AllocTRES,NodeList,JobName")
NODE = "CPUs=32 RealMemory=32000 Gres=gpu:2"  # fake: config_overrides lets slurmd claim it


# ---------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


STOP = threading.Event()  # set to make every wait_for (and the workload threads) give up


def wait_for(what: str, pred, timeout: float = 60, step: float = 0.5):
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        if STOP.is_set():
            raise RuntimeError(f"stopped while waiting for {what}")
        try:
            if (res := pred()):
                return res
        except Exception as exc:  # noqa: BLE001 - daemons refuse connections while starting
            last = exc
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}"
                       + (f" (last error: {last})" if last else ""))


_CHILDREN: dict[int, subprocess.Popen] = {}  # daemons started as our children (mariadbd)


def pid_alive(pid: int) -> bool:
    if (child := _CHILDREN.get(pid)) is not None:  # ours: let Popen reap it
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie that is not ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(path: Path, name: str, timeout: float = 30) -> None:
    """Stop the daemon whose pid is in ``path`` (TERM, then KILL); forget the pid file."""
    pid = read_pid(path)
    if pid is not None and pid_alive(pid):
        log(f"stopping {name} (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            wait_for(f"{name} to exit", lambda: not pid_alive(pid), timeout, step=0.2)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if pid is not None and (child := _CHILDREN.pop(pid, None)) is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
    path.unlink(missing_ok=True)


def free_ports(n: int) -> list[int]:
    """Return ``n`` distinct TCP ports that are free now, below the kernel's ephemeral range (so
    no client socket takes one before the daemons bind it) and random (so parallel labs do not
    collide)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(max(1024, low - 12000), low))
    random.SystemRandom().shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"no {n} free TCP ports below {low}")


def others_running() -> list[int]:
    """Return the pids of Slurm daemons running on this machine (after ours have stopped)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if name in ("slurmctld", "slurmd", "slurmdbd", "slurmstepd") and pid_alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def missing_binaries() -> list[str]:
    jwt = list(Path("/usr/lib").glob("*/slurm-wlm/auth_jwt.so")) + list(
        Path("/usr/lib").glob("slurm-wlm/auth_jwt.so"))
    return [b for b in BINARIES if not shutil.which(b)] + ([] if jwt else ["auth_jwt.so"])


def ensure_packages() -> None:
    """apt-get install the Slurm, munge and MariaDB packages unless their binaries are there."""
    if not missing_binaries():
        return
    policy = Path("/usr/sbin/policy-rc.d")
    made = not policy.exists()
    if made:  # keep the package scripts from starting services
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        e = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log("installing " + " ".join(PACKAGES))
        subprocess.run(["apt-get", "update"], env=e, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                       env=e, check=True, capture_output=True)
    finally:
        if made:
            policy.unlink(missing_ok=True)


# ---------------------------------------------------------------- configuration
@dataclass
class Cluster:
    """One Slurm cluster of the lab: a slurmctld and a slurmd with their own slurm.conf."""

    name: str
    halflife: str = "0"  # PriorityDecayHalfLife
    flags: str = ""  # PriorityFlags
    calc_period: str = "1"  # PriorityCalcPeriod (minutes)
    reset: str = ""  # PriorityUsageResetPeriod; "" = YEARLY without decay (22.05 needs one)
    ctld_port: int = 0
    slurmd_port: int = 0

    @property
    def usage_reset(self) -> str:
        if self.reset:
            return self.reset
        return "YEARLY" if self.halflife.strip(":0") == "" else "NONE"


@dataclass
class Lab:
    state: Path
    clusters: list[Cluster] = field(default_factory=list)
    dbd_port: int = 0
    db_port: int = 0
    started: list[str] = field(default_factory=list)  # pid files of the daemons we started

    # ------------------------------------------------------------ persistence
    @classmethod
    def create(cls, state: Path, clusters: list[Cluster]) -> Lab:
        """A new lab in ``state``, which every user must be able to read: the job owners' sbatch
        reads the slurm.conf in it."""
        state = state.resolve()
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o755)
        ports = free_ports(2 + 2 * len(clusters))
        for i, c in enumerate(clusters):
            c.ctld_port, c.slurmd_port = ports[2 + 2 * i], ports[3 + 2 * i]
        lab = cls(state, clusters, dbd_port=ports[0], db_port=ports[1])
        lab.save()
        return lab

    @classmethod
    def load(cls, state: Path) -> Lab:
        state = state.resolve()
        data = json.loads((state / "lab.json").read_text())
        clusters = [Cluster(**c) for c in data.pop("clusters")]
        data.pop("state", None)
        return cls(state, clusters, **data)

    def save(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["state"] = str(self.state)
        (self.state / "lab.json").write_text(json.dumps(data, indent=1))

    def cluster(self, name: str) -> Cluster:
        for c in self.clusters:
            if c.name == name:
                return c
        raise KeyError(f"no cluster {name!r} in {self.state}")

    def cdir(self, cluster: str) -> Path:
        return self.state / cluster

    def conf(self, cluster: str) -> Path:
        return self.cdir(cluster) / "slurm.conf"

    def ctld_log(self, cluster: str) -> Path:
        return self.cdir(cluster) / "slurmctld.log"

    def env(self, cluster: str) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf(cluster)), "TZ": "UTC"}

    def run(self, cluster: str, *cmd: str, check: bool = True, user: str | None = None,
            timeout: float = 120) -> str:
        """Run a client command for ``cluster`` (as ``user`` via runuser); return stdout."""
        argv = (["runuser", "-u", user, "--"] if user else []) + list(cmd)
        p = subprocess.run(argv, env=self.env(cluster), capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"[{cluster}] {' '.join(argv)} -> {p.returncode}\n"
                               f"{p.stdout}{p.stderr}")
        return p.stdout

    # ------------------------------------------------------------ config files
    def slurm_conf(self, c: Cluster) -> str:
        host = socket.gethostname().split(".")[0]
        d = self.cdir(c.name)
        flags = f"PriorityFlags={c.flags}\n" if c.flags else ""
        return f"""\
# generated by fairledger tests/integration/slurm/lab.py
ClusterName={c.name}
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={c.ctld_port}
SlurmdPort={c.slurmd_port}
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={self.state}/jwt_hs256.key
StateSaveLocation={d}/ctld
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=verbose
DebugFlags=Priority
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=512
GresTypes=gpu
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={self.dbd_port}
AccountingStorageEnforce=associations,limits,qos
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
PriorityType=priority/multifactor
PriorityDecayHalfLife={c.halflife}
PriorityCalcPeriod={c.calc_period}
PriorityUsageResetPeriod={c.usage_reset}
PriorityWeightFairshare=10000
{flags}NodeName={host} {NODE} State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP {BILLING['cpu']}
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP {BILLING['gpu']}
"""

    def write_cluster_conf(self, c: Cluster) -> None:
        d = self.cdir(c.name)
        for sub in ("ctld", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.conf(c.name).write_text(self.slurm_conf(c))
        (d / "gres.conf").write_text(f"Name=gpu File={self.state}/fakegpu[0-1]\n")

    def write_configs(self) -> None:
        etc = self.state / "etc"
        for sub in ("etc", "log", "mysql"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        for i in range(2):  # fake GPUs: slurmd only needs files to exist
            (self.state / f"fakegpu{i}").touch()
        for c in self.clusters:
            self.write_cluster_conf(c)
        # slurmdbd looks for slurmdbd.conf beside $SLURM_CONF: give it a directory of its own
        shutil.copy(self.conf(self.clusters[0].name), etc / "slurm.conf")
        dbd = etc / "slurmdbd.conf"
        key = self.state / "jwt_hs256.key"
        if not key.exists():  # auth/jwt's HS256 key for slurmrestd's tokens; root only
            key.write_bytes(os.urandom(32))
            key.chmod(0o600)
        dbd.write_text(f"""AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={key}
DbdHost=localhost
DbdPort={self.dbd_port}
SlurmUser=root
PidFile={self.state}/slurmdbd.pid
LogFile={self.state}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=slurm
StoragePass={DB_PASS}
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)  # slurmdbd refuses a readable one
        (etc / "my.cnf").write_text(f"""[mysqld]
user=root
datadir={self.state}/mysql
socket={self.state}/mysql.sock
port={self.db_port}
bind-address=127.0.0.1
pid-file={self.state}/mariadb.pid
log-error={self.state}/log/mariadb.err
innodb_buffer_pool_size=256M
innodb_lock_wait_timeout=900
skip-name-resolve
[client]
socket={self.state}/mysql.sock
""")

    # ------------------------------------------------------------ daemons
    def _started(self, pidfile: Path) -> None:
        if str(pidfile) not in self.started:
            self.started.append(str(pidfile))
            self.save()

    def start_munge(self) -> None:
        def works() -> bool:
            return subprocess.run("munge -n | unmunge", shell=True,
                                  capture_output=True).returncode == 0

        if works():
            return  # someone else's munged: leave it alone
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        started = subprocess.run(["runuser", "-u", "munge", "--", "munged"], capture_output=True)
        if started.returncode != 0:  # another lab may have started one at the same moment
            wait_for("munged (started by someone else)", works, timeout=10)
            return
        pid = wait_for("munged", lambda: read_pid(Path("/run/munge/munged.pid")))
        (self.state / "munged.pid").write_text(f"{pid}\n")
        self._started(self.state / "munged.pid")

    def start_mariadb(self) -> None:
        cnf = str(self.state / "etc" / "my.cnf")
        pidfile = self.state / "mariadb.pid"
        if not ((pid := read_pid(pidfile)) and pid_alive(pid)):
            if not (self.state / "mysql" / "mysql").exists():
                subprocess.run(["mariadb-install-db", f"--defaults-file={cnf}", "--skip-test-db"],
                               check=True, capture_output=True)
            with open(self.state / "log" / "mariadb.out", "ab") as out:
                p = subprocess.Popen(["mariadbd", f"--defaults-file={cnf}"], stdout=out,
                                     stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
            _CHILDREN[p.pid] = p
            pidfile.write_text(f"{p.pid}\n")  # mariadbd rewrites it with the same pid
            self._started(pidfile)
        sql = (f"CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
               f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{DB_PASS}'; "
               f"CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '{DB_PASS}'; "
               f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; "
               f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';")
        wait_for("mariadb", lambda: subprocess.run(
            ["mariadb", f"--defaults-file={cnf}", "-uroot", "-e", sql],
            capture_output=True).returncode == 0, timeout=60)

    def start_daemon(self, name: str, pidfile: Path, env: dict[str, str], probe) -> None:
        if (pid := read_pid(pidfile)) and pid_alive(pid):
            return
        self._started(pidfile)  # before it starts: a failed start is still stopped by `down`
        subprocess.run([name], env=env, check=True, capture_output=True)  # daemonizes itself
        wait_for(f"{name} ({pidfile.parent.name})", probe, timeout=60)

    def node_state(self, cluster: str) -> str:
        out = self.run(cluster, "sinfo", "-h", "-N", "-o", "%T")
        return ",".join(sorted(set(out.split())))

    def start_cluster(self, c: Cluster) -> None:
        d, env = self.cdir(c.name), self.env(c.name)
        self.start_daemon("slurmctld", d / "slurmctld.pid", env,
                          lambda: self.run(c.name, "scontrol", "ping").count("UP"))
        self.start_daemon("slurmd", d / "slurmd.pid", env, lambda: self.node_state(c.name))

    def wait_idle(self, cluster: str, timeout: float = 90) -> None:
        wait_for(f"node of {cluster} idle",
                 lambda: self.node_state(cluster) in ("idle", "mixed", "allocated"), timeout)

    def up(self) -> None:
        ensure_packages()
        self.write_configs()
        self.start_munge()
        self.start_mariadb()
        dbd_env = {**os.environ, "SLURM_CONF": str(self.state / "etc" / "slurm.conf"),
                   "TZ": "UTC"}
        first = self.clusters[0].name
        self.start_daemon("slurmdbd", self.state / "slurmdbd.pid", dbd_env,
                          lambda: self.run(first, "sacctmgr", "-n", "show", "cluster") or True)
        known = self.run(first, "sacctmgr", "-n", "-P", "show", "cluster", "format=cluster")
        new = [c.name for c in self.clusters if c.name not in known.split()]
        if new:
            self.run(first, "sacctmgr", "-i", "add", "cluster", *new)
        for c in self.clusters:
            self.start_cluster(c)
        for c in self.clusters:
            self.wait_idle(c.name)
        log(f"up: clusters {', '.join(c.name for c in self.clusters)} in {self.state}")

    def restart_ctld(self, cluster: str, **changes: str) -> None:
        """Rewrite ``cluster``'s slurm.conf with ``changes``; restart its slurmctld (usage is kept
        in its state files)."""
        c = self.cluster(cluster)
        for k, v in changes.items():
            setattr(c, k, v)
        self.save()
        self.write_cluster_conf(c)
        stop_pid(self.cdir(cluster) / "slurmctld.pid", f"slurmctld ({cluster})")
        self.start_cluster(c)
        self.wait_idle(cluster)

    def cancel_everything(self) -> None:
        """Best effort: cancel every job so that no slurmstepd outlives its slurmd."""
        for c in self.clusters:
            pid = read_pid(self.cdir(c.name) / "slurmctld.pid")
            if pid is None or not pid_alive(pid):
                continue
            try:
                ids = self.run(c.name, "squeue", "-h", "-o", "%i", check=False, timeout=10).split()
                if ids:
                    self.run(c.name, "scancel", *ids, check=False, timeout=10)
                wait_for(f"jobs of {c.name} to end", lambda c=c: self.run(
                    c.name, "squeue", "-h", "-t", "R,CG", "-o", "%i", timeout=10).strip() == "",
                    timeout=20, step=1)
            except Exception as exc:  # noqa: BLE001 - stopping must go on
                log(f"could not cancel the jobs of {c.name}: {exc}")

    def down(self) -> None:
        """Stop, by pid, every daemon this lab started (slurmd and slurmctld first)."""
        self.cancel_everything()
        order = {"slurmrestd.pid": 0, "slurmd.pid": 0, "slurmctld.pid": 1, "slurmdbd.pid": 2,
                 "mariadb.pid": 3, "munged.pid": 4}
        for pidfile in sorted(self.started, key=lambda p: order.get(Path(p).name, 9)):
            path = Path(pidfile)
            if path.name == "munged.pid" and others_running():
                log("leaving munged running: another Slurm on this machine uses it")
                continue
            stop_pid(path, f"{path.stem} ({path.parent.name})")
        self.started = []
        self.save()

    # ------------------------------------------------------------ slurmrestd
    def start_restd(self, cluster: str) -> str:
        """Start slurmrestd for ``cluster`` on a free local port as ``nobody`` (it refuses root
        and SlurmUser) with auth/jwt (SLURM_JWT=daemon, or it authenticates with munge and
        rejects every token); return its base URL."""
        pidfile = self.cdir(cluster) / "slurmrestd.pid"
        port_file = self.cdir(cluster) / "slurmrestd.port"
        if (pid := read_pid(pidfile)) and pid_alive(pid):
            return f"http://127.0.0.1:{port_file.read_text().strip()}"
        ensure_user(REST_USER)
        (port,) = free_ports(1)
        env = {**self.env(cluster), "SLURM_JWT": "daemon"}
        with open(self.cdir(cluster) / "slurmrestd.log", "ab") as out:
            p = subprocess.Popen(["slurmrestd", "-a", "rest_auth/jwt", "-s", "openapi/dbv0.0.38",
                                  "-u", "nobody", "-v", f"127.0.0.1:{port}"], env=env,
                                 stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        _CHILDREN[p.pid] = p
        pidfile.write_text(f"{p.pid}\n")
        port_file.write_text(f"{port}\n")
        self._started(pidfile)

        def answers() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(f"slurmrestd ({cluster})", lambda: p.poll() is None and answers(), 30, 0.2)
        return f"http://127.0.0.1:{port}"

    def token(self, cluster: str, user: str = REST_USER, lifespan: int = 3600) -> str:
        """Return a JWT for ``user`` from ``scontrol token`` (as root, SlurmUser)."""
        out = self.run(cluster, "scontrol", "token", f"username={user}", f"lifespan={lifespan}")
        return out.strip().removeprefix("SLURM_JWT=")

    # ------------------------------------------------------------ priority ticks
    def last_tick(self, cluster: str) -> int | None:
        """Return when slurmctld's decay thread last ran (its priority_last_decay_ran state file:
        two packed 64-bit big-endian times, last run and last reset)."""
        path = self.cdir(cluster) / "ctld" / "priority_last_decay_ran"
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return struct.unpack(">Q", data[:8])[0] if len(data) >= 8 else None

    def wait_tick_after(self, cluster: str, moment: float, timeout: float = 150) -> int:
        """Wait until the decay thread has run (and saved its state) at or after ``moment``."""
        return wait_for(f"a priority tick of {cluster}",
                        lambda: (t := self.last_tick(cluster)) is not None and t >= moment and t,
                        timeout, step=0.25)


# ---------------------------------------------------------------- the test site and workload
TREE = [  # (account, parent, fairshare)
    ("physics", "root", "40"), ("theory", "physics", "20"), ("chem", "root", "30"),
    ("bio", "root", "30"), ("idle", "root", "10")]
USERS = [  # (user, account, fairshare)
    ("alice", "physics", "10"), ("bob", "physics", "10"), ("carol", "theory", "parent"),
    ("dave", "theory", "5"), ("erin", "chem", "10"), ("alice", "chem", "10"),
    ("frank", "bio", "10"), ("grace", "bio", "0"), ("heidi", "idle", "10")]


def ensure_user(user: str) -> None:
    if subprocess.run(["id", user], capture_output=True).returncode:
        p = subprocess.run(["useradd", "-M", "-s", "/bin/sh", user], capture_output=True)
        if p.returncode and subprocess.run(["id", user], capture_output=True).returncode:
            raise RuntimeError(f"useradd {user}: {p.stderr.decode()}")  # not a parallel race


def site(lab: Lab) -> None:
    """Create the Unix users and, in every cluster of the lab, the association tree and QOS."""
    for user in sorted({u for u, _, _ in USERS}):
        ensure_user(user)
    first = lab.clusters[0].name
    where = "cluster=" + ",".join(c.name for c in lab.clusters)
    sam = lambda *a: lab.run(first, "sacctmgr", "-i", *a)  # noqa: E731
    if "scavenger" not in lab.run(first, "sacctmgr", "-n", "-P", "show", "qos", "format=name"):
        sam("add", "qos", "scavenger", "UsageFactor=0.5")
    for acct, parent, fs in TREE:
        sam("add", "account", acct, f"parent={parent}", f"fairshare={fs}", where)
    for user, acct, fs in USERS:
        sam("add", "user", user, f"account={acct}", f"fairshare={fs}", where)
    sam("modify", "user", "where", "name=bob", "account=physics", where, "set", "qos+=scavenger")
    for c in lab.clusters:
        lab.run(c.name, "scontrol", "reconfigure")


# label, user, sbatch options (--time=2 unless given), command. Every job fits at once on the
# 32-CPU, 32000-MB node, so the whole workload takes as long as its longest job (the TIMEOUT,
# 60 s plus up to 30 s until slurmctld notices). It is submitted 20 to 50 s before a priority
# tick of the first cluster with decay (see `align`): jobs longer than that are charged in a
# slice at the tick and a tail at their end, shorter ones in one piece.
JOBS = [
    # chem {erin, alice} and bio {frank, grace} get identical pairs of jobs, held (-H) and then
    # released together so that they start in one scheduling pass: the two accounts' usage ties
    ("erin", "erin", "-pcpu", "-H", "-Achem", "-c2", "--mem=1536M", "-Jtwin", "sleep 50"),
    ("frank", "frank", "-pcpu", "-H", "-Abio", "-c2", "--mem=1536M", "-Jtwin", "sleep 50"),
    ("alice_chem", "alice", "-pcpu", "-H", "-Achem", "-c1", "--mem=1500M", "-Jtwin2", "sleep 20"),
    ("grace_bio", "grace", "-pcpu", "-H", "-Abio", "-c1", "--mem=1500M", "-Jtwin2", "sleep 20"),
    ("timeout", "bob", "-pcpu", "--time=1", "-c1", "--mem=1000M", "-Jtimeout", "sleep 300"),
    ("cancel_running", "alice", "-pcpu", "-c2", "--mem=1500M", "-Jcancelme", "sleep 300"),
    ("cancel_pending", "carol", "-pcpu", "--begin=now+3600", "-Jnever", "sleep 10"),
    ("requeue", "bob", "-pcpu", "--requeue", "-c1", "--mem=1200M", "-Jrequeue", "sleep 40"),
    ("gpu", "dave", "-pgpu", "-c1", "--mem=2000M", "--gres=gpu:1", "-Jgpujob", "sleep 55"),
    ("alice_phys", "alice", "-pcpu", "-c2", "--mem=1500M", "-Jphys", "sleep 60"),
    ("bob", "bob", "-pcpu", "-c1", "--mem=3000M", "-Jbigmem", "sleep 40"),
    ("carol", "carol", "-pcpu", "-c1", "--mem=1000M", "-Jcarol", "sleep 30"),
    ("carol_gpu_part", "carol", "-pgpu", "-c3", "--mem=1536M", "-Jnogres", "sleep 20"),
    ("scavenger", "bob", "-pcpu", "--qos=scavenger", "-c4", "--mem=1024M", "-Jscav", "sleep 50"),
    ("array", "carol", "-pcpu", "--array=1-3", "-c1", "--mem=768M", "-Jarr", "sleep 15"),
    ("fail", "dave", "-pcpu", "-c1", "-Jfail", "sleep 10; exit 1"),  # DefMemPerCPU: 512M
    ("dependent", "dave", "-pcpu", "-c1", "--mem=600M", "-Jafter", "sleep 20"),  # afterany:fail
]
CANCEL_RUNNING_AFTER = 15  # s of running before scancel
REQUEUE_AFTER = 10  # s of running before scontrol requeue
TICK_LEAD = (20, 50)  # submit this many seconds before a tick of the decay cluster


def align(lab: Lab, lead: tuple[int, int] = TICK_LEAD) -> float:
    """Sleep until the next priority tick of the first cluster with decay is ``lead`` seconds
    away (so that the workload straddles it); return the seconds slept."""
    decaying = [c for c in lab.clusters if c.halflife.strip(":0") != ""]
    if not decaying:
        return 0.0
    c = decaying[0]
    period = int(c.calc_period) * 60
    last = lab.wait_tick_after(c.name, 0)
    now = time.time()
    ahead = (last - now) % period  # seconds to the next tick
    low, high = lead
    wait = 0.0 if low <= ahead <= high else (ahead - (low + high) / 2) % period
    if wait:
        log(f"waiting {wait:.0f} s so that the workload straddles a tick of {c.name}")
        time.sleep(wait)  # in the main thread: Ctrl-C interrupts it
    return wait


def sbatch(lab: Lab, cluster: str, user: str, *args: str, wrap: str) -> str:
    out = lab.run(cluster, "sbatch", "--parsable", "--chdir=/tmp", "--output=/dev/null", *args,
                  f"--wrap={wrap}", user=user)
    return out.strip().split(";")[0]


def job_state(lab: Lab, cluster: str, job: str) -> str:
    return lab.run(cluster, "squeue", "-h", "-j", job, "-o", "%T", check=False).strip()


def workload_one(lab: Lab, cluster: str) -> dict[str, str]:
    """Submit JOBS to one cluster, cancel, requeue; return {label: jobid} once all have ended."""
    j: dict[str, str] = {}
    for held in (True, False):
        for label, user, *args, wrap in JOBS:
            if ("-H" in args) != held:
                continue
            extra = [] if any(a.startswith("--time") for a in args) else ["--time=2"]
            if label == "dependent":
                extra.append(f"--dependency=afterany:{j['fail']}")
            j[label] = sbatch(lab, cluster, user, *args, *extra, wrap=wrap)
        if held:
            lab.run(cluster, "scontrol", "release", ",".join(j.values()))
    lab.run(cluster, "scancel", j["cancel_pending"])
    started: dict[str, float] = {}
    todo = {"cancel_running": CANCEL_RUNNING_AFTER, "requeue": REQUEUE_AFTER}
    deadline = time.monotonic() + 90
    while todo:
        if STOP.is_set():
            raise RuntimeError(f"[{cluster}] stopped")
        if time.monotonic() > deadline:
            raise TimeoutError(f"[{cluster}] jobs {sorted(todo)} never ran long enough")
        for label in list(todo):
            if label not in started and job_state(lab, cluster, j[label]) == "RUNNING":
                started[label] = time.monotonic()
            if label in started and time.monotonic() - started[label] >= todo[label]:
                if label == "cancel_running":
                    lab.run(cluster, "scancel", j[label])
                else:  # requeued jobs wait ~2 min before they may start again: move StartTime,
                    # but not into the second of the requeue, or the new launch's credential
                    # counts as revoked with the old one and the job fails at once
                    lab.run(cluster, "scontrol", "requeue", j[label])
                    wait_for("requeued job pending", lambda: job_state(
                        lab, cluster, j["requeue"]) == "PENDING", 30, step=0.3)
                    time.sleep(2)
                    lab.run(cluster, "scontrol", "update", f"jobid={j[label]}", "StartTime=now")
                del todo[label]
        time.sleep(0.3)
    wait_for(f"all jobs of {cluster} to end",
             lambda: lab.run(cluster, "squeue", "-h", "-o", "%i").strip() == "",
             timeout=300, step=1)
    log(f"[{cluster}] workload done: {j}")
    return j


def workload(lab: Lab) -> dict[str, dict[str, str]]:
    """Run the workload on every cluster at once; return {cluster: {label: jobid}}."""
    align(lab)
    pool = concurrent.futures.ThreadPoolExecutor(len(lab.clusters))
    try:
        futures = {c.name: pool.submit(workload_one, lab, c.name) for c in lab.clusters}
        pending = set(futures.values())
        while pending:  # wake up often: a signal may land in a worker thread, and only the main
            # thread runs Python's handlers (Ctrl-C would wait for the whole workload)
            done, pending = concurrent.futures.wait(
                pending, timeout=0.5, return_when=concurrent.futures.FIRST_EXCEPTION)
            for f in done:
                f.result()  # raises the first failure
        return {name: f.result() for name, f in futures.items()}
    except BaseException:  # a failure, Ctrl-C: make the other threads give up at once
        STOP.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        STOP.clear()


# ---------------------------------------------------------------- capture
def sacct_command(since: str) -> list[str]:
    """The sacct call of docs/ingest.md (run with TZ=UTC)."""
    return ["sacct", "--allusers", "--duplicates", "--parsable2", "--noconvert",
            f"--starttime={since}", "--endtime=now", f"--state={ALL_STATES}",
            f"--format={SACCT_FORMAT}"]


def capture(lab: Lab, cluster: str, out: Path, since: str, after: float | None = None) -> dict:
    """Write the golden files of one cluster, taken right after a priority tick at or after
    ``after`` (default: now) so that sshare's RawUsage and factors agree; return what was taken.

    ``sshare`` and ``scontrol show assoc_mgr`` are retaken if a tick came in between.
    """
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(lab.conf(cluster), out / "slurm.conf")
    for _ in range(3):
        tick = lab.wait_tick_after(cluster, time.time() if after is None else after)
        sshare = lab.run(cluster, "sshare", "-a", "-l", "-P")
        as_of = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        assoc_mgr = lab.run(cluster, "scontrol", "show", "assoc_mgr", "flags=assoc")
        if lab.last_tick(cluster) == tick:
            break
        after = None
    else:
        raise RuntimeError(f"[{cluster}] priority ticks kept coming during the capture")
    files = {
        "sshare.txt": sshare,
        "assoc_mgr.txt": assoc_mgr,
        "assoc_lft.txt": lab.run(cluster, "sacctmgr", "--parsable2", "show", "associations",
                                 "where", f"cluster={cluster}",
                                 "format=Cluster,Account,User,ParentName,Share,Lft,Rgt"),
        "qos.txt": lab.run(cluster, "sacctmgr", "--parsable2", "show", "qos"),
        "sacct.txt": lab.run(cluster, *sacct_command(since)),
        "as_of.txt": as_of.strftime("%Y-%m-%dT%H:%M:%SZ") + "\n",
        "last_tick.txt": dt.datetime.fromtimestamp(tick, dt.timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ") + "\n",
    }
    for name, text in files.items():
        (out / name).write_text(text)
    shutil.copy(lab.ctld_log(cluster), out / "slurmctld.log")
    log(f"[{cluster}] captured into {out} as of {files['as_of.txt'].strip()}")
    return {"as_of": as_of, "tick": tick, "dir": out}


# ---------------------------------------------------------------- CLI
def parse_cluster(text: str) -> Cluster:
    """``NAME[:HALFLIFE[:FLAGS]]``, e.g. ``lab``, ``decay:00:05:00``, ``classic:0:NO_FAIR_TREE``."""
    m = re.fullmatch(r"([a-z][a-z0-9_]*)(?::(\d+(?::\d+)*?|\d+-\d+(?::\d+)*))?(?::([A-Z_,]+))?",
                     text)
    if not m:
        raise argparse.ArgumentTypeError(f"--cluster {text!r}: expected NAME[:HALFLIFE[:FLAGS]]")
    return Cluster(m.group(1), halflife=m.group(2) or "0", flags=m.group(3) or "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("cmd", choices=["up", "down", "restart-ctld", "site", "workload", "capture",
                                    "golden", "env"])
    ap.add_argument("statedir", type=Path)
    ap.add_argument("outdir", nargs="?", help="capture/golden: where the files go; env: cluster")
    ap.add_argument("--cluster", type=parse_cluster, action="append",
                    help="NAME[:HALFLIFE[:FLAGS]], repeatable (default: lab, no decay)")
    ap.add_argument("--since", help="sacct --starttime (capture); default: 1 hour ago")
    a = ap.parse_args(argv)
    st = a.statedir.resolve()
    since = a.since or (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S")
    if a.cmd in ("up", "golden"):
        lab = Lab.create(st, a.cluster or [Cluster("lab")])
    else:
        lab = Lab.load(st)
    if a.cmd == "up":
        lab.up()
    elif a.cmd == "down":
        lab.down()
    elif a.cmd == "restart-ctld":
        for c in a.cluster or []:
            lab.restart_ctld(c.name, halflife=c.halflife, flags=c.flags)
    elif a.cmd == "site":
        site(lab)
    elif a.cmd == "workload":
        print(json.dumps(workload(lab)))
    elif a.cmd == "capture":
        for c in lab.clusters:
            capture(lab, c.name, Path(a.outdir) / c.name, since)
    elif a.cmd == "golden":
        since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).strftime(
            "%Y-%m-%dT%H:%M:%S")
        try:
            lab.up()
            site(lab)
            jobs = workload(lab)
            ended = time.time() + 1
            for c in lab.clusters:
                capture(lab, c.name, Path(a.outdir) / c.name, since, after=ended)
                (Path(a.outdir) / c.name / "jobs.json").write_text(
                    json.dumps(jobs[c.name], indent=1) + "\n")
        finally:
            lab.down()
    elif a.cmd == "env":
        print(f"export SLURM_CONF={lab.conf(a.outdir or lab.clusters[0].name)}")


if __name__ == "__main__":
    main()
