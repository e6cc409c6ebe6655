"""Column names and dtypes of the compliance frames: the node inventory, certifications and
per-run verdicts. Intervals are half-open UTC ``[from_at, until_at)``.
"""

from __future__ import annotations

import polars as pl

from models.frames import UTC_TIME

INVENTORY: dict[str, pl.DataType] = {
    "cluster": pl.String(),
    "node": pl.String(),
    "partitions": pl.List(pl.String()),
    "gpu_model": pl.String(),
    "from_at": UTC_TIME,
    "until_at": UTC_TIME,
}

CERTIFICATIONS: dict[str, pl.DataType] = {
    "certification_id": pl.String(),
    "regime": pl.String(),
    "cluster": pl.String(),
    "partitions": pl.List(pl.String()),
    "all_nodes": pl.Boolean(),
    "gpu_models": pl.List(pl.String()),
    "from_at": UTC_TIME,
    "until_at": UTC_TIME,
}

CERTIFIED_NODES: dict[str, pl.DataType] = {
    "certification_id": pl.String(),
    "regime": pl.String(),
    "cluster": pl.String(),
    "node": pl.String(),
}

VERDICTS: dict[str, pl.DataType] = {
    "run_key": pl.String(),
    "grant_id": pl.String(),
    "regime": pl.String(),
    "verdict": pl.String(),  # approved, violation, unknown
    "rule": pl.String(),  # null when approved
    "offending_node": pl.String(),  # null when approved or for a run-level rule
    "at": pl.String(),  # "start" or "end" for a node-level rule, else null
    "evidence": pl.String(),  # JSON object (see docs/compliance.md)
}
