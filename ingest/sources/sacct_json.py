"""``sacct --json`` (and slurmrestd ``/slurmdb/v0.0.NN/jobs``) output turned into runs and steps.

Two layouts are read, detected from ``meta.plugin``:

- ``openapi/dbv0.0.37`` and ``openapi/dbv0.0.38`` (Slurm 21.08 / 22.05): times are epoch
  integers, ``state.current`` is a string, ``exit_code.return_code`` an integer.
- ``data_parser/v0.0.39`` to ``v0.0.44`` (Slurm 23.02 and later): numbers may be
  ``{"set": bool, "infinite": bool, "number": N}`` objects, ``state.current`` is a list of flags
  (the base state first), ``exit_code.return_code`` a number object.

Each value is read leniently (an integer or a number object wherever a number is expected), so a
site between versions does not lose records; the layout decides only whether the document is
accepted at all. A document of any other layout raises ParseError naming what it holds.

Every job becomes a run and its ``steps[]`` become steps. A job that cannot be read is
quarantined with ``line_no`` = its 1-based index in the ``jobs`` array (JSON has no useful line
numbers), ``field`` = the JSON path of the offending value (``time.submission``,
``steps[2].step.id``), and ``raw`` = the job as compact JSON. A bad step is quarantined alone;
its job still lands.

``LogBatch``, ``RecordError`` and the value readers it uses come from ``records``, which the
other record-based parsers (PBS, LSF, JSON Lines) share.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ingest.sources.records import (
    LogBatch,
    RecordError,
    batch_from_records,
    check_bounds,
    count_or_none,
    epoch_time,
    expanded_nodes,
    tres_summary,
)
from ingest.sources.sacct import BASE_STATES, SacctPull, sacct_command
from models.errors import ParseError

LEGACY_PLUGINS = ("openapi/dbv0.0.37", "openapi/dbv0.0.38")
DATA_PARSER_VERSIONS = range(39, 45)  # data_parser/v0.0.39 .. v0.0.44
_DATA_PARSER = re.compile(r"data_parser/v0\.0\.(\d+)")
_MAX_NUMBER = 2**53
_RAW_LIMIT = 20_000  # characters of a refused job kept in quarantine.raw


def _job_number(job: Any, path: str) -> int | None:
    """Return the job id at ``path`` (an array or het leader), None when unset or 0.

    RecordError naming ``path`` for a value that is not a whole positive number.
    """
    value = _number(job, path)
    if not value:
        return None
    if value < 0 or value != int(value) or value > 2**53:
        raise RecordError(path, f"expected a positive job id, found {value!r}")
    return int(value)


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def sacct_json_command(source: SacctPull, *, start: datetime, end: datetime) -> list[str]:
    """Return the ``sacct --json`` argv of the text pull ``sacct_command`` builds: the same
    window, states, users, duplicates and cluster, with ``--json`` for the output flags."""
    text = sacct_command(source, start=start, end=end)
    output = ("--parsable2", "--noconvert")
    return [a for a in text if a not in output and not a.startswith("--format=")] + ["--json"]


def json_layout(document: Any, source: str) -> str:
    """Return the layout of a ``sacct --json`` document: the plugin or data_parser it names."""
    if not isinstance(document, dict):
        raise ParseError(f"{source}: expected a JSON object, found {type(document).__name__}")
    meta = document.get("meta")
    plugin = meta.get("plugin") if isinstance(meta, dict) else None
    if isinstance(plugin, dict):
        parser = plugin.get("data_parser")
        match = _DATA_PARSER.fullmatch(parser) if isinstance(parser, str) else None
        if match and int(match.group(1)) in DATA_PARSER_VERSIONS:
            return match.group(0)
        for key in ("type", "name"):
            value = plugin.get(key)
            if isinstance(value, str):
                for legacy in LEGACY_PLUGINS:
                    if value == legacy or value.endswith(legacy.rsplit("/", 1)[1]):
                        return legacy
    raise ParseError(
        f"{source}: unknown sacct --json layout: meta.plugin = {json.dumps(plugin)[:300]}, "
        f"top-level keys {sorted(document)[:20]} (expected meta.plugin.type "
        f"{' or '.join(LEGACY_PLUGINS)}, or meta.plugin.data_parser data_parser/v0.0.39 to "
        f"v0.0.{DATA_PARSER_VERSIONS[-1]})"
    )


def parse_sacct_json(text: str, *, source: str, cluster: str | None = None) -> LogBatch:
    """Return the runs, steps and quarantined jobs of ``sacct --json`` output.

    ``cluster`` replaces each job's ``cluster`` (the name fairledger uses). Keys are built as
    ``parse_sacct`` builds them: run_key ``cluster/job_id/submission epoch s`` (the job id being
    Slurm's raw id, unique per array task), step_key ``cluster/job_id.step/submission``.
    ParseError when the text is not JSON, has no ``jobs`` list, is of an unknown layout, or
    reports ``errors`` (a partial answer must not move a watermark).
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{source}: not JSON: {exc}") from exc
    layout = json_layout(document, source)
    errors = [e for e in document.get("errors") or [] if not _nothing_found(e, document)]
    if errors:
        raise ParseError(f"{source}: the source reported errors: {json.dumps(errors)[:500]}")
    jobs = document.get("jobs")
    if not isinstance(jobs, list):
        raise ParseError(f"{source}: expected a 'jobs' list, found {type(jobs).__name__}")
    runs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for index, job in enumerate(jobs, start=1):
        try:
            run = _run(job, cluster, legacy=layout in LEGACY_PLUGINS)
            check_bounds(run)
        except RecordError as exc:
            refused.append(_refused(source, index, job, exc))
            continue
        run.update(source=source, source_line=index)
        runs.append(run)
        for n, step in enumerate(job.get("steps") or []):
            try:
                row = _step(step, run, legacy=layout in LEGACY_PLUGINS)
            except RecordError as exc:
                exc = RecordError(f"steps[{n}].{exc.field}", exc.reason)
                refused.append(_refused(source, index, step, exc, record_id=run["job_id"]))
                continue
            row.update(source=source, source_line=index)
            steps.append(row)
    return batch_from_records(runs, steps, refused, lines_read=len(jobs))


# Slurm 22.05 answers a window without jobs with an empty ``jobs`` list *and* this error.
NOTHING_FOUND = 9003


def _nothing_found(error: Any, document: Mapping[str, Any]) -> bool:
    """Return whether ``error`` is 22.05's "Nothing found" beside an empty ``jobs`` list (an
    empty window, not a failure)."""
    return (
        isinstance(error, dict)
        and error.get("error_number") == NOTHING_FOUND
        and document.get("jobs") == []
    )


def _refused(
    source: str, index: int, record: Any, exc: RecordError, *, record_id: str | None = None
) -> dict[str, Any]:
    if record_id is None and isinstance(record, dict) and "job_id" in record:
        record_id = str(record["job_id"])
    raw = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    return {
        "source": source,
        "line_no": index,
        "record_id": record_id,
        "field": exc.field,
        "reason": exc.reason,
        "raw": raw if len(raw) <= _RAW_LIMIT else raw[:_RAW_LIMIT] + "…",
    }


def _get(record: Any, path: str) -> Any:
    """Return the value at dotted ``path`` in nested dicts, None when absent."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _number(record: Any, path: str) -> int | float | None:
    """Return the number at ``path``: an integer, or a ``{set, infinite, number}`` object
    (unset or infinite give None)."""
    value = _get(record, path)
    if isinstance(value, dict) and "number" in value:
        if value.get("set") is False or value.get("infinite") is True:
            return None
        value = value["number"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(path, f"expected a number, found {json.dumps(value)[:100]}")
    if not abs(value) < _MAX_NUMBER:  # also refuses the NaN and Infinity json.loads accepts
        raise RecordError(path, f"expected a number below 2^53, found {value}")
    return value


def _text(record: Any, path: str) -> str | None:
    value = _get(record, path)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(path, f"expected a string, found {json.dumps(value)[:100]}")
    return value


def _required_text(record: Any, path: str) -> str:
    value = _text(record, path)
    if value is None:
        raise RecordError(path, "missing required value")
    return value


def _state(record: Any, path: str) -> str:
    value = _get(record, path)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        raise RecordError(path, "missing required value")
    if not isinstance(value, str) or value not in BASE_STATES:
        raise RecordError(path, f"unknown state {json.dumps(value)[:100]}")
    return value


# States in which a job or step ended with a non-zero code or a signal.
_FAILURE_STATES = frozenset({"FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"})


def _exit_code(record: Any, path: str, *, state: str, legacy: bool) -> str | None:
    """Return ``return_code:signal`` as sacct prints it, None when unknown.

    Slurm 22.05.8's dbv0.0.38 writes ``{"status": "SUCCESS", "return_code": 0}`` for a job
    and a step that exited 1 (sacct's text: ``1:0``, state FAILED): in the legacy layouts a
    code that claims success in a failure state is unknown, not 0:0. Signals (``SIGNALED``,
    ``signal.signal_id``) and the codes of other states match the text.
    """
    if legacy and state in _FAILURE_STATES and _get(record, f"{path}.status") == "SUCCESS":
        return None
    code = _number(record, f"{path}.return_code")
    signal = _number(record, f"{path}.signal.id")
    if signal is None:
        signal = _number(record, f"{path}.signal.signal_id")
    if code is None and signal is None:
        return None
    return f"{int(code or 0)}:{int(signal or 0)}"


def _tres(record: Any, path: str) -> list[dict[str, Any]]:
    """Return TRES items ``{name, count}`` from Slurm's ``[{type, name, id, count}]`` list."""
    items = _get(record, path)
    if items is None:
        return []
    if not isinstance(items, list):
        raise RecordError(path, f"expected a list of TRES, found {json.dumps(items)[:100]}")
    tres: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        kind = item.get("type") if isinstance(item, dict) else None
        if isinstance(item, dict) and kind and item.get("count", 0) is None:
            continue  # 22.05 lists a TRES it has no value for (energy) with "count": null
        count = _number(item, "count") if isinstance(item, dict) else None
        if not isinstance(kind, str) or not kind or count is None:
            raise RecordError(
                f"{path}[{i}]", f"expected {{type, name, count}}, found {json.dumps(item)[:100]}"
            )
        name = item.get("name") or ""
        tres.append({"name": f"{kind}/{name}".lower() if name else kind.lower(), "count": count})
    return sorted(tres, key=lambda item: str(item["name"]))  # sacct's text order: by name


def _run(job: Any, cluster: str | None, *, legacy: bool = False) -> dict[str, Any]:
    if not isinstance(job, dict):
        raise RecordError("", f"expected a job object, found {json.dumps(job)[:100]}")
    job_id = _number(job, "job_id")
    if job_id is None or not isinstance(job_id, int) or job_id <= 0:
        raise RecordError("job_id", f"expected a positive job id, found {job.get('job_id')!r}")
    cluster_name = cluster or _required_text(job, "cluster")
    submit = _number(job, "time.submission")
    if not submit:
        raise RecordError("time.submission", "missing required value")
    array_job = _job_number(job, "array.job_id")
    task = _number(job, "array.task_id")
    array_task = str(int(task)) if array_job and task is not None else None
    if array_job and array_task is None and (pending := _text(job, "array.task")):
        array_task = pending if pending.startswith("[") else f"[{pending}]"
    het_job = _job_number(job, "het.job_id")
    het_offset = (
        count_or_none(_number(job, "het.job_offset"), "het.job_offset") if het_job else None
    )
    if array_task is not None:
        shown = f"{array_job}_{array_task}"
    elif het_offset is not None:
        shown = f"{het_job}+{int(het_offset)}"
    else:
        shown = str(job_id)
    start, end = _number(job, "time.start"), _number(job, "time.end")
    elapsed = _number(job, "time.elapsed")
    if elapsed is None and start and end:
        elapsed = end - start
    limit = _number(job, "time.limit")
    tres = _tres(job, "tres.allocated")
    summary = tres_summary(tres, "tres.allocated")
    # A job never allocated has no allocated TRES and allocation_nodes 0; sacct's NNodes (and
    # NCPUS) then show what it asked for, and so do we.
    requested = tres_summary(_tres(job, "tres.requested"), "tres.requested")
    nodelist = _text(job, "nodes")
    state = _state(job, "state.current")
    reservation = _get(job, "reservation.name")
    account = _text(job, "account") or _text(job, "association.account")
    if account is None:
        raise RecordError("account", "missing required value")
    if not isinstance(job.get("steps") or [], list):
        raise RecordError("steps", f"expected a list, found {json.dumps(job['steps'])[:100]}")
    return {
        "run_key": f"{cluster_name}/{job_id}/{int(submit)}",
        "scheduler": "slurm",
        "cluster": cluster_name,
        "job_id": shown,
        "job_id_raw": str(job_id),
        "array_job_id": array_job if array_task is not None else None,
        "array_task_id": array_task,
        "het_job_id": het_job if het_offset is not None else None,
        "het_offset": int(het_offset) if het_offset is not None else None,
        "user": _text(job, "user") or _required_text(job, "association.user"),
        "account": account,
        "partition": _text(job, "partition"),
        "qos": _text(job, "qos"),
        "state": state,
        "exit_code": _exit_code(job, "exit_code", state=state, legacy=legacy),
        "submit_at": epoch_time(submit, "time.submission"),
        "eligible_at": epoch_time(_number(job, "time.eligible"), "time.eligible"),
        "start_at": epoch_time(start, "time.start"),
        "end_at": epoch_time(end, "time.end"),
        "elapsed_s": _int_or_none(elapsed),
        "timelimit_s": int(limit) * 60 if limit else None,
        "alloc_nodes": summary["_nodes"]
        or count_or_none(_number(job, "allocation_nodes"), "allocation_nodes")
        or requested["_nodes"],
        "alloc_cpus": summary["alloc_cpus"]
        or count_or_none(_number(job, "required.CPUs"), "required.CPUs"),
        "alloc_mem_mb": summary["alloc_mem_mb"],
        "alloc_gpus": summary["alloc_gpus"],
        "gpu_type": summary["gpu_type"],
        "tres": tres,
        "billing": summary["billing"],
        "nodelist": nodelist,
        "nodes": expanded_nodes(nodelist, "nodes"),
        # dbv0.0.38 prints an unset reservation name as 0.
        "reservation": reservation if isinstance(reservation, str) and reservation else None,
        "job_name": _text(job, "name"),
    }


def _step(step: Any, run: Mapping[str, Any], *, legacy: bool = False) -> dict[str, Any]:
    if not isinstance(step, dict):
        raise RecordError("", f"expected a step object, found {json.dumps(step)[:100]}")
    step_id = _text(step, "step.id")
    if step_id is None:
        # dbv0.0.37 and some 0.0.38 builds give the step id only as a name.
        step_id = _text(step, "step.name")
    if step_id is None:
        raise RecordError("step.id", "missing required value")
    step_id = step_id.rsplit(".", 1)[-1] if "." in step_id else step_id
    start, end = _number(step, "time.start"), _number(step, "time.end")
    elapsed = _number(step, "time.elapsed")
    if elapsed is None and start and end:
        elapsed = end - start
    tres = _tres(step, "tres.allocated")
    summary = tres_summary(tres, "tres.allocated")
    nodelist = _text(step, "nodes.range")
    expanded_nodes(nodelist, "nodes.range")
    submit = run["run_key"].rsplit("/", 1)[1]
    return {
        "step_key": f"{run['cluster']}/{run['job_id_raw']}.{step_id}/{submit}",
        "run_key": run["run_key"],
        "cluster": run["cluster"],
        "job_id": f"{run['job_id']}.{step_id}",
        "step_id": step_id,
        "state": (state := _state(step, "state")),
        "exit_code": _exit_code(step, "exit_code", state=state, legacy=legacy),
        "start_at": epoch_time(start, "time.start"),
        "end_at": epoch_time(end, "time.end"),
        "elapsed_s": _int_or_none(elapsed),
        "alloc_nodes": summary["_nodes"]
        or count_or_none(_number(step, "nodes.count"), "nodes.count"),
        "alloc_cpus": summary["alloc_cpus"],
        "tres": tres,
        "nodelist": nodelist,
        "job_name": _text(step, "step.name"),
    }
