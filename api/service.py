"""The serving process's state: the store handle, the published snapshot, the tokens, and the
recompute that publishes snapshots.

A request reads ``Service.snapshot`` (one attribute read; the snapshot is immutable), so HTTP
never waits on DuckDB. The recompute runs in a scheduler thread: it reads the policy and the
runs in one read transaction, computes the factors, stores the snapshot under the write lock and
then swaps it in.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from api.auth import Principal, Role, TokenTable
from api.errors import NotReady
from api.schemas import (
    DeliveryStatus,
    RecomputeStatus,
    SnapshotPublic,
    SourceStatus,
    StatusPublic,
)
from api.settings import Settings
from api.usecases.compliance import refresh_compliance
from api.usecases.money import ChargeCache
from models.errors import NoActivePolicy
from models.fairshare.factors import compute_factors
from models.fairshare.frames import FACTORS
from models.fairshare.snapshots import (
    FactorSnapshot,
    SnapshotMeta,
    accounts_within,
    build_snapshot,
    scoped_snapshot,
)
from models.frames import conform
from models.store import (
    PolicyVersion,
    read_runs,
    read_source_states,
    require_active_policy,
)
from models.store.handle import StoreHandle
from models.store.snapshots import (
    next_snapshot_id,
    prune_snapshots,
    read_active_policy_version,
    read_latest_snapshot,
    read_watermark,
    write_snapshot,
)
from models.store.status import read_batch_totals
from reports.sshare import build_sshare

log = logging.getLogger("fairledger.service")

# How many unknown associations the status lists.
_UNKNOWN_SHOWN = 50


@dataclass(frozen=True)
class Computed:
    """A recompute's result before it is published."""

    factors: pl.DataFrame
    meta: SnapshotMeta
    unknown: list[str]  # cluster/account/user with runs the policy does not know


def _unknown_associations(runs: pl.DataFrame, assocs: pl.DataFrame) -> list[str]:
    keys = assocs.select("cluster", "account", pl.col("user").fill_null(""))
    seen = runs.select("cluster", "account", pl.col("user").fill_null("")).unique()
    missing = seen.join(keys, on=["cluster", "account", "user"], how="anti").sort(
        "cluster", "account", "user"
    )
    return [f"{c}/{a}/{u}" for c, a, u in missing.iter_rows()]


def sshare_text(snapshot: FactorSnapshot) -> bytes:
    """Return ``sshare -a -l -P`` text for every cluster (headed ``CLUSTER: name`` when several)."""
    frame = snapshot.frame
    clusters = frame.get_column("cluster").unique(maintain_order=True).to_list()
    lines: list[str] = []
    for cluster in clusters:
        if len(clusters) > 1:
            lines.append(f"CLUSTER: {cluster}")
        lines.extend(
            build_sshare(
                frame.filter(pl.col("cluster") == cluster), algorithm=snapshot.meta.algorithm
            )
        )
    return ("\n".join(lines) + "\n").encode()


