"""A real Slurm 22.05 for the integration tests: one lab, three clusters, one workload.

The session fixture ``slurm_lab`` starts (``lab.py``) a private MariaDB, slurmdbd and three
clusters that differ only in their priority settings, each its own slurmctld and slurmd:

- ``nodecay``: Fair Tree, ``PriorityDecayHalfLife=0`` (run 1);
- ``decay``: Fair Tree, ``PriorityDecayHalfLife=00:05:00`` (run 2);
- ``classic``: ``PriorityFlags=NO_FAIR_TREE``, no decay (run 3).

It creates the association tree and Unix users, runs the workload on the three at once
(about 90 s), waits for a priority tick after the last job ended and captures each cluster's
``sshare``, ``scontrol show assoc_mgr``, ``sacctmgr`` output, ``sacct`` and slurmctld log.
Whatever happens, even on a failure or Ctrl-C (and SIGTERM, turned into KeyboardInterrupt
while it runs), every daemon it started is stopped by pid at the end.

It runs when the machine allows: root, Debian, and Slurm's packages installed or installable
with apt-get. Elsewhere the tests are skipped with the reason. ``FAIRLEDGER_SLURM=0`` skips
them; ``FAIRLEDGER_SLURM_KEEP=DIR`` keeps the captures (and the fairledger outputs the tests
write beside them) in DIR. The lab lives in a fresh ``/tmp/fairledger-slurm-*`` (or under
``FAIRLEDGER_SLURM_DIR``), readable by the job owners, removed at the end.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import lab as labkit  # noqa: E402  (tests/integration/slurm/lab.py, stdlib only)
from helpers import Capture, LabRun, Site, make_site  # noqa: E402

CLUSTERS = [
    labkit.Cluster("nodecay"),
    labkit.Cluster("decay", halflife="00:05:00"),
    labkit.Cluster("classic", flags="NO_FAIR_TREE"),
]
TIMINGS: dict[str, float] = {}
NOTES: list[str] = []


def _tie(capture: Capture) -> str:
    """Whether the twin accounts' LevelFS tied in this capture (their jobs start and end in the
    same second almost always; when a twin ends a second later the tie is gone, which changes
    nothing in the comparisons)."""
    from ingest.sources.sshare import parse_sshare

    shares = parse_sshare(capture.text("sshare.txt"))
    accounts = shares.filter(shares["user"] == "")
    columns = ["raw_usage", "effective_usage", "level_fs"]
    printed = {row[0]: row[1:] for row in accounts.select("account", *columns).iter_rows()}
    if printed.get("bio") == printed.get("chem"):
        return "tied"
    return "did not tie (a twin ended a second later)"


def unavailable() -> str | None:
    """Return why this machine cannot run the real-Slurm tests, or None if it can."""
    if os.environ.get("FAIRLEDGER_SLURM", "").strip().lower() in ("0", "no", "off", "false"):
        return "disabled by FAIRLEDGER_SLURM=0"
    if not sys.platform.startswith("linux"):
        return f"needs Linux (Debian's Slurm packages), not {sys.platform}"
    if os.geteuid() != 0:
        return "needs root: starts munge, MariaDB and Slurm daemons and creates Unix users"
    if not Path("/etc/debian_version").exists():
        return "needs Debian: installs and runs Debian's Slurm 22.05 packages"
    for tool in ("runuser", "useradd"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if labkit.missing_binaries() and shutil.which("apt-get") is None:
        return f"Slurm is not installed ({', '.join(labkit.missing_binaries())}) and no apt-get"
    return None


class _Guard:
    """Stops the lab's daemons exactly once: at teardown, at exit, or on SIGTERM."""

    def __init__(self, lab: labkit.Lab) -> None:
        self.lab = lab
        self.done = False
        self.previous: Callable[[int, FrameType | None], object] | int | None = None
        atexit.register(self.stop)
        with contextlib.suppress(ValueError):  # not in the main thread: no handler
            self.previous = signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    stopped_cleanly = False

    def stop(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.lab.down()
            self.stopped_cleanly = True
        finally:
            atexit.unregister(self.stop)
            if self.previous is not None:
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(signal.SIGTERM, self.previous)


@pytest.fixture(scope="session")
def slurm_lab() -> Iterator[LabRun]:
    """The lab with the workload done and every cluster captured (see the module docstring)."""
    reason = unavailable()
    if reason:
        pytest.skip(f"real Slurm: {reason}")
    started = time.monotonic()
    try:
        labkit.ensure_packages()
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        tail = detail.decode(errors="replace").strip()[-300:] if detail else str(exc)
        pytest.skip(f"real Slurm: packages missing and apt-get could not install them: {tail}")
    TIMINGS["install"] = time.monotonic() - started
    # not under pytest's temp dir (mode 700): the job owners' sbatch reads slurm.conf in it
    base = os.environ.get("FAIRLEDGER_SLURM_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="fairledger-slurm-", dir=base))
    state.chmod(0o755)
    lab = labkit.Lab.create(state / "lab", [labkit.Cluster(**vars(c)) for c in CLUSTERS])
    guard = _Guard(lab)
    try:
        mark = time.monotonic()
        lab.up()
        TIMINGS["up"] = time.monotonic() - mark
        mark = time.monotonic()
        labkit.site(lab)
        TIMINGS["site"] = time.monotonic() - mark
        since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
        mark = time.monotonic()
        jobs = labkit.workload(lab)
        TIMINGS["workload"] = time.monotonic() - mark
        ended = time.time() + 1  # a tick in the second of the last end may precede it
        mark = time.monotonic()
        captures = {}
        for c in lab.clusters:
            got = labkit.capture(lab, c.name, state / "captures" / c.name, since, after=ended)
            captures[c.name] = Capture(
                c.name,
                got["dir"],
                got["as_of"],
                datetime.fromtimestamp(got["tick"], UTC),
            )
        TIMINGS["tick wait + capture"] = time.monotonic() - mark
        for name, capture in captures.items():
            NOTES.append(f"{name}: chem and bio {_tie(capture)}")
        yield LabRun(lab, state, since, jobs, captures, TIMINGS)
    finally:
        mark = time.monotonic()
        guard.stop()
        TIMINGS["down"] = time.monotonic() - mark
        TIMINGS["lab total"] = time.monotonic() - started
        keep = os.environ.get("FAIRLEDGER_SLURM_KEEP")
        if keep and (state / "captures").exists():
            shutil.copytree(state / "captures", Path(keep), dirs_exist_ok=True)
        if guard.stopped_cleanly:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"real Slurm lab left in {state} (a daemon did not stop)", file=sys.stderr)  # noqa: T201


@pytest.fixture(scope="session")
def fl_site(slurm_lab: LabRun, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Site]:
    """Return, per cluster, a fairledger store fed from it (made once, on first use)."""
    sites: dict[str, Site] = {}

    def get(cluster: str) -> Site:
        if cluster not in sites:
            mark = time.monotonic()
            sites[cluster] = make_site(
                cluster,
                slurm_lab.captures[cluster],
                slurm_lab.lab.conf(cluster),
                slurm_lab.since,
                tmp_path_factory.mktemp(f"fairledger-{cluster}"),
            )
            TIMINGS[f"fairledger import+ingest {cluster}"] = time.monotonic() - mark
        return sites[cluster]

    return get


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("real Slurm lab timings")
        for phase, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{phase:<36} {seconds:7.1f} s")
        for note in NOTES:
            terminalreporter.write_line(note)
