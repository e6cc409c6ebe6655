"""IBM Spectrum LSF accounting (``lsb.acct``) ``JOB_FINISH`` records as runs.

A record is one line of space-separated fields; strings are double-quoted with ``""`` for a
quote inside. Fields are positional (LSF's ``lsb.acct`` reference; Open XDMoD's shredder tests
are the executable spec used here): 0 event type, 2 event time (the end), 3 job id, 6
num_processors, 7 submit time, 8 begin time, 10 start time, 11 user name, 12 queue, then
``numAskedHosts`` and that many hosts, ``numExHosts`` and that many hosts (``16*host`` meaning
16 slots on ``host`` when LSF_HPC_EXTENSIONS shortens the list), then jStatus, hostFactor,
jobName, command, 19 ``ru_*`` usage fields, mailUser, projectName, exitStatus,
maxNumProcessors, loginShell, timeEvent, idx (the array index).

Mapping: user ← user name; account ← project name; partition ← queue; submit/start/end ←
submit time / start time / event time (0 start: never started); eligible ← begin time when set;
alloc_cpus ← num_processors; nodes ← the distinct execution hosts in order; state ← jStatus
(64 DONE → COMPLETED, 32 EXIT → FAILED); exit_code ← exitStatus. An array element ``123[4]``
has job_id ``123[4]``, array_job_id 123, array_task_id ``4``; run_key is
``cluster/job_id/submit epoch s`` as for sacct. Records of other event types are skipped and
counted; a JOB_FINISH record that is short, or whose value does not convert, is quarantined
with its line number, the LSF field name and the reason.
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

_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(\S+)')
_STATUS = {64: "COMPLETED", 32: "FAILED"}
# Positions of the fixed fields before the host lists.
_HEAD = {"eventTime": 2, "jobId": 3, "numProcessors": 6, "submitTime": 7, "beginTime": 8,
         "startTime": 10, "userName": 11, "queue": 12}  # fmt: skip
_ASKED = 22  # numAskedHosts
# Offsets after the execution hosts.
_TAIL = {"jStatus": 0, "jobName": 2, "projectName": 24, "exitStatus": 25, "idx": 29}


def tokens(line: str) -> list[str]:
    """Return the fields of an ``lsb.acct`` line, quotes removed and ``""`` unescaped."""
    return [
        m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2)
        for m in _TOKEN.finditer(line)
    ]


def parse_lsf_accounting(text: str, *, source: str, cluster: str) -> LogBatch:
    """Return the runs of the JOB_FINISH records of an ``lsb.acct`` file, the records refused
    (quarantine) and the other events skipped (counted by event type)."""

    def read(line: str) -> dict[str, Any] | str:
        fields = tokens(line)
        if fields[0] != "JOB_FINISH":
            return fields[0]
        try:
            return _run(fields, cluster)
        except RecordError as exc:
            exc.record_id = fields[3] if len(fields) > 3 else None
            raise

    return parse_lines(text, source=source, read=read)


def _at(fields: list[str], index: int, name: str) -> str:
    if index >= len(fields):
        raise RecordError(name, f"record ends after {len(fields)} fields, before {name}")
    return fields[index]


def _int(fields: list[str], index: int, name: str) -> int:
    value = _at(fields, index, name)
    if not re.fullmatch(r"-?\d{1,15}", value):
        raise RecordError(name, f"expected an integer, found '{value}'")
    return int(value)


def _run(fields: list[str], cluster: str) -> dict[str, Any]:
    asked = _int(fields, _ASKED, "numAskedHosts")
    at_ex = _ASKED + 1 + asked
    executed = _int(fields, at_ex, "numExHosts")
    if asked < 0 or executed < 0:
        raise RecordError("numExHosts", "negative host count")
    hosts: list[str] = []
    for i in range(executed):
        host = _at(fields, at_ex + 1 + i, "execHosts").rpartition("*")[2]
        if host not in hosts:
            hosts.append(host)
    k = at_ex + 1 + executed

    def tail(name: str) -> int:
        return k + _TAIL[name]

    job = _int(fields, _HEAD["jobId"], "jobId")
    idx = count_or_none(_int(fields, tail("idx"), "idx"), "idx") or 0
    status = _int(fields, tail("jStatus"), "jStatus")
    if status not in _STATUS:
        raise RecordError("jStatus", f"expected 64 (DONE) or 32 (EXIT), found {status}")
    user = _at(fields, _HEAD["userName"], "userName")
    account = _at(fields, tail("projectName"), "projectName")
    for name, value in (("userName", user), ("projectName", account)):
        if not value:
            raise RecordError(name, "missing required value")
    submit = _int(fields, _HEAD["submitTime"], "submitTime")
    if submit <= 0:
        raise RecordError("submitTime", f"expected epoch seconds, found {submit}")
    start = _int(fields, _HEAD["startTime"], "startTime")
    end = _int(fields, _HEAD["eventTime"], "eventTime")
    cpus = count_or_none(_int(fields, _HEAD["numProcessors"], "numProcessors"), "numProcessors")
    job_id = f"{job}[{idx}]" if idx > 0 else str(job)
    tres = [{"name": n, "count": float(c)} for n, c in (("cpu", cpus), ("node", len(hosts))) if c]
    return {
        "run_key": f"{cluster}/{job_id}/{submit}",
        "scheduler": "lsf",
        "cluster": cluster,
        "job_id": job_id,
        "job_id_raw": job_id,
        "array_job_id": job if idx > 0 else None,
        "array_task_id": str(idx) if idx > 0 else None,
        "user": user,
        "account": account,
        "partition": _at(fields, _HEAD["queue"], "queue") or None,
        "state": _STATUS[status],
        "exit_code": str(_int(fields, tail("exitStatus"), "exitStatus")),
        "submit_at": epoch_time(submit, "submitTime"),
        "eligible_at": epoch_time(_int(fields, _HEAD["beginTime"], "beginTime"), "beginTime"),
        "start_at": epoch_time(start, "startTime") if start > 0 else None,
        "end_at": epoch_time(end, "eventTime"),
        "elapsed_s": end - start if start > 0 and end >= start else 0,
        "alloc_nodes": len(hosts) or None,
        "alloc_cpus": cpus,
        "alloc_gpus": 0,
        "tres": tres,
        "nodelist": ",".join(hosts) or None,
        "nodes": hosts,
        "job_name": _at(fields, tail("jobName"), "jobName") or None,
    }
