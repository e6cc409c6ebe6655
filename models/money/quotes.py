"""Quotes: what a job would be charged now, and which grant would pay (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import polars as pl

from models.money.charges import MB_PER_GIB, Charges, charge_runs
from models.money.frames import CHARGE_RUNS
from models.policy import Policy


def quote_run(
    policy: Policy,
    *,
    at: datetime,
    cluster: str,
    partition: str,
    account: str,
    user: str,
    qos: str,
    hours: Decimal,
    cpus: int,
    gpus: int = 0,
    gpu_model: str | None = None,
    mem_gb: Decimal = Decimal(0),
    nodes: int = 1,
) -> Charges:
    """Return what a job with these resources ending at ``at`` would be charged (and by which
    grant); ``hours`` is rounded to whole seconds."""
    seconds = int((hours * 3600).to_integral_value())
    at = at.astimezone(UTC)
    run = {
        "run_key": "quote",
        "cluster": cluster,
        "job_id": "quote",
        "job_id_raw": "quote",
        "account": account,
        "user": user,
        "partition": partition,
        "qos": qos,
        "state": "COMPLETED",
        "submit_at": at,
        "start_at": at,
        "end_at": at,
        "elapsed_s": seconds,
        "alloc_nodes": nodes,
        "alloc_cpus": cpus,
        "alloc_mem_mb": float(mem_gb * MB_PER_GIB),
        "alloc_gpus": gpus,
        "gpu_type": gpu_model,
    }
    return charge_runs(pl.DataFrame([run], schema=CHARGE_RUNS), policy)
