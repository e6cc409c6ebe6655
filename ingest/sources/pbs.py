"""PBS Pro / OpenPBS / Torque accounting logs (``server_priv/accounting/YYYYMMDD``) as runs.

A line is ``MM/DD/YYYY HH:MM:SS;TYPE;JOB_ID;key=value key=value ...``. Only ``E`` (job ended)
records describe a finished run; the others (``Q`` queued, ``S`` started, ``D`` deleted,
``A`` aborted, ``R`` rerun, ``L`` licence, ...) are skipped and counted in ``LogBatch.skipped``.

Mapping of an ``E`` record (see docs/sources.md):

- job id: the part before the first ``.`` (``6.edge.ccr.buffalo.edu`` → ``6``); a PBS Pro
  array subjob ``123[4]`` gives array_job_id 123 and array_task_id ``4``.
- account: ``account=``, else ``project=`` (unless PBS Pro's ``_pbs_project_default``), else
  ``group=``. partition: ``queue=``. submit/eligible/start/end: ``ctime``/``etime``/``start``/
  ``end`` (epoch seconds).
- nodes: the distinct hosts of ``exec_host`` (``n1/0*13+n2/0-3``), in order; alloc_cpus: the
  slots in ``exec_host`` (``/7`` one, ``/0-3`` four, ``/0*13`` thirteen), else
  ``resources_used.ncpus``, else ``Resource_List.ncpus``; alloc_nodes: ``Resource_List.nodect``,
  else the number of hosts.
- alloc_mem_mb: ``Resource_List.mem`` (``b``/``kb``/``mb``/``gb``/``tb``, ``w`` words of 8 bytes);
  alloc_gpus: ``Resource_List.ngpus`` (PBS Pro), else ``gpus=N`` in Torque's
  ``Resource_List.nodes`` (or ``nodect``, as some sites write it). ``Resource_List.gpu``, a
  site-defined resource, is ignored, as Open XDMoD does.
- elapsed_s: end − start, else ``resources_used.walltime``; timelimit_s:
  ``Resource_List.walltime``.
- state: ``Exit_status`` 0 → COMPLETED, anything else → FAILED; exit_code is its text.

A record without a job id, user, ``ctime`` or ``Exit_status``, or with a value that does not
convert, is quarantined with its line number, the PBS attribute and the reason.
"""

from __future__ import annotations

import re
from typing import Any

from ingest.sources.records import (
    LogBatch,
    RecordError,
    count_or_none,
    epoch_time,
    parse_lines,
)

_RECORD = re.compile(r"^(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d);([A-Za-z]);([^;]*);(.*)$")
_JOB_ID = re.compile(r"^(\d{1,15})(?:\[(\d{0,9})\])?$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(b|w)?$", re.IGNORECASE)
_MB = {"": 1 / 1024**2, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2, "p": 1024.0**3}
_DURATION = re.compile(r"^(?:(?:(\d{1,9}):)?(\d{1,9}):)?(\d{1,9})$")
_SLOTS = re.compile(r"^(\d+)(?:-(\d+)|\*(\d+))?$")
_NODES_GPUS = re.compile(r"(?:^|:)gpus?=(\d+)")
_DEFAULT_PROJECT = "_pbs_project_default"


def parse_pbs_accounting(text: str, *, source: str, cluster: str) -> LogBatch:
    """Return the runs of the ``E`` records of a PBS/Torque accounting log, and the records
    refused (quarantine) and skipped (other record types, counted by type)."""

    def read(line: str) -> dict[str, Any] | str:
        match = _RECORD.match(line)
        if match is None:
            raise RecordError(
                "", "not a PBS accounting record (MM/DD/YYYY HH:MM:SS;TYPE;ID;attributes)"
            )
        _, kind, full_id, attributes = match.groups()
        if kind != "E":
            return kind
        job_id = full_id.split(".", 1)[0]
        try:
            return _run(job_id, _attributes(attributes), cluster)
        except RecordError as exc:
            exc.record_id = job_id or None
            raise

    return parse_lines(text, source=source, read=read)


def _attributes(text: str) -> dict[str, str]:
    """Return ``key=value`` pairs; a piece without ``=`` continues the previous value (an
    unquoted value with a space), and quotes around a value are dropped."""
    attributes: dict[str, str] = {}
    last: str | None = None
    for piece in text.split(" "):
        key, sep, value = piece.partition("=")
        if sep and key and " " not in key:
            attributes[key] = value
            last = key
        elif last is not None:
            attributes[last] += " " + piece
    return {k: v[1:-1] if len(v) > 1 and v[0] == v[-1] == '"' else v for k, v in attributes.items()}


def _epoch(attributes: dict[str, str], key: str, *, required: bool = False) -> int | None:
    value = attributes.get(key, "")
    if value == "":
        if required:
            raise RecordError(key, "missing required value")
        return None
    if not value.isdigit():
        raise RecordError(key, f"expected epoch seconds, found '{value}'")
    return int(value)


