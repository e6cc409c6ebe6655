"""What the record-based parsers share: their batch, their per-record error and value readers.

The record-based parsers (``sacct_json``, ``pbs``, ``lsf``, ``jobs_jsonl``) read one record
(a line or a JSON job) at a time. A record that cannot be read raises ``RecordError`` and is
quarantined; the rest become a ``LogBatch`` (a ``SacctBatch`` that also counts the records
skipped on purpose) through ``batch_from_records``, or ``parse_lines`` for a line-per-record
text. ``epoch_time``, ``count_or_none``, ``tres_summary`` and ``expanded_nodes`` convert one
value, raising ``RecordError`` naming the field; ``check_bounds`` refuses a run whose sizes
are beyond ``models.frames.RUN_BOUNDS`` (``parse_lines`` applies it to every run). All pure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from ingest.sources.sacct import SacctBatch
from models import frames
from models.frames import BOUNDS_NOTE, MAX_COUNT, MAX_TRES_COUNT, RUN_BOUNDS
from models.hostlist import EMPTY_HOSTLISTS, expand_hostlist


@dataclass(frozen=True)
class LogBatch(SacctBatch):
    """A SacctBatch from a record-based source, with the records it skipped on purpose.

    ``skipped`` counts records of other types (PBS ``Q``/``S``/``D``..., LSF events other than
    ``JOB_FINISH``) by type; they are not errors and are not quarantined.
    """

    skipped: Mapping[str, int] = field(default_factory=dict)


class RecordError(ValueError):
    """One record cannot be read; ``field`` names the value, ``record_id`` the job if known."""

    def __init__(self, field: str, reason: str, record_id: str | None = None) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.record_id = record_id


def parse_lines(text: str, *, source: str, read: Callable[[str], dict[str, Any] | str]) -> LogBatch:
    """Return the batch of a line-per-record text: ``read`` turns one non-blank line into a run
    row, or into the name of a record type skipped on purpose, or raises RecordError (the line
    is quarantined with its 1-based number)."""
    runs: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    lines_read = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        lines_read += 1
        try:
            result = read(line)
        except RecordError as exc:
            refused.append({"source": source, "line_no": line_no, "record_id": exc.record_id,
                            "field": exc.field, "reason": exc.reason, "raw": line})  # fmt: skip
            continue
        if isinstance(result, str):
            skipped[result] += 1
            continue
        try:
            check_bounds(result)
        except RecordError as exc:
            refused.append({"source": source, "line_no": line_no, "record_id": result.get("job_id"),
                            "field": exc.field, "reason": exc.reason, "raw": line})  # fmt: skip
            continue
        result.update(source=source, source_line=line_no)
        runs.append(result)
    return batch_from_records(runs, [], refused, lines_read=lines_read, skipped=dict(skipped))


def batch_from_records(
    runs: Iterable[Mapping[str, Any]],
    steps: Iterable[Mapping[str, Any]],
    quarantine: Iterable[Mapping[str, Any]],
    *,
    lines_read: int,
    skipped: Mapping[str, int] | None = None,
) -> LogBatch:
    """Return a LogBatch from row dicts keyed by ``frames`` column names.

    A run (step) key seen twice keeps its last row, as ``parse_sacct`` does.
    """
    run_frame = _frame(list(runs), frames.RUNS)
    step_frame = _frame(list(steps), frames.STEPS)
    return LogBatch(
        runs=run_frame.unique("run_key", keep="last", maintain_order=True),
        steps=step_frame.unique("step_key", keep="last", maintain_order=True),
        quarantine=_frame(list(quarantine), frames.QUARANTINE),
        lines_read=lines_read,
        skipped=dict(skipped or {}),
    )


def _frame(rows: list[Mapping[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not rows:
        return frames.empty(schema)
    columns = {name: [row.get(name) for row in rows] for name in schema}
    return frames.conform(pl.DataFrame(columns, schema=schema), schema)


# Epoch seconds accepted as times: up to the year 2200; anything larger is a corrupt value.
MAX_EPOCH_S = 7_258_118_400


def epoch_time(value: int | float | None, field: str = "") -> datetime | None:
    """Return the UTC time of epoch seconds; 0 and None (Slurm's "unknown") give None.

    RecordError (naming ``field``) for a negative time or one after the year 2200.
    """
    if value is None or value == 0:
        return None
    if not 0 < value < MAX_EPOCH_S:
        raise RecordError(field, f"expected epoch seconds, found {value}")
    return datetime.fromtimestamp(value, UTC)


def tres_summary(tres: list[dict[str, Any]], field: str = "tres") -> dict[str, Any]:
    """Return the RUNS columns derived from TRES items ``{name, count}`` (names lower case);
    RecordError naming ``field`` when a cpu, node or GPU count is not a count."""
    counts = {item["name"]: item["count"] for item in tres}
    typed = sorted(n for n in counts if n.startswith("gres/gpu:"))
    gpus = counts.get("gres/gpu")
    if gpus is None and typed:
        gpus = sum(counts[n] for n in typed)
    return {
        "alloc_cpus": count_or_none(counts.get("cpu"), field),
        "alloc_mem_mb": counts.get("mem"),
        "alloc_gpus": count_or_none(gpus, field) or 0,
        "gpu_type": typed[0].removeprefix("gres/gpu:") if len(typed) == 1 else None,
        "billing": counts.get("billing"),
        "_nodes": count_or_none(counts.get("node"), field),
    }


def expanded_nodes(nodelist: str | None, field: str) -> list[str]:
    """Return the hosts of a Slurm hostlist; RecordError when it cannot be expanded."""
    if nodelist is None or nodelist.strip() in EMPTY_HOSTLISTS:
        return []
    try:
        return expand_hostlist(nodelist)
    except ValueError as exc:
        raise RecordError(field, str(exc)) from exc


def count_or_none(value: float | None, field: str) -> int | None:
    """Return ``value`` as a count (0 to 2^31 - 1); RecordError naming ``field`` otherwise."""
    if value is None:
        return None
    if not 0 <= value <= MAX_COUNT:
        raise RecordError(field, f"expected a count from 0 to {MAX_COUNT}, found {value}")
    return int(value)


def _beyond(value: float, bound: int) -> bool:
    return not (math.isfinite(value) and abs(value) <= bound)


def check_bounds(run: Mapping[str, Any]) -> None:
    """Return when a run row's sizes are within ``frames.RUN_BOUNDS`` and each TRES count within
    ``MAX_TRES_COUNT``; RecordError naming the first that is not (docs/ingest.md#bounds)."""
    for name, bound in RUN_BOUNDS.items():
        value = run.get(name)
        if value is not None and _beyond(value, bound):
            raise RecordError(
                name, f"{name} {value} is beyond the bound of {bound} ({BOUNDS_NOTE})"
            )
    for item in run.get("tres") or ():
        if _beyond(item["count"], MAX_TRES_COUNT):
            raise RecordError(
                f"tres.{item['name']}",
                f"TRES {item['name']} {item['count']} is beyond the bound of {MAX_TRES_COUNT}"
                f" ({BOUNDS_NOTE})",
            )
