"""The DuckDB store: the only package that imports duckdb."""

from duckdb import DuckDBPyConnection as Connection

from models.store.db import connect, migrate, open_store, read_snapshot, transaction
from models.store.policies import (
    PolicyVersion,
    read_active_policy,
    require_active_policy,
    write_policy,
)
from models.store.quarantine import read_quarantine
from models.store.runs import (
    BatchSummary,
    has_batch_from,
    read_policy_and_runs,
    read_runs,
    write_batch,
)
from models.store.sources import read_source_states

__all__ = [
    "BatchSummary",
    "Connection",
    "PolicyVersion",
    "connect",
    "has_batch_from",
    "migrate",
    "open_store",
    "read_active_policy",
    "read_policy_and_runs",
    "read_quarantine",
    "read_runs",
    "read_snapshot",
    "read_source_states",
    "require_active_policy",
    "transaction",
    "write_batch",
    "write_policy",
]