def _duration_s(attributes: dict[str, str], key: str) -> int | None:
    value = attributes.get(key, "")
    if value == "":
        return None
    match = _DURATION.match(value)
    if match is None:
        raise RecordError(key, f"expected [[HH:]MM:]SS, found '{value}'")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _size_mb(attributes: dict[str, str], key: str) -> float | None:
    value = attributes.get(key, "")
    if value == "":
        return None
    match = _SIZE.match(value.strip())
    if match is None:
        raise RecordError(key, f"expected a size like 1993mb or 15240kb, found '{value}'")
    number, prefix, unit = match.groups()
    size = float(number) * _MB[prefix.lower()]
    return size * 8 if (unit or "").lower() == "w" else size


def _count(attributes: dict[str, str], key: str) -> int | None:
    value = attributes.get(key, "")
    if value == "":
        return None
    if not value.isdigit():
        raise RecordError(key, f"expected an integer, found '{value}'")
    return count_or_none(int(value), key)


def _exec_hosts(attributes: dict[str, str]) -> tuple[list[str], int]:
    """Return the distinct hosts of ``exec_host`` in order, and the CPU slots it lists."""
    value = attributes.get("exec_host", "")
    hosts: list[str] = []
    slots = 0
    for chunk in value.split("+") if value else []:
        host, sep, spec = chunk.rpartition("/")
        match = _SLOTS.match(spec) if sep else None
        if not host or match is None:
            raise RecordError("exec_host", f"expected host/N[-M|*C] items, found '{chunk}'")
        lo, hi, cpus = match.groups()
        if hi and int(hi) < int(lo):
            raise RecordError("exec_host", f"descending slot range in '{chunk}'")
        slots += int(cpus) if cpus else (int(hi) - int(lo) + 1 if hi else 1)
        if host not in hosts:
            hosts.append(host)
    return hosts, slots


def _run(job_id: str, a: dict[str, str], cluster: str) -> dict[str, Any]:
    match = _JOB_ID.match(job_id)
    if match is None:
        raise RecordError("", f"expected a job id like 123 or 123[4], found '{job_id}'")
    base, task = match.groups()
    user = a.get("user") or None
    if user is None:
        raise RecordError("user", "missing required value")
    project = a.get("project") if a.get("project") != _DEFAULT_PROJECT else None
    account = a.get("account") or project or a.get("group")
    if not account:
        raise RecordError("account", "missing required value (account=, project= or group=)")
    exit_text = a.get("Exit_status", "")
    if not re.fullmatch(r"-?\d+", exit_text):
        raise RecordError("Exit_status", "missing required value" if exit_text == ""
                          else f"expected an integer, found '{exit_text}'")  # fmt: skip
    submit = _epoch(a, "ctime", required=True)
    start, end = _epoch(a, "start"), _epoch(a, "end")
    hosts, slots = _exec_hosts(a)
    gpus = _count(a, "Resource_List.ngpus")
    for key in ("Resource_List.nodes", "Resource_List.nodect"):
        if gpus is None and (found := _NODES_GPUS.search(a.get(key, ""))):
            gpus = int(found.group(1))
    used_cpus = _count(a, "resources_used.ncpus")
    nodect = a.get("Resource_List.nodect", "")
    alloc_nodes = _count(a, "Resource_List.nodect") if nodect.isdigit() else (len(hosts) or None)
    cpus = count_or_none(slots, "exec_host") or used_cpus or _count(a, "Resource_List.ncpus")
    mem = _size_mb(a, "Resource_List.mem")
    walltime = _duration_s(a, "resources_used.walltime")
    tres = [
        {"name": name, "count": float(count)}
        for name, count in (("cpu", cpus), ("mem", mem), ("node", alloc_nodes), ("gres/gpu", gpus))
        if count
    ]
    return {
        "run_key": f"{cluster}/{job_id}/{submit}",
        "scheduler": "pbs",
        "cluster": cluster,
        "job_id": job_id,
        "job_id_raw": job_id,
        "array_job_id": int(base) if task else None,
        "array_task_id": task or None,
        "user": user,
        "account": account,
        "partition": a.get("queue") or None,
        "state": "COMPLETED" if int(exit_text) == 0 else "FAILED",
        "exit_code": exit_text,
        "submit_at": epoch_time(submit, "ctime"),
        "eligible_at": epoch_time(_epoch(a, "etime"), "etime"),
        "start_at": epoch_time(start, "start"),
        "end_at": epoch_time(end, "end"),
        "elapsed_s": end - start if start and end else walltime,
        "timelimit_s": _duration_s(a, "Resource_List.walltime"),
        "alloc_nodes": alloc_nodes,
        "alloc_cpus": cpus,
        "alloc_mem_mb": mem,
        "alloc_gpus": gpus or 0,
        "tres": tres,
        "nodelist": ",".join(hosts) or None,
        "nodes": hosts,
        "job_name": a.get("jobname") or None,
    }
