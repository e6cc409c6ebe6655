"""Factors delivered to a scheduler without a network call in its request path.

Two ways besides the HTTP pull (docs/delivery.md):

- ``export_factors`` writes every association's factor to a local JSON file, atomically (a
  temporary file in the same directory, fsync, ``os.replace``), so a site-factor script or a
  job-submit plugin reading it sees the old file or the new one, never half of one.
- ``push_site_factors`` sets the ``SiteFactor`` of pending Slurm jobs with ``scontrol update``
  from ``SiteFactor = round(scale * fairshare) + offset``, batched (scontrol takes a
  comma-separated job list and updates each job in turn), and only where the value differs
  from the one last pushed to that job: squeue cannot show a job's SiteFactor, so a
  ``SiteFactorLedger`` remembers what was pushed (in memory, or in ``[delivery] state_path``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from api.settings import Delivery
from ingest.sources.sacct import Runner, subprocess_runner
from models.errors import FairledgerError, ParseError, SourceUnavailable

log = logging.getLogger(__name__)

EXPORT_FORMAT = "fairledger-factors/1"
# scontrol keeps SiteFactor within +/- this (slurm.h: NICE_OFFSET - 3).
SITE_FACTOR_LIMIT = 2_147_483_645
SQUEUE_FORMAT = "%i|%u|%a"  # job id (array expressions as squeue shows them), user, account


def factors_document(factors: pl.DataFrame, *, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return the export file's content: ``format``, ``meta``, ``count`` and ``factors``, one
    ``{cluster, account, user, fairshare}`` per association (user "" for an account)."""
    rows = factors.select("cluster", "account", "user", "fairshare").to_dicts()
    for row in rows:
        value = row["fairshare"]
        row["fairshare"] = value if value is not None and math.isfinite(value) else None
    return {"format": EXPORT_FORMAT, "meta": dict(meta), "count": len(rows), "factors": rows}


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, whole."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600; the reader is often another user (slurm)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # the rename itself is durable once the directory is synced
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def export_factors(factors: pl.DataFrame, path: Path, *, meta: dict[str, Any]) -> None:
    """Write the factors (``models.fairshare.frames.FACTORS``) and ``meta`` (snapshot id,
    as_of, ...) to ``path`` as JSON, atomically."""
    document = factors_document(factors, meta=meta)
    data = json.dumps(document, allow_nan=False, default=str, separators=(",", ":")).encode()
    try:
        write_atomically(path, data + b"\n")
    except OSError as exc:
        raise FairledgerError(f"cannot write the factor file {path}: {exc}") from exc


# --- Pushing SiteFactor to pending Slurm jobs ---


@dataclass(frozen=True)
class PendingJob:
    job_id: str
    user: str
    account: str


def parse_squeue(text: str) -> list[PendingJob]:
    """Return the jobs of ``squeue --noheader --format=%i|%u|%a`` output.

    ``CLUSTER: name`` lines (``squeue -M``) and blank lines are skipped; any other line that
    is not three ``|``-separated fields raises ParseError.
    """
    jobs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("CLUSTER: "):
            continue
        parts = line.strip().split("|")
        if len(parts) != 3 or not parts[0]:
            raise ParseError(f"squeue line {number} is not job|user|account: {line!r}")
        jobs.append(PendingJob(*parts))
    return jobs


def site_factor(fairshare: float, *, scale: float, offset: int) -> int:
    """Return ``round(scale * fairshare) + offset`` (halves up), within Slurm's range."""
    value = math.floor(scale * fairshare + 0.5) + offset
    return max(-SITE_FACTOR_LIMIT, min(SITE_FACTOR_LIMIT, value))


def site_factors(
    factors: pl.DataFrame, *, cluster: str, scale: float, offset: int
) -> dict[tuple[str, str], int]:
    """Return the SiteFactor of each user association of ``cluster``, by (account, user)."""
    users = factors.filter(
        (pl.col("cluster") == cluster) & (pl.col("user") != "") & pl.col("fairshare").is_not_nan()
    ).select("account", "user", "fairshare")
    return {
        (account, user): site_factor(fairshare, scale=scale, offset=offset)
        for account, user, fairshare in users.iter_rows()
        if fairshare is not None
    }


class SiteFactorLedger:
    """The SiteFactor last pushed to each job, by cluster; saved to ``path`` if given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, int]] = {}
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self._values = {
                    str(c): {str(j): int(v) for j, v in jobs.items()}
                    for c, jobs in loaded.get("pushed", {}).items()
                }
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                # a lost ledger only means pushing every pending job once more
                log.warning("ignoring the unreadable SiteFactor ledger %s: %s", path, exc)

    def get(self, cluster: str, job_id: str) -> int | None:
        with self._lock:
            return self._values.get(cluster, {}).get(job_id)

    def record(self, cluster: str, job_ids: Sequence[str], value: int) -> None:
        with self._lock:
            jobs = self._values.setdefault(cluster, {})
            for job_id in job_ids:
                jobs[job_id] = value

    def retain(self, cluster: str, job_ids: set[str]) -> None:
        """Forget the jobs of ``cluster`` not in ``job_ids`` (they are no longer pending)."""
        with self._lock:
            jobs = self._values.get(cluster, {})
            self._values[cluster] = {j: v for j, v in jobs.items() if j in job_ids}

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            data = json.dumps({"pushed": self._values}, sort_keys=True).encode()
        write_atomically(self.path, data, mode=0o600)


_ledgers: dict[tuple[str, str | None, str | None], SiteFactorLedger] = {}
_ledgers_lock = threading.Lock()


def ledger_for(delivery: Delivery) -> SiteFactorLedger:
    """Return this process's ledger for ``delivery`` (loaded from its state_path once)."""
    key = (delivery.scontrol, delivery.cluster, str(delivery.state_path or "") or None)
    with _ledgers_lock:
        if key not in _ledgers:
            _ledgers[key] = SiteFactorLedger(delivery.state_path)
        return _ledgers[key]


