"""fairledger's scheduler-neutral JSON Lines record, for sources that push (docs/ingest-jsonl.md).

One JSON object per line describes one run of a job on any scheduler (Flux, Kubernetes, a site
script). ``JobRecord`` is the schema; ``parse_jobs_jsonl`` turns a text of such lines into runs.
A line that is not JSON, not an object, or fails the schema is quarantined with its line number,
the first offending field (a dotted path, as pydantic reports it) and pydantic's reason; the
other lines land.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ingest.sources.records import (
    LogBatch,
    RecordError,
    expanded_nodes,
    parse_lines,
    tres_summary,
)
from ingest.sources.sacct import BASE_STATES

# A key component: no "/" (run_key separator) and no whitespace.
_KEY_PART = r"^[^/\s]+$"
KeyPart = Annotated[str, Field(min_length=1, max_length=200, pattern=_KEY_PART)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]


class JobRecord(BaseModel):
    """One run of a job, as a pushing source describes it.

    Times are ISO 8601 with a time zone (``2025-01-31T12:00:00Z``) or epoch seconds;
    ``start_at``/``end_at`` are null while a run has not started/ended. Unknown keys are refused
    so that a typo does not silently drop a value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheduler: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    cluster: KeyPart
    job_id: KeyPart
    user: Name
    account: Name
    submit_at: AwareDatetime
    start_at: AwareDatetime | None
    end_at: AwareDatetime | None
    state: str
    run_id: KeyPart | None = None
    partition: Name | None = None
    qos: Name | None = None
    exit_code: str | None = None
    eligible_at: AwareDatetime | None = None
    timelimit_s: Count | None = None
    alloc_nodes: Count | None = None
    alloc_cpus: Count | None = None
    alloc_mem_mb: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    alloc_gpus: Count | None = None
    gpu_type: Name | None = None
    tres: dict[Name, Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None
    billing: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    nodelist: str | None = None
    reservation: Name | None = None
    job_name: str | None = None
    array_job_id: Count | None = None
    array_task_id: Name | None = None
    het_job_id: Count | None = None
    het_offset: Count | None = None

    @field_validator("submit_at", "start_at", "end_at", "eligible_at", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected an ISO 8601 time with a time zone, or epoch seconds")
        return value

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str) -> str:
        if value not in BASE_STATES:
            raise ValueError(f"unknown state {value!r}; expected one of {sorted(BASE_STATES)}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> JobRecord:
        if self.start_at and self.end_at and self.end_at < self.start_at:
            raise ValueError("end_at is before start_at")
        if self.end_at and self.state in ("RUNNING", "PENDING"):
            raise ValueError(f"a {self.state} run has no end_at")
        return self

    def run_key(self) -> str:
        """Return ``cluster/job_id/submit epoch s``, with ``/run_id`` appended when given."""
        key = f"{self.cluster}/{self.job_id}/{int(self.submit_at.timestamp())}"
        return f"{key}/{self.run_id}" if self.run_id else key


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC)


def parse_jobs_jsonl(text: str, *, source: str) -> LogBatch:
    """Return the runs and quarantined lines of a JSON Lines text of ``JobRecord`` objects.

    Blank lines are skipped; ``lines_read`` counts the others. A key seen twice keeps its last
    line (a later line is a newer revision).
    """
    return parse_lines(text, source=source, read=_run)


def _run(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise RecordError("", f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise RecordError("", f"expected a JSON object, found {type(value).__name__}")
    job_id = value.get("job_id")
    record_id = None if job_id is None else str(job_id)
    try:
        record = JobRecord.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        more = exc.error_count() - 1
        reason = first["msg"] + (f" (and {more} more error{'s' * (more > 1)})" if more else "")
        raise RecordError(where, reason, record_id) from exc
    try:
        nodes = expanded_nodes(record.nodelist, "nodelist")
    except RecordError as exc:
        exc.record_id = record_id
        raise
    tres = [{"name": name.lower(), "count": count} for name, count in (record.tres or {}).items()]
    summary = tres_summary(tres, "tres")
    start, end = _utc(record.start_at), _utc(record.end_at)
    return {
        "run_key": record.run_key(),
        "scheduler": record.scheduler,
        "cluster": record.cluster,
        "job_id": record.job_id,
        "job_id_raw": record.job_id,
        "array_job_id": record.array_job_id,
        "array_task_id": record.array_task_id,
        "het_job_id": record.het_job_id,
        "het_offset": record.het_offset,
        "user": record.user,
        "account": record.account,
        "partition": record.partition,
        "qos": record.qos,
        "state": record.state,
        "exit_code": record.exit_code,
        "submit_at": _utc(record.submit_at),
        "eligible_at": _utc(record.eligible_at),
        "start_at": start,
        "end_at": end,
        "elapsed_s": int((end - start).total_seconds()) if start and end else None,
        "timelimit_s": record.timelimit_s,
        "alloc_nodes": record.alloc_nodes if record.alloc_nodes is not None else summary["_nodes"],
        "alloc_cpus": record.alloc_cpus if record.alloc_cpus is not None else summary["alloc_cpus"],
        "alloc_mem_mb": record.alloc_mem_mb
        if record.alloc_mem_mb is not None
        else summary["alloc_mem_mb"],
        "alloc_gpus": record.alloc_gpus if record.alloc_gpus is not None else summary["alloc_gpus"],
        "gpu_type": record.gpu_type or summary["gpu_type"],
        "tres": tres,
        "billing": record.billing if record.billing is not None else summary["billing"],
        "nodelist": record.nodelist,
        "nodes": nodes,
        "reservation": record.reservation,
        "job_name": record.job_name,
    }
