"""A throw-away single-node Slurm 22.05 with accounting, for fairledger's integration tests.

Runs Debian 12's slurmctld/slurmd/slurmdbd, munge and a private MariaDB as root without
systemd, every file under one state directory (see shared/reference/slurm-lab.md).

    python lab.py up STATEDIR [--halflife 0] [--flags NO_FAIR_TREE] [--calc-period 1]
    python lab.py down STATEDIR          # stops, by pid, every daemon `up` started
    python lab.py restart-ctld STATEDIR [--flags ...]   # new slurm.conf, restart slurmctld only
    python lab.py site STATEDIR          # the test association tree, QOS and Unix users
    python lab.py workload STATEDIR      # submit the test jobs and wait until all have ended
    python lab.py capture STATEDIR OUTDIR [--since ISO] [--settle 130]
    python lab.py golden STATEDIR OUTDIR [priority options]  # up, site, workload, capture
    eval "$(python lab.py env STATEDIR)" # SLURM_CONF for client commands

Client commands need SLURM_CONF=STATEDIR/etc/slurm.conf (slurmdbd.conf and gres.conf are
found beside it). Stdlib only; Python 3.11.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge",
            "mariadb-server", "mariadb-client"]
BINARIES = ["slurmctld", "slurmd", "slurmdbd", "sbatch", "sacctmgr", "munged",
            "mariadbd", "mariadb-install-db", "mariadb"]
DB_PASS = "fairledger-lab"
BILLING = {"cpu": 'TRESBillingWeights="CPU=1.0,Mem=0.25G"',
           "gpu": 'TRESBillingWeights="CPU=0.5,Mem=0.25G,GRES/gpu=4.0"'}
ALL_STATES = "BF,CA,CD,DL,F,NF,OOM,PD,PR,R,RQ,RS,RV,S,TO"
SACCT_FORMAT = ("JobID,JobIDRaw,Cluster,Partition,QOS,Account,User,Submit,Eligible,Start,End,"
                "Elapsed,ElapsedRaw,ExitCode,State,NNodes,NCPUS,ReqMem,AllocTRES,NodeList,JobName")


# ---------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env(state: Path) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(state / "etc" / "slurm.conf"), "TZ": "UTC"}


def run(state: Path, *cmd: str, check: bool = True, user: str | None = None) -> str:
    """Run a command with SLURM_CONF set (as `user` through runuser if given); return stdout."""
    argv = (["runuser", "-u", user, "--"] if user else []) + list(cmd)
    p = subprocess.run(argv, env=env(state), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def wait_for(what: str, pred, timeout: float = 60, step: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if (res := pred()):
                return res
        except Exception:  # noqa: BLE001 - daemons refuse connections while starting
            pass
        time.sleep(step)
    raise TimeoutError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:  # reap it first if it is our own child (mariadbd, when up and down share a process)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(path: Path, name: str, timeout: float = 30) -> None:
    pid = read_pid(path)
    if pid is None or not pid_alive(pid):
        return
    log(f"stopping {name} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(f"{name} to exit", lambda: not pid_alive(pid), timeout)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)


# ---------------------------------------------------------------- install and configure
def ensure_packages() -> None:
    if all(shutil.which(b) for b in BINARIES):
        return
    policy = Path("/usr/sbin/policy-rc.d")
    made = not policy.exists()
    if made:  # keep the package scripts from starting services
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        e = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=e, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                       env=e, check=True, capture_output=True)
    finally:
        if made:
            policy.unlink(missing_ok=True)


def slurm_conf(state: Path, o: dict) -> str:
    host = socket.gethostname().split(".")[0]
    flags = f"PriorityFlags={o['flags']}\n" if o["flags"] else ""
    return f"""\
# generated by fairledger tests/integration/slurm/lab.py
ClusterName={o['cluster']}
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={o['ctld_port']}
SlurmdPort={o['ctld_port'] + 1}
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdLogFile={state}/log/slurmd.log
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
AccountingStoragePort={o['dbd_port']}
AccountingStorageEnforce=associations,limits,qos
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
PriorityType=priority/multifactor
PriorityDecayHalfLife={o['halflife']}
PriorityCalcPeriod={o['calc_period']}
PriorityUsageResetPeriod={o['reset']}
PriorityWeightFairshare=10000
{flags}NodeName={host} CPUs=8 RealMemory=8000 Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP {BILLING['cpu']}
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP {BILLING['gpu']}
"""


def write_configs(state: Path, o: dict) -> Path:
    for d in ("etc", "log", "ctld", "spool", "mysql"):
        (state / d).mkdir(parents=True, exist_ok=True)
    etc = state / "etc"
    (etc / "slurm.conf").write_text(slurm_conf(state, o))
    for i in range(2):  # fake GPUs: slurmd only needs files to exist
        (state / f"fakegpu{i}").touch()
    (etc / "gres.conf").write_text(f"Name=gpu File={state}/fakegpu[0-1]\n")
    dbd = etc / "slurmdbd.conf"
    dbd.write_text(f"""AuthType=auth/munge
