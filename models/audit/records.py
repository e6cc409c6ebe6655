"""The record hash of a run version, and of the run versions an ingest batch stored (pure).

A run version is written as one line of JSON (a *record line*): an object with the
``RECORD_COLUMNS`` in that order, written the way Python's
``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`` writes it:

- null as ``null``; strings JSON-escaped, non-ASCII as UTF-8 (only ``"``, ``\\`` and the
  control characters U+0000..U+001F are escaped: ``\\b \\t \\n \\f \\r``, else ``\\u00xx``);
- integers in decimal; floats as the shortest text that reads back to the same double
  (Python's ``repr``: ``4.0``, ``0.1``, ``1e+16``; ``NaN``, ``Infinity``, ``-Infinity``);
- times as strings ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, microseconds);
- ``tres`` as a list of ``{"name": str, "count": float}`` objects, ``nodes`` as a list of
  strings, in stored order.

``record_sha256`` = SHA-256 (hex) of the line's UTF-8 bytes (no newline). A batch's
``records_sha256`` = SHA-256 of the concatenation of ``record_sha256 + "\\n"`` over the run
versions the batch stored, ordered by ``run_key`` then ``record_sha256`` (a batch may store
more than one content of a run: an out-of-order delivery goes to history), in code point order
(the same as UTF-8 byte order). A batch that stored no run version has the hash of the empty
string.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import polars as pl
import polars_hash as plh

from models.audit.chain import format_time

Kind = Literal["str", "int", "float", "time", "tres", "strs"]

# Version 1 of the record format: the run columns as they were when the audit log was added.
# Frozen: a column added to runs later is not hashed until a new format version says so.
RECORD_FORMAT = 1
RECORD_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("run_key", "str"),
    ("scheduler", "str"),
    ("cluster", "str"),
    ("job_id", "str"),
    ("job_id_raw", "str"),
    ("array_job_id", "int"),
    ("array_task_id", "str"),
    ("het_job_id", "int"),
    ("het_offset", "int"),
    ("user", "str"),
    ("account", "str"),
    ("partition", "str"),
    ("qos", "str"),
    ("state", "str"),
    ("state_by_uid", "int"),
    ("exit_code", "str"),
    ("submit_at", "time"),
    ("eligible_at", "time"),
    ("start_at", "time"),
    ("end_at", "time"),
    ("elapsed_s", "int"),
    ("timelimit_s", "int"),
    ("alloc_nodes", "int"),
    ("alloc_cpus", "int"),
    ("alloc_mem_mb", "float"),
    ("alloc_gpus", "int"),
    ("gpu_type", "str"),
    ("tres", "tres"),
    ("billing", "float"),
    ("nodelist", "str"),
    ("nodes", "strs"),
    ("reservation", "str"),
    ("job_name", "str"),
    ("source", "str"),
    ("source_line", "int"),
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _value(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "time":
        return format_time(value)
    if kind == "float":
        return float(value)
    if kind == "tres":
        return [{"name": item["name"], "count": _value("float", item["count"])} for item in value]
    if kind == "strs":
        return list(value)
    return value


def record_line(run: Mapping[str, Any]) -> str:
    """Return the record line of one run version (``run`` maps column name to value)."""
    obj = {name: _value(kind, run.get(name)) for name, kind in RECORD_COLUMNS}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def record_sha256(line: str) -> str:
    """Return the SHA-256 (hex) of a record line."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def records_sha256(hashes_by_key: Iterable[tuple[str, str]]) -> str:
    """Return a batch's records hash from (run_key, record_sha256) pairs, in any order."""
    digest = hashlib.sha256()
    for _, record_hash in sorted(hashes_by_key):
        digest.update(f"{record_hash}\n".encode())
    return digest.hexdigest()


def parse_time(text: str) -> datetime:
    """Return the datetime of a time written in a record line (the inverse of ``format_time``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def with_record_sha256(lines: pl.DataFrame) -> pl.DataFrame:
    """Return ``lines`` (with a ``record_line`` column) with ``record_sha256`` in its place:
    SHA-256 (hex) of each line's UTF-8 bytes, as ``record_sha256`` computes it, on all cores
    and with the CPU's SHA instructions where it has them (polars-hash)."""
    return lines.with_columns(plh.col("record_line").chash.sha2_256().alias("record_sha256")).drop(
        "record_line"
    )


def records_sha256_frame(hashes: pl.DataFrame) -> str:
    """Return a batch's records hash (``records_sha256``) from a frame of ``run_key`` and
    ``record_sha256``, in any order."""
    ordered = hashes.sort("run_key", "record_sha256")["record_sha256"]
    text = ordered.str.join("\n").item() + "\n" if ordered.len() else ""
    return hashlib.sha256(text.encode()).hexdigest()
