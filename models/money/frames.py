"""Column names and dtypes of the money frames: charge lines, the ledger, statements.

Amounts are ``MONEY`` (exact decimals), times UTC (``*_at``).
"""

from __future__ import annotations

import polars as pl

from models.frames import RUNS, UTC_TIME

MONEY = pl.Decimal(38, 6)  # the storage type; amounts carry the policy's quantum (2 = cents)

# One charge line: a run's use of one resource in the period, priced by one rate card.
CHARGE_COLUMNS: dict[str, pl.DataType] = {
    "run_key": pl.String(),
    "job_id": pl.String(),
    "cluster": pl.String(),
    "account": pl.String(),
    "user": pl.String(),
    "partition": pl.String(),
    "qos": pl.String(),
    "end_at": UTC_TIME,
    "resource": pl.String(),  # cpu, gpu, mem, node, minimum
    "gpu_model": pl.String(),  # for gpu lines, else null
    "quantity": pl.Float64(),  # CPUs, GPUs, GiB, nodes (1 for minimum)
    "hours": pl.Float64(),  # hours in the period
    "rate_card": pl.String(),
    "unit_price": MONEY,  # per unit-hour
    "multiplier": MONEY,  # QOS multiplier
    "amount": MONEY,
}

# A line that corrects a closed period, a refund, or a manual adjustment.
ADJUSTMENT_COLUMNS: dict[str, pl.DataType] = {
    "kind": pl.String(),  # "revision", "late run", "refund", "manual"
    "refers_period": pl.String(),  # the closed period it corrects (null for manual)
    "run_key": pl.String(),  # null for a manual adjustment of the grant
    "resource": pl.String(),
    "amount": MONEY,  # positive = charged, negative = credited
    "reason": pl.String(),
    "author": pl.String(),
    "posted_at": UTC_TIME,
}

# Cumulative spend of the grant per day, for the burn-down chart.
BURNDOWN_COLUMNS: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "spent": MONEY,  # cumulative, from the grant's start
    "remaining": MONEY,  # budget − spent
    "forecast": pl.Boolean(),  # True for the projected days after the period
}

# Charge lines summarised by user, partition and resource (a statement's non-itemised form).
CHARGE_SUMMARY_COLUMNS: dict[str, pl.DataType] = {
    "user": pl.String(),
    "partition": pl.String(),
    "resource": pl.String(),
    "runs": pl.UInt32(),  # distinct runs with a line in the group
    "lines": pl.UInt32(),
    "hours": pl.Float64(),
    "amount": MONEY,  # exact sum of the group's line amounts
}

# What charging reads of a run (``models.store.runs.read_runs(columns=CHARGE_RUN_COLUMNS)``).
CHARGE_RUN_COLUMNS = (
    "run_key",
    "cluster",
    "job_id",
    "job_id_raw",
    "account",
    "user",
    "partition",
    "qos",
    "state",
    "submit_at",
    "start_at",
    "end_at",
    "elapsed_s",
    "alloc_nodes",
    "alloc_cpus",
    "alloc_mem_mb",
    "alloc_gpus",
    "gpu_type",
)

# The charging input's dtypes: those of the canonical runs.
CHARGE_RUNS: dict[str, pl.DataType] = {c: RUNS[c] for c in CHARGE_RUN_COLUMNS}

# A charge line as computed (the statement's CHARGE_COLUMNS plus the grant, period and seconds).
LINES: dict[str, pl.DataType] = {
    "grant_id": pl.String(),
    "period": pl.String(),
    **CHARGE_COLUMNS,
    "seconds": pl.Int64(),  # Elapsed seconds in the period (hours is seconds / 3600)
}

# A run that is not charged, and why (reported, never dropped).
UNBILLED: dict[str, pl.DataType] = {
    "run_key": pl.String(),
    "cluster": pl.String(),
    "account": pl.String(),
    "user": pl.String(),
    "end_at": UTC_TIME,
    "reason": pl.String(),
}

MEMBERSHIPS: dict[str, pl.DataType] = {
    "grant_id": pl.String(),
    "cluster": pl.String(),
    "account": pl.String(),
    "user": pl.String(),
    "from_at": UTC_TIME,
    "until_at": UTC_TIME,
    "specificity": pl.Int8(),
}

LEDGER: dict[str, pl.DataType] = {
    "posted_period": pl.String(),
    "kind": pl.String(),  # charge, revision, late run, refund, manual
    "refers_period": pl.String(),  # the period a charge belongs to / an adjustment corrects
    **{c: t for c, t in LINES.items() if c != "period"},
    "reason": pl.String(),
    "author": pl.String(),
    "posted_at": UTC_TIME,
}