DbdHost=localhost
DbdPort={o['dbd_port']}
SlurmUser=root
PidFile={state}/slurmdbd.pid
LogFile={state}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={o['db_port']}
StorageUser=slurm
StoragePass={DB_PASS}
StorageLoc=slurm_acct_db
""")
    dbd.chmod(0o600)  # slurmdbd refuses a readable one
    (etc / "my.cnf").write_text(f"""[mysqld]
user=root
datadir={state}/mysql
socket={state}/mysql.sock
port={o['db_port']}
bind-address=127.0.0.1
pid-file={state}/mariadb.pid
log-error={state}/log/mariadb.err
innodb_buffer_pool_size=1024M
innodb_lock_wait_timeout=900
[client]
socket={state}/mysql.sock
""")
    (state / "lab.json").write_text(json.dumps(o, indent=1))
    return etc / "slurm.conf"


# ---------------------------------------------------------------- daemons
def start_munge(state: Path) -> None:
    if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
        return  # someone else's munged: leave it alone
    Path("/run/munge").mkdir(exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
    wait_for("munged", lambda: read_pid(Path("/run/munge/munged.pid")))
    shutil.copy("/run/munge/munged.pid", state / "munged.pid")  # so `down` stops it


def start_mariadb(state: Path) -> None:
    cnf = str(state / "etc" / "my.cnf")
    if (pid := read_pid(state / "mariadb.pid")) and pid_alive(pid):
        return
    if not (state / "mysql" / "mysql").exists():
        subprocess.run(["mariadb-install-db", f"--defaults-file={cnf}", "--skip-test-db"],
                       check=True, capture_output=True)
    with open(state / "log" / "mariadb.out", "ab") as out:
        subprocess.Popen(["mariadbd", f"--defaults-file={cnf}"], stdout=out, stderr=out,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    sql = (f"CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
           f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{DB_PASS}'; "
           f"CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '{DB_PASS}'; "
           f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; "
           f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';")
    wait_for("mariadb", lambda: subprocess.run(
        ["mariadb", f"--defaults-file={cnf}", "-uroot", "-e", sql],
        capture_output=True).returncode == 0, timeout=60)


def start_daemon(state: Path, name: str, probe) -> None:
    if (pid := read_pid(state / f"{name}.pid")) and pid_alive(pid):
        return
    subprocess.run([name], env=env(state), check=True)  # each daemonizes itself
    wait_for(name, probe, timeout=60)


def node_state(state: Path) -> str:
    return ",".join(sorted(set(run(state, "sinfo", "-h", "-N", "-o", "%T").split())))


def up(state: Path, o: dict) -> None:
    state = state.resolve()
    ensure_packages()
    write_configs(state, o)
    start_munge(state)
    start_mariadb(state)
    start_daemon(state, "slurmdbd", lambda: run(state, "sacctmgr", "-n", "show", "cluster") or True)
    if o["cluster"] not in run(state, "sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"):
        run(state, "sacctmgr", "-i", "add", "cluster", o["cluster"])
    start_daemon(state, "slurmctld", lambda: run(state, "scontrol", "ping").count("UP"))
    start_daemon(state, "slurmd", lambda: node_state(state))
    st = wait_for("node idle", lambda: (s := node_state(state)) in ("idle", "mixed", "allocated")
                  and s, timeout=90)
    log(f"up: node {st}; export SLURM_CONF={state}/etc/slurm.conf")


def restart_ctld(state: Path, changes: dict) -> None:
    """Rewrite slurm.conf with `changes` and restart slurmctld; usage is kept in its state files."""
    state = state.resolve()
    o = {**json.loads((state / "lab.json").read_text()), **changes}
    write_configs(state, o)
    stop_pid(state / "slurmctld.pid", "slurmctld")
    start_daemon(state, "slurmctld", lambda: run(state, "scontrol", "ping").count("UP"))
    wait_for("node idle", lambda: node_state(state) == "idle", timeout=90)


def down(state: Path) -> None:
    state = state.resolve()
    for name in ("slurmd", "slurmctld", "slurmdbd", "mariadb", "munged"):
        stop_pid(state / f"{name}.pid", name)


# ---------------------------------------------------------------- the test site and workload
TREE = [  # (account, parent, fairshare)
    ("physics", "root", "40"), ("theory", "physics", "20"), ("chem", "root", "30"),
    ("bio", "root", "30"), ("idle", "root", "10")]
USERS = [  # (user, account, fairshare)
    ("alice", "physics", "10"), ("bob", "physics", "10"), ("carol", "theory", "parent"),
    ("dave", "theory", "5"), ("erin", "chem", "10"), ("alice", "chem", "10"),
    ("frank", "bio", "10"), ("grace", "bio", "0"), ("heidi", "idle", "10")]


def site(state: Path) -> None:
    for user in sorted({u for u, _, _ in USERS}):
        if subprocess.run(["id", user], capture_output=True).returncode:
            subprocess.run(["useradd", "-M", "-s", "/bin/sh", user], check=True)
    sam = lambda *a: run(state, "sacctmgr", "-i", *a)  # noqa: E731
    sam("add", "qos", "scavenger", "UsageFactor=0.5")
    for acct, parent, fs in TREE:
        sam("add", "account", acct, f"parent={parent}", f"fairshare={fs}")
    for user, acct, fs in USERS:
        sam("add", "user", user, f"account={acct}", f"fairshare={fs}")
    sam("modify", "user", "where", "name=bob", "account=physics", "set", "qos+=scavenger")
    run(state, "scontrol", "reconfigure")


def sbatch(state: Path, user: str, *args: str, wrap: str) -> str:
    return run(state, "sbatch", "--parsable", "--chdir=/tmp", "--output=/dev/null", *args,
               f"--wrap={wrap}", user=user).strip().split(";")[0]


def job_state(state: Path, job: str) -> str:
    return run(state, "squeue", "-h", "-j", job, "-o", "%T", check=False).strip()


JOBS = [  # label, user, sbatch options (--time=3 unless given), command
    # chem {erin, alice} and bio {frank, grace} get identical pairs of jobs, held (-H) and then
    # released together so that they start in one scheduling pass: the two accounts' usage ties
    ("erin", "erin", "-pcpu", "-H", "-Achem", "-c2", "--mem=1536M", "-Jtwin", "sleep 40"),
    ("frank", "frank", "-pcpu", "-H", "-Abio", "-c2", "--mem=1536M", "-Jtwin", "sleep 40"),
    ("alice_chem", "alice", "-pcpu", "-H", "-Achem", "-c1", "--mem=1500M", "-Jtwin2", "sleep 25"),
    ("grace_bio", "grace", "-pcpu", "-H", "-Abio", "-c1", "--mem=1500M", "-Jtwin2", "sleep 25"),
    ("cancel_running", "alice", "-pcpu", "-c2", "--mem=1500M", "-Jcancelme", "sleep 300"),
    ("gpu", "dave", "-pgpu", "-c1", "--mem=2000M", "--gres=gpu:1", "-Jgpujob", "sleep 50"),
    ("timeout", "bob", "-pcpu", "--time=1", "-c1", "--mem=1000M", "-Jtimeout", "sleep 120"),
    ("cancel_pending", "carol", "-pcpu", "--begin=now+3600", "-Jnever", "sleep 10"),
    ("alice_phys", "alice", "-pcpu", "-c2", "--mem=1500M", "-Jphys", "sleep 60"),
    ("bob", "bob", "-pcpu", "-c1", "--mem=3000M", "-Jbigmem", "sleep 45"),
    ("carol", "carol", "-pcpu", "-c1", "--mem=1000M", "-Jcarol", "sleep 30"),
    ("carol_gpu_part", "carol", "-pgpu", "-c3", "--mem=1536M", "-Jnogres", "sleep 30"),
    ("scavenger", "bob", "-pcpu", "--qos=scavenger", "-c4", "--mem=1024M", "-Jscav", "sleep 30"),
    ("array", "carol", "-pcpu", "--array=1-3", "-c1", "--mem=768M", "-Jarr", "sleep 20"),
    ("fail", "dave", "-pcpu", "-c1", "-Jfail", "sleep 15; exit 1"),  # DefMemPerCPU: 512M
]


def workload(state: Path) -> dict:
    """Submit JOBS, cancel two of them; return {label: jobid} once every job has ended (~3 min)."""
    state = state.resolve()
    j: dict[str, str] = {}
    for held in (True, False):
        for label, user, *args, wrap in JOBS:
            if ("-H" in args) == held:
                limit = [] if any(a.startswith("--time") for a in args) else ["--time=3"]
                j[label] = sbatch(state, user, *args, *limit, wrap=wrap)
        if held:
            run(state, "scontrol", "release", ",".join(j.values()))
    run(state, "scancel", j["cancel_pending"])
    wait_for("cancelme running", lambda: job_state(state, j["cancel_running"]) == "RUNNING", 60)
    time.sleep(20)
    run(state, "scancel", j["cancel_running"])
    wait_for("all jobs to end", lambda: run(state, "squeue", "-h", "-o", "%i").strip() == "",
             timeout=600, step=2)
    log(f"workload done: {j}")
    return j


def capture(state: Path, out: Path, since: str, settle: float = 130) -> None:
    """Write the golden files; sshare waits `settle` s so two PriorityCalcPeriod ticks pass."""
    state = state.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(state / "etc" / "slurm.conf", out / "slurm.conf")
    time.sleep(settle)
    files = {
        "sshare.txt": ["sshare", "-a", "-l", "-P"],
        "assoc_mgr.txt": ["scontrol", "show", "assoc_mgr", "flags=assoc"],
        "assoc.txt": ["sacctmgr", "--parsable2", "show", "associations"],
        "assoc_lft.txt": ["sacctmgr", "--parsable2", "show", "associations",
                          "format=Cluster,Account,User,ParentName,Share,Lft,Rgt,QOS,DefaultQOS"],
        "qos.txt": ["sacctmgr", "--parsable2", "show", "qos", "format=Name,UsageFactor,Priority"],
        "sacct.txt": ["sacct", "--allusers", "--duplicates", "--parsable2", "--noconvert",
                      f"--starttime={since}", "--endtime=now", f"--state={ALL_STATES}",
                      f"--format={SACCT_FORMAT}"],
    }
    as_of = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, cmd in files.items():
        (out / name).write_text(run(state, *cmd))
    (out / "as_of.txt").write_text(as_of + "\n")
    log(f"captured into {out} as of {as_of}")


# ---------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["up", "down", "restart-ctld", "site", "workload", "capture",
                                    "golden", "env"])
    ap.add_argument("statedir", type=Path)
    ap.add_argument("outdir", type=Path, nargs="?", help="capture/golden: where the files go")
    ap.add_argument("--halflife", help="PriorityDecayHalfLife, e.g. 0 (default) or 00:05:00")
    ap.add_argument("--flags", help="PriorityFlags, e.g. NO_FAIR_TREE (default none)")
    ap.add_argument("--calc-period", help="PriorityCalcPeriod in minutes (default 1)")
    ap.add_argument("--reset", help="PriorityUsageResetPeriod; default YEARLY when the half-life "
                    "is 0 (22.05 refuses 0 with NONE), else NONE")
    ap.add_argument("--cluster", default="lab")
    ap.add_argument("--ctld-port", type=int, default=6817, help="slurmd uses this + 1")
    ap.add_argument("--dbd-port", type=int, default=6819)
    ap.add_argument("--db-port", type=int, default=3307)
    ap.add_argument("--since", help="sacct --starttime (capture); default: 1 hour ago")
    ap.add_argument("--settle", type=float, default=130)
    a = ap.parse_args(argv)
    prio = {k: v for k, v in (("halflife", a.halflife), ("flags", a.flags),
                              ("calc_period", a.calc_period), ("reset", a.reset)) if v is not None}
    if "halflife" in prio and "reset" not in prio:
        prio["reset"] = "YEARLY" if prio["halflife"].strip(":0") == "" else "NONE"
    o = {"cluster": a.cluster, "halflife": "0", "flags": "", "calc_period": "1", "reset": "YEARLY",
         "ctld_port": a.ctld_port, "dbd_port": a.dbd_port, "db_port": a.db_port, **prio}
    st = a.statedir.resolve()
    since = a.since or (dt.datetime.utcnow() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    if a.cmd == "up":
        up(st, o)
    elif a.cmd == "down":
        down(st)
    elif a.cmd == "restart-ctld":  # only the priority options given change
        restart_ctld(st, prio)
    elif a.cmd == "site":
        site(st)
    elif a.cmd == "workload":
        print(json.dumps(workload(st)))
    elif a.cmd == "capture":
        capture(st, a.outdir, since, a.settle)
    elif a.cmd == "golden":  # up + site + workload + capture, for a fresh STATEDIR
        since = (dt.datetime.utcnow() - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
        up(st, o)
        site(st)
        jobs = workload(st)
        capture(st, a.outdir, since, a.settle)
        (a.outdir / "jobs.json").write_text(json.dumps(jobs, indent=1) + "\n")
    elif a.cmd == "env":
        print(f"export SLURM_CONF={st}/etc/slurm.conf")


if __name__ == "__main__":
    main()