class Service:
    """What the app holds between requests (``app.state.service``)."""

    def __init__(
        self,
        settings: Settings,
        store: StoreHandle,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_published: Callable[[FactorSnapshot], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.on_published = on_published
        self.snapshot: FactorSnapshot | None = None
        self._policy: PolicyVersion | None = None  # parsed once per version
        self.tokens = TokenTable()
        self.recompute_status = RecomputeStatus()
        self.delivery_status = DeliveryStatus(
            export_path=str(settings.delivery.export_path)
            if settings.delivery.export_path
            else None,
            push_slurm=settings.delivery.push_slurm,
        )
        self.wake_recompute: Callable[[], None] | None = None  # set once the scheduler runs
        self._requested = threading.Event()
        self._running = threading.Lock()
        self._views: dict[tuple[str, tuple[str, ...]], FactorSnapshot] = {}
        self._texts: dict[str, tuple[bytes, str]] = {}
        self._cache_lock = threading.Lock()
        self.charges = ChargeCache()  # the money routes' charges, until a batch or policy lands

    # ------------------------------------------------------------------ start-up

    def load(self) -> None:
        """Load the tokens and the latest stored snapshot, so answers exist at once."""
        with self.store.reading() as cur:
            self.tokens.reload(cur)
            self.snapshot = read_latest_snapshot(cur)
        if self.snapshot is not None:
            log.info("serving stored snapshot %s", self.snapshot.meta.snapshot_id)

    def reload_tokens(self) -> None:
        with self.store.reading() as cur:
            self.tokens.reload(cur)

    # ------------------------------------------------------------------ recompute

    def compute(self, as_of: datetime) -> Computed:
        """Return the factors as of ``as_of`` from the store (policy and runs as known now)."""
        with self.store.snapshot() as cur:  # policy, runs and watermark from one state
            version = read_active_policy_version(cur)
            active = self._policy
            if active is None or active.version_id != version:
                active = self._policy = require_active_policy(cur)
            clusters = [c.name for c in active.policy.clusters]
            runs = read_runs(cur, clusters=clusters)
            batch, watermark_at, run_count = read_watermark(cur, clusters=clusters)
        factors = compute_factors(runs.lazy(), active.policy, as_of=as_of, unknown="drop")
        meta = SnapshotMeta(
            snapshot_id=None,
            as_of=as_of.astimezone(UTC),
            computed_at=self.clock().astimezone(UTC),
            policy_version=active.version_id,
            algorithm=active.policy.fairshare.algorithm,
            data_watermark_batch=batch,
            data_watermark_at=watermark_at.astimezone(UTC) if watermark_at else None,
            run_count=run_count,
        )
        unknown = _unknown_associations(runs, active.policy.association_frame())
        return Computed(conform(factors, FACTORS), meta, unknown)

    def compute_at(self, as_of: datetime) -> FactorSnapshot:
        """Return an unpublished snapshot for a past (or any) time."""
        computed = self.compute(as_of)
        return build_snapshot(computed.factors, computed.meta)

    def publish(self) -> FactorSnapshot | None:
        """Recompute now and publish a new snapshot; return it, or None when the factors,
        policy and data are those of the current snapshot (nothing new to publish)."""
        started = time.perf_counter()
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        computed = self.compute(now)
        current = self.snapshot
        digest = hashlib.sha256(computed.factors.write_csv().encode()).hexdigest()
        unchanged = (
            current is not None
            and current.content_sha256 == digest
            and current.meta.policy_version == computed.meta.policy_version
            and current.meta.data_watermark_batch == computed.meta.data_watermark_batch
        )
        published: FactorSnapshot | None = None
        if not unchanged:
            with self.store.write() as cur:
                snapshot_id = next_snapshot_id(cur)
            meta = replace(computed.meta, snapshot_id=snapshot_id)
            published = build_snapshot(computed.factors, meta)
            with self.store.write() as cur:
                write_snapshot(cur, published)
                prune_snapshots(cur, keep=self.settings.snapshots_kept)
            self._swap(published)
        self.recompute_status = RecomputeStatus(
            last_at=now,
            duration_s=round(time.perf_counter() - started, 4),
            published_snapshot_id=published.meta.snapshot_id if published else None,
            error=None,
            unknown_associations=computed.unknown[:_UNKNOWN_SHOWN],
        )
        if computed.unknown:
            log.warning(
                "%d associations with runs are not in the policy (left out): %s",
                len(computed.unknown),
                ", ".join(computed.unknown[:10]),
            )
        if published is not None:
            self._deliver(published)
        return published

    def _swap(self, snapshot: FactorSnapshot) -> None:
        with self._cache_lock:
            self.snapshot = snapshot
            self._views.clear()
            self._texts.clear()

    def _deliver(self, snapshot: FactorSnapshot) -> None:
        if self.on_published is None:
            return
        update: dict[str, Any] = {"last_at": self.clock(), "snapshot_id": snapshot.meta.snapshot_id}
        try:
            update["summary"] = self.on_published(snapshot)
            update["error"] = None
        except Exception as exc:  # delivery must never stop publishing
            log.exception("delivery of snapshot %s failed", snapshot.meta.snapshot_id)
            update["error"] = str(exc)
        self.delivery_status = self.delivery_status.model_copy(update=update)

    def recompute_job(self) -> None:
        """The scheduled job: publish, again if an ingest asked for it meanwhile; never raises."""
        with self._running:
            while True:
                self._requested.clear()
                try:
                    self.publish()
                    refresh_compliance(self.store, self.clock())  # verdicts; never raises
                except (NotReady, NoActivePolicy) as exc:  # say so, without a traceback
                    log.warning("recompute skipped: %s", exc)
                    self.recompute_status = self.recompute_status.model_copy(
                        update={"last_at": self.clock(), "error": str(exc)}
                    )
                except Exception as exc:
                    log.exception("recompute failed")
                    self.recompute_status = self.recompute_status.model_copy(
                        update={"last_at": self.clock(), "error": str(exc)}
                    )
                if not self._requested.is_set():
                    break

    def request_recompute(self) -> None:
        """Ask for a recompute soon (an ingest job loaded something); safe from any thread."""
        self._requested.set()
        if self.wake_recompute is not None:
            self.wake_recompute()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no recompute runs; return False on timeout."""
        if self._running.acquire(timeout=timeout):
            self._running.release()
            return True
        return False

    # ------------------------------------------------------------------ serving

    def current(self) -> FactorSnapshot:
        """Return the published snapshot, or raise NotReady."""
        snapshot = self.snapshot
        if snapshot is None:
            raise NotReady("no factor snapshot yet: the first recompute has not finished")
        return snapshot

    def view(self, principal: Principal) -> FactorSnapshot:
        """Return the snapshot as ``principal`` may see it (a viewer: its accounts' subtree)."""
        snapshot = self.current()
        if principal.role is not Role.viewer:
            return snapshot
        key = (snapshot.etag, principal.accounts or ())
        found = self._views.get(key)
        if found is None:
            found = scoped_snapshot(snapshot, principal.accounts or ())
            with self._cache_lock:
                if self.snapshot is snapshot:
                    self._views[key] = found
        return found

    def scope(self, principal: Principal) -> set[tuple[str, str]] | None:
        """Return the (cluster, account) pairs ``principal`` may see: a viewer's accounts and
        those below them in the current snapshot; None for every role that sees all."""
        if principal.role is not Role.viewer:
            return None
        return accounts_within(self.current().frame, principal.accounts or ())

    def sshare(self, snapshot: FactorSnapshot) -> tuple[bytes, str]:
        """Return (sshare text, its strong ETag) for ``snapshot``, made once."""
        found = self._texts.get(snapshot.etag)
        if found is None:
            text = sshare_text(snapshot)
            found = (text, f'"{hashlib.sha256(text).hexdigest()}"')
            with self._cache_lock:
                self._texts[snapshot.etag] = found
        return found

    # ------------------------------------------------------------------ status

    def status(self) -> StatusPublic:
        """Return the ingest, recompute and delivery status (reads the store)."""
        with self.store.reading() as cur:
            totals = read_batch_totals(cur)
            states = read_source_states(cur)
        by_source: dict[str, dict[str, Any]] = {}
        for source in self.settings.sources:
            by_source[source.name] = {"source": source.name, "cluster": source.cluster}
        for row in states.iter_rows(named=True):
            by_source.setdefault(row["source"], {}).update(row)
        for row in totals.iter_rows(named=True):
            by_source.setdefault(row["source"], {"source": row["source"]}).update(row)
        sources = [SourceStatus.model_validate(entry) for _, entry in sorted(by_source.items())]
        snapshot = self.snapshot
        overall: Literal["ok", "degraded", "starting"]
        if snapshot is None:
            overall = "starting"
        elif any(s.degraded for s in sources) or self.recompute_status.error:
            overall = "degraded"
        else:
            overall = "ok"
        return StatusPublic(
            status=overall,
            snapshot=(
                SnapshotPublic.model_validate(snapshot.meta.public(snapshot.count))
                if snapshot
                else None
            ),
            sources=sources,
            recompute=self.recompute_status,
            delivery=self.delivery_status,
        )
