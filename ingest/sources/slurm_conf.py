"""Read ``slurm.conf`` for what it says about usage and fair-share (``SlurmConf``).

``parse_slurm_conf`` is pure (text in, a ``SlurmConf`` out; includes come through an injected
loader); ``read_slurm_conf`` reads a file and the files it includes. Every problem is a
``PolicyError`` that names the file, the line and the field.

slurm.conf is read the way Slurm's own parser reads it (``src/common/parse_config.c``): ``#``
starts a comment unless escaped as ``\\#``, a line ending in an odd number of ``\\`` continues on
the next line, keys are case-insensitive, a value is quoted (``"..."``, may hold spaces) or runs
to the next blank, several pairs may share a line, the last setting of a key wins, and a line
whose first key is ``PartitionName`` (or ``NodeName``, ...) describes one record with the rest
of the line as its options. ``PartitionName=DEFAULT`` sets defaults for the partitions after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast, get_args

from models.errors import PolicyError
from models.policy import ResetPeriod, parse_billing_weights

# Slurm's defaults when slurm.conf does not set a value (read_config.c).
DEFAULT_HALF_LIFE_S = 7 * 86400
DEFAULT_CALC_PERIOD_S = 300
DEFAULT_PRIORITY_TYPE = "priority/basic"

# First keys that make a line one record (the rest of the line are its options), not settings.
_RECORD_KEYS = ("partitionname", "nodename", "frontendname", "downnodes", "nodeset")

# PriorityFlags that change how Slurm orders or normalises job priorities but neither usage nor
# the fair-share factor.
_FLAGS_WITHOUT_EFFECT = {
    "ACCRUE_ALWAYS",
    "CALCULATE_RUNNING",
    "FAIR_TREE",  # the default since Slurm 19.05; older releases needed it
    "INCR_ONLY",
    "NO_NORMAL_ALL",
    "NO_NORMAL_ASSOC",
    "NO_NORMAL_PART",
    "NO_NORMAL_QOS",
    "NO_NORMAL_TRES",
    "SMALL_RELATIVE_TO_TIME",
}
# PriorityFlags whose effect fairledger does not model: importing them would silently differ.
FLAGS_UNSUPPORTED = {
    "DEPTH_OBLIVIOUS": "the depth-oblivious fair-share algorithm is not implemented",
    "MAX_TRES_GRES": "MAX_TRES_GRES billing is not implemented (MAX_TRES is)",
}

_PAIR_RE = re.compile(r'\s*([A-Za-z0-9_.]+)\s*([-*+/]?)=\s*(?:"([^"]*)"|(\S+))(?=\s|$)')
_WHOLE_RE = re.compile(r"[0-9]+")
_TIME_RE = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
_TRUE = {"yes", "true", "up", "1"}
_FALSE = {"no", "false", "down", "0"}
_MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True)
class Setting:
    """One ``Key=Value`` of slurm.conf, with where it was (the last one when repeated)."""

    name: str  # as written
    value: str
    origin: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.origin}:{self.line}: {self.name}"


@dataclass(frozen=True)
class ConfPartition:
    """One ``PartitionName=`` line with the ``PartitionName=DEFAULT`` options merged in."""

    name: str
    options: dict[str, str]  # lower-case key -> value, without "partitionname"
    origin: str
    line: int
    default: bool = False  # Default=YES (only the last such partition, as in slurmctld)
    tres_billing_weights: str = ""


@dataclass(frozen=True)
class SlurmConf:
    """What slurm.conf says about usage and fair-share, with Slurm's defaults filled in."""

    origin: str
    cluster_name: str | None = None  # lower-cased, as slurmctld and sacctmgr store it
    priority_type: str = DEFAULT_PRIORITY_TYPE
    half_life_s: int = DEFAULT_HALF_LIFE_S  # PriorityDecayHalfLife; 0 = no decay
    calc_period_s: int = DEFAULT_CALC_PERIOD_S  # PriorityCalcPeriod
    usage_reset: ResetPeriod = "NONE"  # PriorityUsageResetPeriod
    priority_flags: tuple[str, ...] = ()  # upper case, in the order written
    dampening: int = 1  # FairShareDampeningFactor
    partitions: tuple[ConfPartition, ...] = ()
    includes: tuple[str, ...] = ()  # every Include path met, read or not
    settings: Mapping[str, Setting] = field(default_factory=dict)  # lower-case key -> last
    notes: tuple[str, ...] = ()  # what was ignored or assumed, for the admin to read

    @property
    def algorithm(self) -> Literal["fair_tree", "classic"]:
        """Return the fair-share algorithm the flags select (Fair Tree unless NO_FAIR_TREE)."""
        return "classic" if "NO_FAIR_TREE" in self.priority_flags else "fair_tree"

    @property
    def max_tres(self) -> bool:
        """Return whether billing is the max over node TRES (``PriorityFlags=MAX_TRES``)."""
        return "MAX_TRES" in self.priority_flags