@dataclass
class PushReport:
    """What a push did (or, with ``dry_run``, would do).

    ``updated + unchanged + len(unknown_association) + failed == jobs_seen``; ``batches`` is
    the number of batched ``scontrol update`` calls, ``scontrol_calls`` all calls made
    (a batch that fails for some of its jobs is retried job by job to find them).
    """

    cluster: str
    dry_run: bool = False
    jobs_seen: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    batches: int = 0
    scontrol_calls: int = 0
    unknown_association: list[str] = field(default_factory=list)  # "job_id (account/user)"
    errors: list[str] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)  # dry run: job id -> SiteFactor

    def describe(self) -> str:
        """Return a one-paragraph summary for the command line and logs."""
        verb = "would update" if self.dry_run else "updated"
        text = (
            f"cluster {self.cluster}: {self.jobs_seen} pending jobs; {verb} {self.updated} "
            f"in {self.batches} batch(es), {self.unchanged} unchanged, "
            f"{len(self.unknown_association)} with an unknown association, {self.failed} failed"
        )
        if self.unknown_association:
            text += "\n  unknown: " + ", ".join(self.unknown_association[:20])
            if len(self.unknown_association) > 20:
                text += f" ... and {len(self.unknown_association) - 20} more"
        for error in self.errors[:20]:
            text += f"\n  error: {error}"
        return text


def _cluster_of(factors: pl.DataFrame, delivery: Delivery) -> str:
    if delivery.cluster:
        return delivery.cluster
    clusters = factors.get_column("cluster").unique().sort().to_list()
    if len(clusters) != 1:
        raise FairledgerError(
            f"the factors cover {len(clusters)} clusters ({', '.join(clusters) or 'none'}): "
            "set [delivery] cluster to the one whose jobs squeue lists"
        )
    return str(clusters[0])


def push_site_factors(
    factors: pl.DataFrame,
    *,
    delivery: Delivery,
    runner: Runner = subprocess_runner,
    ledger: SiteFactorLedger | None = None,
    dry_run: bool = False,
) -> PushReport:
    """Set the SiteFactor of pending jobs whose value changed; return what was done.

    Lists pending jobs with ``squeue``, maps each job's (account, user) in the delivery's
    cluster to its SiteFactor, and calls ``scontrol update JobId=<a,b,...> SiteFactor=<v>``
    for up to ``batch_size`` jobs sharing a value. Jobs whose value equals the one last
    pushed (``ledger``, by default this process's ledger for ``delivery``) are left alone.
    Raises SourceUnavailable when squeue fails; scontrol failures are reported.
    """
    cluster = _cluster_of(factors, delivery)
    ledger = ledger if ledger is not None else ledger_for(delivery)
    values = site_factors(
        factors,
        cluster=cluster,
        scale=delivery.site_factor_scale,
        offset=delivery.site_factor_offset,
    )
    squeue = [delivery.squeue, "--noheader", "--all", "--states=PENDING"]
    jobs = parse_squeue(
        runner([*squeue, f"--format={SQUEUE_FORMAT}"], timeout_s=delivery.timeout_s)
    )
    report = PushReport(cluster=cluster, dry_run=dry_run, jobs_seen=len(jobs))
    to_push: dict[int, list[str]] = {}
    for job in jobs:
        value = values.get((job.account, job.user))
        if value is None:
            report.unknown_association.append(f"{job.job_id} ({job.account}/{job.user})")
        elif ledger.get(cluster, job.job_id) == value:
            report.unchanged += 1
        else:
            to_push.setdefault(value, []).append(job.job_id)

    stopped = False
    for value, job_ids in sorted(to_push.items()):
        for i in range(0, len(job_ids), delivery.batch_size):
            batch = job_ids[i : i + delivery.batch_size]
            if stopped:
                report.failed += len(batch)
                continue
            report.batches += 1
            if dry_run:
                report.updated += len(batch)
                report.planned.update(dict.fromkeys(batch, value))
                continue
            stopped = not _update(batch, value, delivery, runner, ledger, report)
    if not dry_run:
        ledger.retain(cluster, {job.job_id for job in jobs})
        ledger.save()
    log.info("push-slurm %s", report.describe())
    return report


def _update(
    batch: list[str],
    value: int,
    delivery: Delivery,
    runner: Runner,
    ledger: SiteFactorLedger,
    report: PushReport,
) -> bool:
    """Update one batch; return False when scontrol itself is failing (stop pushing)."""

    def call(job_ids: list[str]) -> None:
        report.scontrol_calls += 1
        argv = [delivery.scontrol, "update", f"JobId={','.join(job_ids)}", f"SiteFactor={value}"]
        runner(argv, timeout_s=delivery.timeout_s)
        ledger.record(report.cluster, job_ids, value)
        report.updated += len(job_ids)

    try:
        call(batch)
        return True
    except SourceUnavailable as exc:
        if "for job" not in str(exc):  # not a per-job refusal: the controller is not answering
            report.failed += len(batch)
            report.errors.append(f"scontrol update of {len(batch)} jobs failed: {exc}")
            return False
    # scontrol updated the jobs it could and named the others: find them one by one
    for job_id in batch:
        try:
            call([job_id])
        except SourceUnavailable as exc:
            report.failed += 1
            report.errors.append(f"job {job_id}: {exc}")
    return True
