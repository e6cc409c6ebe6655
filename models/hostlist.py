"""Slurm hostlist and job-array index syntax: ``cn[001-004],gpu07`` and ``[1-3,9%2]``.

Pure functions, no I/O. A hostlist is a comma-separated list of host expressions; an expression
is literal text with bracket groups of numbers and ranges, ``d13n[03,05,07-08]``. A range keeps
the zero padding of its lower bound (``[08-10]`` gives 08, 09, 10), and several groups in one
expression give their cartesian product, leftmost group slowest (``r[1-2]n[1-2]`` gives r1n1,
r1n2, r2n1, r2n2).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

# What sacct prints for a job that has no nodes (pending, cancelled before start).
EMPTY_HOSTLISTS = frozenset({"", "None assigned", "(null)", "None"})

# Refuse expansions larger than this: a typo like ``cn[1-99999999]`` must not eat the memory.
MAX_HOSTS = 1_000_000

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")
_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def _group_values(group: str, text: str) -> list[str]:
    """Return the zero-padded numbers of one bracket group's content, e.g. ``03,07-08``."""
    values: list[str] = []
    for part in group.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"hostlist {text!r}: bad range {part!r} (expected N or N-M)")
        lo_text, hi_text = match.group(1), match.group(2)
        if hi_text is None:
            values.append(lo_text)
            continue
        lo, hi = int(lo_text), int(hi_text)
        if hi < lo:
            raise ValueError(f"hostlist {text!r}: descending range {part!r}")
        if hi - lo >= MAX_HOSTS:
            raise ValueError(f"hostlist {text!r}: range {part!r} has more than {MAX_HOSTS} hosts")
        width = len(lo_text)
        values.extend(str(n).zfill(width) for n in range(lo, hi + 1))
    return values


def _split_top_level(text: str) -> list[str]:
    """Return the comma-separated expressions of ``text``, keeping commas inside brackets."""
    items: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"hostlist {text!r}: nested '[' at position {i}")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"hostlist {text!r}: unbalanced ']' at position {i}")
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"hostlist {text!r}: unbalanced '[' (no closing ']')")
    items.append(text[start:])
    return items


def _expand_expression(expr: str, text: str) -> list[str]:
    """Return the hosts of one expression such as ``rack[1-2]n[01-02]``."""
    if not expr or any(c.isspace() for c in expr):
        raise ValueError(f"hostlist {text!r}: empty or blank host name {expr!r}")
    if "[" not in expr:
        return [expr]
    # re.split with a capture group alternates literal, group, literal, ...
    pieces = re.split(r"\[([^\]]*)\]", expr)
    choices: list[list[str]] = []
    size = 1
    for i, piece in enumerate(pieces):
        if i % 2:
            if not piece:
                raise ValueError(f"hostlist {text!r}: empty brackets in {expr!r}")
            values = _group_values(piece, text)
            size *= len(values)
            if size > MAX_HOSTS:
                raise ValueError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
            choices.append(values)
        else:
            choices.append([piece])
    return ["".join(combo) for combo in itertools.product(*choices)]


def expand_hostlist(text: str) -> list[str]:
    """Return the host names of a Slurm hostlist, in the order written.

    ``None assigned`` and the empty string give ``[]``. Raises ValueError, naming the list and
    the problem, on unbalanced or nested brackets, a descending or non-numeric range, or an
    empty host name.
    """
    text = text.strip()
    if text in EMPTY_HOSTLISTS:
        return []
    hosts: list[str] = []
    for expr in _split_top_level(text):
        hosts.extend(_expand_expression(expr.strip(), text))
        if len(hosts) > MAX_HOSTS:
            raise ValueError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
    return hosts


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    """Return sorted distinct ``numbers`` as runs of consecutive values ``(lo, hi)``."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def compress_hostlist(nodes: Iterable[str]) -> str:
    """Return a compact hostlist for ``nodes``: distinct names, sorted, trailing numbers ranged.

    ``expand_hostlist(compress_hostlist(nodes))`` gives the distinct nodes back (sorted by
    prefix, then number). Numbers of different widths are kept apart so padding survives.
    """
    by_prefix: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    for node in set(nodes):
        match = _TRAILING_NUMBER.match(node)
        if match is None or "[" in node or "]" in node:
            plain.append(node)
            continue
        digits = match.group(2)
        by_prefix.setdefault((match.group(1), len(digits)), []).append(int(digits))
    parts = sorted(plain)
    for (prefix, width), numbers in sorted(by_prefix.items()):
        runs = _ranges(numbers)
        if len(runs) == 1 and runs[0][0] == runs[0][1]:
            parts.append(f"{prefix}{str(runs[0][0]).zfill(width)}")
            continue
        spans = [
            str(lo).zfill(width) if lo == hi else f"{str(lo).zfill(width)}-{str(hi).zfill(width)}"
            for lo, hi in runs
        ]
        parts.append(f"{prefix}[{','.join(spans)}]")
    return ",".join(parts)


_ARRAY_PART = re.compile(r"(\d+)(?:-(\d+)(?::(\d+))?)?")


def expand_array_indexes(text: str) -> list[int]:
    """Return the task indexes of a job-array spec: ``[9-11,20]``, ``100``, ``[1-3%2]``, ``1-9:2``.

    The ``%N`` throttle is ignored. Raises ValueError on malformed specs or descending ranges.
    """
    spec = text.strip()
    if spec.startswith("[") != spec.endswith("]"):
        raise ValueError(f"array spec {text!r}: unbalanced brackets")
    spec = spec.removeprefix("[").removesuffix("]")
    spec = spec.split("%", 1)[0]
    if not spec:
        raise ValueError(f"array spec {text!r}: no indexes")
    indexes: list[int] = []
    for part in spec.split(","):
        match = _ARRAY_PART.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"array spec {text!r}: bad part {part!r} (expected N, N-M or N-M:S)")
        lo = int(match.group(1))
        if match.group(2) is None:
            indexes.append(lo)
            continue
        hi, step = int(match.group(2)), int(match.group(3) or 1)
        if hi < lo or step < 1:
            raise ValueError(f"array spec {text!r}: descending range or bad step in {part!r}")
        if (hi - lo) // step >= MAX_HOSTS:
            raise ValueError(f"array spec {text!r}: more than {MAX_HOSTS} indexes in {part!r}")
        indexes.extend(range(lo, hi + 1, step))
    return indexes
