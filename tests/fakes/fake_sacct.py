#!/usr/bin/env python3
"""A stand-in for Slurm's ``sacct``: records how it was called and prints recorded output.

Environment (all optional):

- ``FAKE_SACCT_LOG``: append one JSON line per call, ``{"argv": [...], "tz": ..., "pid": ...}``
  (``argv`` without the program name, ``tz`` the ``TZ`` it was run with or null).
- ``FAKE_SACCT_SLEEP``: seconds to sleep before answering (to provoke timeouts).
- ``FAKE_SACCT_OUTPUT``: a file whose text is printed on stdout.
- ``FAKE_SACCT_OUTPUT_DIR``: a directory; each call prints the next file not yet consumed, in
  name order (consumed names are kept in ``.fake_sacct_consumed`` inside it). A file whose name
  ends in ``.fail`` is not printed: its text goes to stderr and the call exits 1 (or
  ``FAKE_SACCT_EXIT``), so ``01.fail, 02.fail, 03.txt`` fails twice, then answers. Once every
  file is consumed, the last one is answered again (sacct re-reports an unchanged window).
- ``FAKE_SACCT_EXIT``: exit with this status after printing; non-zero also writes
  ``FAKE_SACCT_STDERR`` (default ``sacct: error: fake failure``) to stderr.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

CONSUMED = ".fake_sacct_consumed"


def _log(path: str) -> None:
    line = json.dumps({"argv": sys.argv[1:], "tz": os.environ.get("TZ"), "pid": os.getpid()})
    with open(path, "a", encoding="utf-8") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        log.write(line + "\n")


def _next_file(directory: Path) -> Path | None:
    """Return the next unconsumed file of ``directory`` (the last one once all are consumed)."""
    with open(directory / CONSUMED, "a+", encoding="utf-8") as state:
        fcntl.flock(state, fcntl.LOCK_EX)
        state.seek(0)
        consumed = set(state.read().split())
        files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
        for path in files:
            if path.name not in consumed:
                state.write(path.name + "\n")
                return path
        return files[-1] if files else None


def main() -> int:
    if log := os.environ.get("FAKE_SACCT_LOG"):
        _log(log)
    if sleep := os.environ.get("FAKE_SACCT_SLEEP"):
        time.sleep(float(sleep))
    exit_code = int(os.environ.get("FAKE_SACCT_EXIT", "0"))
    answer: Path | None = None
    if directory := os.environ.get("FAKE_SACCT_OUTPUT_DIR"):
        answer = _next_file(Path(directory))
    elif output := os.environ.get("FAKE_SACCT_OUTPUT"):
        answer = Path(output)
    if answer is not None and answer.name.endswith(".fail"):
        sys.stderr.write(answer.read_text(encoding="utf-8"))
        return exit_code or 1
    if answer is not None:
        sys.stdout.write(answer.read_text(encoding="utf-8"))
    if exit_code:
        sys.stderr.write(os.environ.get("FAKE_SACCT_STDERR", "sacct: error: fake failure") + "\n")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
