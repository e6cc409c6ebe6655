"""The compliance step of the server's recompute: bring the stored verdicts up to date.

Runs after each factor publish (``Service.recompute_job``). It checks cheaply whether the
active policy version or the runs changed since the last verdict batch, and only then reads the
policy and the runs, computes and stores a batch (with its audit-log entry) under the write
lock. A failure is logged and never stops the factor recompute.
"""

from __future__ import annotations

import logging
from datetime import datetime

from models.store import read_active_policy
from models.store.handle import StoreHandle
from models.store.snapshots import read_active_policy_version
from models.store.verdicts import VerdictBatch, refresh_verdicts, verdicts_stale

log = logging.getLogger("fairledger.compliance")


def refresh_compliance(store: StoreHandle, now: datetime) -> VerdictBatch | None:
    """Store a new verdict batch if the policy or runs changed; return it (None if nothing
    changed, no policy is loaded, or it failed)."""
    try:
        with store.reading() as cur:
            version = read_active_policy_version(cur)
            if version is None or not verdicts_stale(cur, version):
                return None
        with store.write() as cur:
            active = read_active_policy(cur)
            if active is None:
                return None
            batch = refresh_verdicts(
                cur, policy_version=active.version_id, policy=active.policy, now=now
            )
    except Exception:
        log.exception("compliance verdicts could not be refreshed")
        return None
    if batch is not None:
        log.info(
            "verdict batch %s (%s, policy %s): %s approved, %s violation, %s unknown",
            batch.batch_id,
            batch.scope,
            batch.policy_version,
            batch.approved,
            batch.violation,
            batch.unknown,
        )
    return batch
