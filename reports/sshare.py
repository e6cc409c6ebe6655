"""The ``sshare -a -l -P`` view of fair-share factors, line for line as Slurm prints it.

Columns ``Account|User|RawShares|NormShares|RawUsage|NormUsage|EffectvUsage|FairShare|LevelFS``
under Fair Tree; classic mode has no ``LevelFS`` column (sshare drops it). The ``GrpTRESMins``
and ``TRESRunMins`` columns of ``sshare -l`` are left out. Formatting follows Slurm's sshare
(``src/sshare/process.c``, ``src/common/print_fields.c``):

- rows in the factors' order (sshare's), the Account indented by one space per depth; a user
  row shows its account's name one level deeper than the account row;
- RawShares: empty for root, ``parent`` for ``Fairshare=parent``, else the integer;
- RawUsage: the usage truncated to an integer;
- other numbers ``%f`` (six decimals, ``inf`` for infinity); null, and Slurm's unset markers
  (NO_VAL, INFINITE and their 64-bit forms), print as empty cells;
- FairShare under Fair Tree only for users; LevelFS empty for ``Fairshare=parent``.
"""

from __future__ import annotations

import math
from typing import TextIO

import polars as pl

_HEADER = ["Account", "User", "RawShares", "NormShares", "RawUsage", "NormUsage"]
_HEADER += ["EffectvUsage", "FairShare"]
# what print_fields_double treats as "no value"
_UNSET = {float(0xFFFFFFFE), float(0xFFFFFFFF), float(0xFFFFFFFFFFFFFFFE), float(2**64 - 1)}


def _number(value: float | None) -> str:
    if value is None or value in _UNSET:
        return ""
    if math.isnan(value):
        return "nan"
    return f"{value:f}"


def build_sshare(factors: pl.DataFrame, *, algorithm: str) -> list[str]:
    """Return the lines ``sshare -a -l -P`` prints for ``factors`` (one cluster), header first.

    ``algorithm`` is ``fair_tree`` or ``classic``; ``factors`` is a ``FACTORS`` frame.
    """
    if algorithm not in ("fair_tree", "classic"):
        raise ValueError(f"unknown algorithm {algorithm!r}")
    clusters = factors.get_column("cluster").unique().to_list()
    if len(clusters) > 1:
        raise ValueError(f"sshare shows one cluster at a time, got {sorted(clusters)}")
    fair_tree = algorithm == "fair_tree"
    lines = ["|".join(_HEADER + (["LevelFS"] if fair_tree else []))]
    for row in factors.iter_rows(named=True):
        is_user = bool(row["user"])
        is_root = row["parent_account"] is None and not is_user
        if is_root or (row["raw_shares"] is None and not row["shares_parent"]):
            raw_shares = ""
        elif row["shares_parent"]:
            raw_shares = "parent"
        else:
            raw_shares = str(row["raw_shares"])
        usage = row["raw_usage"]
        cells = [
            " " * row["depth"] + row["account"],
            row["user"] or "",
            raw_shares,
            _number(row["norm_shares"]),
            str(math.trunc(usage)) if usage is not None and math.isfinite(usage) else "0",
            _number(row["norm_usage"]),
            _number(row["effective_usage"]),
            _number(row["fairshare"]) if is_user or not fair_tree else "",
        ]
        if fair_tree:
            cells.append("" if row["shares_parent"] else _number(row["level_fs"]))
        lines.append("|".join(cells))
    return lines


def write_sshare(lines: list[str], stream: TextIO) -> None:
    """Write ``lines`` to ``stream``, one per line, as sshare does."""
    for line in lines:
        stream.write(line + "\n")