def _strip_comment(line: str) -> str:
    backslashes = 0
    for i, ch in enumerate(line):
        if ch == "#" and backslashes % 2 == 0:
            return line[:i]
        backslashes = backslashes + 1 if ch == "\\" else 0
    return line


def _unescape(line: str) -> str:
    return re.sub(r"\\(.)", r"\1", line)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first physical line number, joined line) with comments and escapes removed."""
    buffer, start = "", None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).rstrip()
        start = number if start is None else start
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:  # continued: drop the one unescaped backslash, join as is
            buffer += line[:-1]
            continue
        yield start, _unescape(buffer + line)
        buffer, start = "", None
    if start is not None:
        yield start, _unescape(buffer)


def _pairs(line: str, where: str) -> list[tuple[str, str, str]]:
    """Return the line's (key as written, operator, value) triples."""
    pairs: list[tuple[str, str, str]] = []
    pos = 0
    while line[pos:].strip():
        match = _PAIR_RE.match(line, pos)
        if match is None:
            raise PolicyError(f"{where}: cannot read {line[pos:].strip()!r} (expected Key=Value)")
        value = match.group(3) if match.group(3) is not None else match.group(4)
        pairs.append((match.group(1), match.group(2), value))
        pos = match.end()
    return pairs


def _bool(value: str, where: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise PolicyError(f"{where}: {value!r} is not YES or NO")


def slurm_time_s(value: str, where: str) -> int | None:
    """Return a Slurm time string as Slurm stores it in minutes, in seconds; None for INFINITE.

    Formats: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``; a plain
    number is minutes. Slurm rounds seconds up to whole minutes (``time_str2mins``).
    """
    text = value.strip()
    if text.upper() in ("-1", "INFINITE", "UNLIMITED"):
        return None
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise PolicyError(
            f"{where}: {value!r} is not a Slurm time "
            "(MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"
        )
    days, first, second, third = (int(g or 0) for g in match.groups())
    if match.group(1) is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + first * 3600 + second * 60 + third
    elif match.group(4) is not None:  # HH:MM:SS
        seconds = first * 3600 + second * 60 + third
    else:  # MM[:SS]
        seconds = first * 60 + second
    return -(-seconds // 60) * 60


@dataclass
class _Reader:
    """Accumulates what the lines of slurm.conf and its includes say, in order."""

    include_loader: Callable[[str], str] | None
    settings: dict[str, Setting] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    partitions: dict[str, ConfPartition] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)

    def read(self, text: str, origin: str) -> None:
        if origin in self.stack or len(self.stack) >= _MAX_INCLUDE_DEPTH:
            chain = " -> ".join([*self.stack, origin])
            raise PolicyError(f"Include loop or too deep: {chain}")
        self.stack.append(origin)
        for number, line in _logical_lines(text):
            if line.strip():
                self._line(line, origin, number)
        self.stack.pop()

    def _line(self, line: str, origin: str, number: int) -> None:
        where = f"{origin}:{number}"
        head = line.lstrip()
        if head[:7].lower() == "include" and head[7:8].isspace():
            self._include(head[7:].split(), where)
            return
        pairs = _pairs(line, where)
        for index, (key, op, value) in enumerate(pairs):
            if op:
                self.notes.append(f"{where}: {key}{op}={value}: operator {op}= read as =")
            if key.lower() in _RECORD_KEYS:
                if key.lower() == "partitionname":
                    self._partition(value, pairs[index + 1 :], origin, number)
                return
            self.settings[key.lower()] = Setting(key, value, origin, number)

    def _include(self, words: list[str], where: str) -> None:
        if len(words) != 1:
            raise PolicyError(f"{where}: Include: expected one file name, found {words!r}")
        path = words[0]
        cluster = self.settings.get("clustername")
        if "%c" in path and cluster is not None:  # Slurm expands %c to ClusterName
            path = path.replace("%c", cluster.value.lower())
        self.includes.append(path)
        if self.include_loader is None:
            self.notes.append(f"{where}: Include {path} not read (no include loader given)")
            return
        try:
            text = self.include_loader(path)
        except OSError as exc:
            raise PolicyError(f"{where}: Include {path}: cannot read it: {exc}") from exc
        self.read(text, path)

    def _partition(
        self, name: str, rest: list[tuple[str, str, str]], origin: str, number: int
    ) -> None:
        options = {key.lower(): value for key, _, value in rest}
        if name.lower() == "default":
            self.defaults.update(options)
            return
        where = f"{origin}:{number}: PartitionName={name}"
        if name in self.partitions:
            first = self.partitions[name]
            raise PolicyError(f"{where}: defined twice (first at {first.origin}:{first.line})")
        merged = {**self.defaults, **options}
        weights = merged.get("tresbillingweights", "")
        try:
            parse_billing_weights(weights)
        except PolicyError as exc:
            raise PolicyError(f"{where} TRESBillingWeights: {exc}") from exc
        default = _bool(merged["default"], f"{where} Default") if "default" in merged else False
        self.partitions[name] = ConfPartition(
            name, merged, origin, number, default=default, tres_billing_weights=weights
        )


def _priority_flags(setting: Setting | None, notes: list[str]) -> tuple[str, ...]:
    if setting is None:
        return ()
    flags = tuple(f.strip().upper() for f in setting.value.split(",") if f.strip())
    for flag in flags:
        if flag in _FLAGS_WITHOUT_EFFECT:
            notes.append(f"{setting.where}: {flag} does not change usage or fair-share; ignored")
        elif flag not in ("NO_FAIR_TREE", "MAX_TRES", *FLAGS_UNSUPPORTED):
            notes.append(f"{setting.where}: unknown flag {flag!r} ignored")
    return flags


def _default_partitions(
    partitions: Sequence[ConfPartition], notes: list[str]
) -> tuple[ConfPartition, ...]:
    """Return the partitions with only the last Default=YES one kept as default (slurmctld's)."""
    defaults = [p for p in partitions if p.default]
    if len(defaults) <= 1:
        return tuple(partitions)
    last = defaults[-1]
    notes.append(
        f"Default=YES on {', '.join(p.name for p in defaults)}: Slurm uses the last, {last.name}"
    )
    return tuple(
        p
        if p is last or not p.default
        else ConfPartition(p.name, p.options, p.origin, p.line, False, p.tres_billing_weights)
        for p in partitions
    )


def parse_slurm_conf(
    text: str,
    *,
    origin: str = "slurm.conf",
    include_loader: Callable[[str], str] | None = None,
) -> SlurmConf:
    """Return what ``text`` (a slurm.conf) sets for usage and fair-share.

    ``include_loader(path)`` returns the text of an ``Include``d file (the path as written,
    ``%c`` expanded); without it, includes are listed in ``includes`` and ``notes`` only.
    """
    reader = _Reader(include_loader)
    reader.read(text, origin)
    get = reader.settings.get
    notes = reader.notes

    cluster = get("clustername")
    if cluster is None:
        notes.append(f"{origin}: no ClusterName; pass the cluster name explicitly")

    priority_type = get("prioritytype")
    kind = priority_type.value if priority_type else DEFAULT_PRIORITY_TYPE
    if kind != "priority/multifactor":
        where = priority_type.where if priority_type else f"{origin}: PriorityType (default)"
        notes.append(f"{where}: {kind} computes no fair-share; imported as multifactor would be")

    half_life_s = DEFAULT_HALF_LIFE_S
    if (half_life := get("prioritydecayhalflife")) is not None:
        seconds = slurm_time_s(half_life.value, half_life.where)
        if seconds is None:
            notes.append(f"{half_life.where}: INFINITE half-life read as 0 (no decay)")
        half_life_s = seconds or 0

    calc_period_s = DEFAULT_CALC_PERIOD_S
    if (calc := get("prioritycalcperiod")) is not None:
        seconds = slurm_time_s(calc.value, calc.where)
        if not seconds:
            raise PolicyError(f"{calc.where}: {calc.value!r}: must be at least one minute")
        calc_period_s = seconds

    usage_reset: ResetPeriod = "NONE"
    if (reset := get("priorityusageresetperiod")) is not None:
        value = reset.value.upper()
        if value not in get_args(ResetPeriod):
            allowed = ", ".join(get_args(ResetPeriod))
            raise PolicyError(f"{reset.where}: {reset.value!r} is not one of {allowed}")
        usage_reset = cast(ResetPeriod, value)

    dampening = 1
    if (damp := get("fairsharedampeningfactor")) is not None:
        if not _WHOLE_RE.fullmatch(damp.value) or int(damp.value) < 1:
            raise PolicyError(f"{damp.where}: {damp.value!r} is not a whole number >= 1")
        dampening = int(damp.value)

    return SlurmConf(
        origin=origin,
        cluster_name=cluster.value.lower() if cluster is not None else None,
        priority_type=kind,
        half_life_s=half_life_s,
        calc_period_s=calc_period_s,
        usage_reset=usage_reset,
        priority_flags=_priority_flags(get("priorityflags"), notes),
        dampening=dampening,
        partitions=_default_partitions(list(reader.partitions.values()), notes),
        includes=tuple(reader.includes),
        settings=dict(reader.settings),
        notes=tuple(notes),
    )


def read_slurm_conf(path: Path) -> SlurmConf:
    """Return the parsed slurm.conf at ``path``, reading its includes (relative to its folder)."""

    def load(include: str) -> str:
        target = Path(include)
        return (target if target.is_absolute() else path.parent / target).read_text("utf-8")

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc}") from exc
    return parse_slurm_conf(text, origin=str(path), include_loader=load)
