#!/usr/bin/env python3
"""A stand-in for Slurm's ``squeue`` and ``scontrol``, over a JSON file of jobs.

It acts as the program it is called as: link it as ``squeue`` and ``scontrol`` (a symlink
named so) and point fairledger's ``[delivery] squeue`` / ``scontrol`` at the links.

Environment:

- ``FAKE_SLURM_JOBS`` (required): a JSON file holding a list of jobs, each
  ``{"job_id": "101", "user": "alice", "account": "physics", "state": "PENDING",
  "site_factor": 0}`` (``partition``, ``name`` and ``priority`` optional). ``scontrol update``
  writes the new SiteFactor back into this file.
- ``FAKE_SLURM_LOG``: append one JSON line per call, ``{"prog": "scontrol", "argv": [...],
  "tz": ...}``.
- ``FAKE_SLURM_FAIL_JOBS``: comma-separated job ids whose update fails (as a job that ended
  meanwhile does: ``Job has already finished for job 101`` on stderr, exit 1, the other jobs
  of the same call still updated, as real scontrol does).
- ``FAKE_SLURM_EXIT``: every call fails with this status (``slurm_load_jobs error: Unable to
  contact slurm controller``).

``squeue`` understands ``--noheader/-h``, ``--states/-t`` (default PENDING,RUNNING),
``--clusters/-M`` (prints a ``CLUSTER: name`` line first, as squeue does) and
``--format/-o`` with ``%i %u %a %T %P %j %Q`` (width and ``.`` modifiers are accepted and
ignored). ``scontrol update JobId=<list> SiteFactor=<n>`` takes a comma-separated list
(commas inside ``[...]`` belong to an array expression), case-insensitive keywords, and an
optional ``--clusters/-M``; ``scontrol show job <id>`` prints ``JobId=<id> ... SiteFactor=<n>``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

_FIELDS = {
    "i": "job_id",
    "u": "user",
    "a": "account",
    "T": "state",
    "P": "partition",
    "j": "name",
    "Q": "priority",
}


def _log(prog: str) -> None:
    if path := os.environ.get("FAKE_SLURM_LOG"):
        line = json.dumps({"prog": prog, "argv": sys.argv[1:], "tz": os.environ.get("TZ")})
        with open(path, "a", encoding="utf-8") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            log.write(line + "\n")


def _options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Return ``--name[=value]`` / ``-x [value]`` options by long name, and the other words."""
    short = {"-h": "noheader", "-t": "states", "-o": "format", "-M": "clusters"}
    flags = {"noheader"}
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):  # --name=value, or a flag such as --all
            name, _, value = arg[2:].partition("=")
            opts[name] = value
        elif arg in short:
            name = short[arg]
            if name in flags:
                opts[name] = ""
            else:
                i += 1
                opts[name] = args[i]
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def _jobs_path() -> Path:
    path = os.environ.get("FAKE_SLURM_JOBS")
    if not path:
        sys.stderr.write("fake_slurm_ctl: FAKE_SLURM_JOBS is not set\n")
        sys.exit(2)
    return Path(path)


def _squeue(args: list[str]) -> int:
    opts, _ = _options(args)
    states = {s.strip().upper() for s in opts.get("states", "PENDING,RUNNING").split(",")}
    states = {"PENDING" if s == "PD" else "RUNNING" if s == "R" else s for s in states}
    fmt = opts.get("format", "%i|%u|%a|%T")
    jobs: list[dict[str, Any]] = json.loads(_jobs_path().read_text(encoding="utf-8"))
    out = []
    if "clusters" in opts:
        out.append(f"CLUSTER: {opts['clusters']}")
    if "noheader" not in opts:
        out.append(re.sub(r"%\.?\d*([A-Za-z])", lambda m: _FIELDS.get(m[1], m[1]).upper(), fmt))
    for job in jobs:
        if "ALL" not in states and str(job.get("state", "PENDING")).upper() not in states:
            continue
        out.append(
            re.sub(
                r"%\.?\d*([A-Za-z])",
                lambda m, job=job: str(job.get(_FIELDS.get(m[1], ""), "")),
                fmt,
            )
        )
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0


def _job_list(text: str) -> list[str]:
    """Split a scontrol job list at commas outside brackets."""
    ids, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char in ", " and depth == 0:
            if current:
                ids.append(current)
            current = ""
        else:
            current += char
    if current:
        ids.append(current)
    return ids


def _scontrol(args: list[str]) -> int:
    _, words = _options(args)
    if len(words) >= 3 and words[0].lower() == "show" and words[1].lower() == "job":
        jobs = json.loads(_jobs_path().read_text(encoding="utf-8"))
        for job in jobs:
            if job["job_id"] == words[2]:
                print(
                    f"JobId={job['job_id']} UserId={job['user']} Account={job['account']} "
                    f"JobState={job.get('state', 'PENDING')} "
                    f"SiteFactor={job.get('site_factor', 0)}"
                )
                return 0
        sys.stderr.write("slurm_load_jobs error: Invalid job id specified\n")
        return 1
    if not words or words[0].lower() != "update":
        sys.stderr.write(f"fake scontrol: unsupported command {' '.join(words)}\n")
        return 2
    pairs = dict(word.split("=", 1) for word in words[1:] if "=" in word)
    keys = {k.lower(): v for k, v in pairs.items()}
    if "jobid" not in keys or "sitefactor" not in keys:
        sys.stderr.write("fake scontrol: only `update JobId=... SiteFactor=...` is known\n")
        return 2
    value = int(keys["sitefactor"])
    failing = set(filter(None, os.environ.get("FAKE_SLURM_FAIL_JOBS", "").split(",")))
    path = _jobs_path()
    code = 0
    with open(path, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        jobs = json.loads(handle.read())
        by_id = {job["job_id"]: job for job in jobs}
        for job_id in _job_list(keys["jobid"]):
            job = by_id.get(job_id)
            if job is None:
                sys.stderr.write(f"Invalid job id specified for job {job_id}\n")
                code = 1
            elif job_id in failing or str(job.get("state", "PENDING")).upper() != "PENDING":
                sys.stderr.write(f"Job has already finished for job {job_id}\n")
                code = 1
            else:
                job["site_factor"] = value
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(jobs, indent=1))
    return code


def main() -> int:
    prog = Path(sys.argv[0]).name.removesuffix(".py")
    _log(prog)
    if code := int(os.environ.get("FAKE_SLURM_EXIT", "0")):
        sys.stderr.write(f"{prog}: error: Unable to contact slurm controller (connect failure)\n")
        return code
    if prog == "squeue":
        return _squeue(sys.argv[1:])
    if prog == "scontrol":
        return _scontrol(sys.argv[1:])
    sys.stderr.write(
        f"fake_slurm_ctl: call me through a link named squeue or scontrol, not {prog}\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
