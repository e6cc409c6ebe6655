"""Running ``sacct``: the argv is built by a pure function, the command runs through an injected
runner (tests pass a fake executable, the real-Slurm suite the real sacct)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import zoneinfo
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from ingest.sources.sacct_fields import SACCT_FORMAT, SACCT_STATES, TIME_FORMAT
from models.errors import ParseError, SourceUnavailable


class SacctPull(Protocol):
    """What a scheduled pull needs to know (``api.settings.SacctSource`` has these fields)."""

    @property
    def name(self) -> str: ...
    @property
    def cluster(self) -> str | None: ...
    @property
    def command(self) -> str: ...
    @property
    def tz(self) -> str: ...


class Runner(Protocol):
    """Runs a command and returns its stdout; raises SourceUnavailable when it fails."""

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None
    ) -> str: ...


# What Slurm's client commands must see whatever the caller's environment holds: times in
# UTC and in ISO form (SLURM_TIME_FORMAT=relative or a custom strftime would break parsing).
_SLURM_ENV = {"TZ": "UTC", "SLURM_TIME_FORMAT": "standard"}
_TAIL_CHARS = 800


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TAIL_CHARS else "…" + text[-_TAIL_CHARS:]


def _shown(argv: Sequence[str]) -> str:
    command = shlex.join(argv)
    return command if len(command) <= 300 else command[:300] + "…"


def subprocess_runner(
    argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None
) -> str:
    """Return the stdout of ``argv`` run with TZ=UTC (``env`` entries win).

    A missing executable, a timeout or a non-zero exit raises SourceUnavailable naming the
    command, with the tail of its stderr.
    """
    full_env = {**os.environ, **_SLURM_ENV, **(env or {})}
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            env=full_env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if exc.stderr else ""
        raise SourceUnavailable(
            f"{_shown(argv)} timed out after {timeout_s:g} s"
            + (f"; stderr: {_tail(stderr)}" if stderr.strip() else "")
        ) from exc
    except OSError as exc:
        raise SourceUnavailable(f"cannot run {_shown(argv)}: {exc.strerror or exc}") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        raise SourceUnavailable(
            f"{_shown(argv)} exited with status {done.returncode}"
            + (f": {_tail(stderr)}" if stderr.strip() else " and printed nothing on stderr")
        )
    return done.stdout.decode("utf-8", "replace")


def sacct_command(source: SacctPull, *, start: datetime, end: datetime) -> list[str]:
    """Return the sacct argv that lists every record of the source's cluster active in
    ``[start, end]`` (aware times, written in the source's time zone, UTC by default)."""
    zone = zoneinfo.ZoneInfo(source.tz)

    def when(t: datetime) -> str:
        if t.tzinfo is None:
            raise ValueError(f"{t!r} has no time zone")
        return t.astimezone(zone).strftime(TIME_FORMAT)

    argv = [
        source.command,
        "--allusers",
        "--duplicates",
        "--parsable2",
        "--noconvert",
        f"--format={','.join(SACCT_FORMAT)}",
        f"--state={SACCT_STATES}",
        f"--starttime={when(start)}",
        f"--endtime={when(end)}",
    ]
    if source.cluster:
        argv.append(f"--clusters={source.cluster}")
    return argv


def fetch_sacct(
    argv: Sequence[str], *, runner: Runner = subprocess_runner, timeout_s: float, tz: str = "UTC"
) -> str:
    """Return what sacct printed for ``argv``, run with ``TZ=tz``; SourceUnavailable if not."""
    return runner(argv, timeout_s=timeout_s, env={"TZ": tz})


_RELATIVE = re.compile(r"^now(?:([+-])(\d+)([a-z]*))?$")
_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
_DAY_WORDS = {"today": (0, 0), "midnight": (0, 0), "noon": (0, 12), "tomorrow": (1, 0)}


def resolve_sacct_time(text: str, *, now: datetime, tz: str = "UTC") -> datetime:
    """Return the aware time a sacct ``--starttime`` value means at ``now``.

    Accepts what sites write in configs: ``now``, ``now-7days`` (units seconds, minutes,
    hours, days, weeks, or a prefix of one, seconds by default), ``today``, ``midnight``,
    ``noon``, ``tomorrow`` and ``YYYY-MM-DD[THH:MM[:SS]]`` (in ``tz``).
    """
    value = text.strip().lower()
    zone = zoneinfo.ZoneInfo(tz)
    if match := _RELATIVE.match(value):
        sign, count, unit = match.groups()
        if sign is None:
            return now
        units = [size for name, size in _UNITS.items() if name.startswith(unit or "s")]
        if len(units) != 1:
            raise ParseError(
                f"unknown time unit in {text!r} (seconds, minutes, hours, days, weeks)"
            )
        delta = timedelta(seconds=int(count) * units[0])
        return now + delta if sign == "+" else now - delta
    if value in _DAY_WORDS:
        days, hour = _DAY_WORDS[value]
        local = now.astimezone(zone)
        start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
        return start + timedelta(days=days)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ParseError(
            f"cannot read the sacct time {text!r}: use now-<n><unit> or YYYY-MM-DD[THH:MM:SS]"
        ) from exc
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed
