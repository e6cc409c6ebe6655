"""Drift between fairledger's factors and what Slurm's ``sshare`` prints, per association.

``build_drift(ours, slurm, fair_tree=...)`` lines up a ``FACTORS`` frame with the rows of
``sshare -P`` output (as ``ingest.sources.sshare.parse_sshare`` returns them; the caller parses)
by (account, user), and by cluster when sshare names clusters.
For each of NormShares, RawUsage, EffectvUsage, FairShare and LevelFS it gives our value,
Slurm's and the difference (ours - Slurm's). Our values are taken as sshare would print them:
empty (null) where sshare prints nothing (FairShare of accounts under Fair Tree, LevelFS of
root and of ``Fairshare=parent`` associations, Slurm's unset markers).

How a difference is measured (``*_diff`` columns, and ``within_tolerance``):

- both empty: no difference (null); one empty, or one infinite and the other not: +inf;
  both +inf: 0;
- RawUsage: sshare truncates it to an integer, so Slurm's value s stands for [s, s + 1];
  ``raw_usage_rel`` is our value's distance to that interval relative to max(s, 1) (0 when
  ``trunc(ours) == s``); a value with decimals stands for itself. ``raw_usage_diff`` is the
  plain ours - s;
- an association on one side only: ``side`` is ``ours`` or ``slurm`` and its diffs are null;
  it is never within tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

METRICS: list[tuple[str, str]] = [
    ("NormShares", "norm_shares"),
    ("RawUsage", "raw_usage"),
    ("EffectvUsage", "effective_usage"),
    ("FairShare", "fairshare"),
    ("LevelFS", "level_fs"),
]
# what sshare prints as an empty cell (NO_VAL, INFINITE and their 64-bit forms)
_UNSET = {float(0xFFFFFFFE), float(0xFFFFFFFF), float(0xFFFFFFFFFFFFFFFE), float(2**64 - 1)}


def _shown(value: float | None) -> float | None:
    if value is None or value in _UNSET:
        return None
    return float(value)


def _diff(ours: float | None, slurm: float | None) -> float | None:
    if ours is None and slurm is None:
        return None
    if ours is None or slurm is None:
        return math.inf
    if math.isinf(ours) or math.isinf(slurm):
        return 0.0 if ours == slurm else math.inf
    if math.isnan(ours) or math.isnan(slurm):
        return 0.0 if math.isnan(ours) and math.isnan(slurm) else math.inf
    return ours - slurm


def _usage_rel(ours: float | None, slurm: float | None) -> float | None:
    """Distance of ``ours`` to the interval sshare's printed ``slurm`` stands for, relative."""
    if ours is None and slurm is None:
        return None
    if ours is None or slurm is None or math.isinf(ours) or math.isinf(slurm):
        return 0.0 if ours == slurm else math.inf
    if slurm == math.floor(slurm):  # printed truncated: it stands for [s, s + 1]
        gap = max(0.0, slurm - ours, ours - (slurm + 1.0))
    else:
        gap = abs(ours - slurm)
    return gap / max(abs(slurm), 1.0)


def _our_rows(ours: pl.DataFrame, fair_tree: bool) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in ours.iter_rows(named=True):
        is_user = bool(row["user"])
        is_root = row["parent_account"] is None and not is_user
        values = {
            "norm_shares": _shown(row["norm_shares"]),
            "raw_usage": _shown(row["raw_usage"]),
            "effective_usage": _shown(row["effective_usage"]),
            "fairshare": _shown(row["fairshare"]) if is_user or not fair_tree else None,
            "level_fs": (
                None
                if not fair_tree or is_root or row["shares_parent"]
                else _shown(row["level_fs"])
            ),
        }
        rows[(row["cluster"], row["account"], row["user"] or "")] = {
            "depth": row["depth"],
            **values,
        }
    return rows


def build_drift(ours: pl.DataFrame, slurm: pl.DataFrame, *, fair_tree: bool) -> pl.DataFrame:
    """Return one row per association: our value, Slurm's and the difference per metric.

    ``ours`` is a ``FACTORS`` frame; ``slurm`` the rows ``sshare -P`` printed (``-l`` or not,
    ``CLUSTER:`` lines allowed), parsed; ``fair_tree`` whether its header had LevelFS (sshare
    under Fair Tree; classic mode leaves it out). Without ``CLUSTER:`` lines (``cluster`` all
    null) the sshare rows are taken to be of the only cluster in ``ours`` (ValueError if it
    has several). Rows come in sshare's order, then ours that Slurm did not print. Columns:
    ``cluster, account, user, depth, side`` (``both``, ``ours``, ``slurm``), then
    ``<metric>_ours``, ``<metric>_slurm``, ``<metric>_diff`` for each metric and
    ``raw_usage_rel``.
    """
    clusters = ours.get_column("cluster").unique().to_list()
    if slurm.height and slurm.get_column("cluster").null_count() == slurm.height:
        if len(clusters) > 1:
            raise ValueError(
                f"the sshare output names no cluster and ours has {len(clusters)}: "
                f"{', '.join(sorted(clusters))}; pick one"
            )
        default = clusters[0] if clusters else ""
        slurm = slurm.with_columns(pl.lit(default).alias("cluster"))
    mine = _our_rows(ours, fair_tree)
    seen: set[tuple[str, str, str]] = set()
    out: list[dict[str, Any]] = []

    def emit(key: tuple[str, str, str], o: dict[str, Any] | None, s: dict[str, Any] | None) -> None:
        cluster, account, user = key
        side = "both" if o is not None and s is not None else ("ours" if o is not None else "slurm")
        depth = (s or o or {}).get("depth")
        record: dict[str, Any] = {
            "cluster": cluster,
            "account": account,
            "user": user,
            "depth": depth,
            "side": side,
        }
        for _, column in METRICS:
            ov = o.get(column) if o is not None else None
            sv = s.get(column) if s is not None else None
            record[f"{column}_ours"] = ov
            record[f"{column}_slurm"] = sv
            record[f"{column}_diff"] = _diff(ov, sv) if side == "both" else None
        record["raw_usage_rel"] = (
            _usage_rel(record["raw_usage_ours"], record["raw_usage_slurm"])
            if side == "both"
            else None
        )
        out.append(record)

    for row in slurm.iter_rows(named=True):
        key = (str(row["cluster"]), str(row["account"]), str(row["user"] or ""))
        seen.add(key)
        theirs = {column: row.get(column) for _, column in METRICS} | {"depth": row["depth"]}
        if not fair_tree:
            theirs["level_fs"] = None
        emit(key, mine.get(key), theirs)
    wanted = {str(c) for c in slurm.get_column("cluster").unique().to_list()}
    for key, values in mine.items():
        if key not in seen and key[0] in wanted:
            emit(key, values, None)
    schema: dict[str, pl.DataType] = {
        "cluster": pl.String(),
        "account": pl.String(),
        "user": pl.String(),
        "depth": pl.Int32(),
        "side": pl.String(),
    }
    for _, column in METRICS:
        for part in ("ours", "slurm", "diff"):
            schema[f"{column}_{part}"] = pl.Float64()
    schema["raw_usage_rel"] = pl.Float64()
    return pl.DataFrame(out, schema=schema)


@dataclass(frozen=True)
class MetricDrift:
    """The largest difference of one metric, and where."""

    metric: str
    max_abs_diff: float | None  # None when nothing was compared
    where: str  # "account/user" of the largest, "" if none
    within: bool


def summarize(
    drift: pl.DataFrame, *, tolerance: float = 1e-6, usage_tolerance: float = 1e-3
) -> list[MetricDrift]:
    """Return the largest |difference| per metric and whether each is within tolerance.

    ``tolerance`` bounds |ours - Slurm's| of NormShares, EffectvUsage, FairShare and LevelFS
    (sshare prints six decimals, so 1e-6 is "equal as printed" up to rounding);
    ``usage_tolerance`` bounds RawUsage's ``raw_usage_rel`` (0 means trunc(ours) equals
    Slurm's integer). RawUsage reports the largest relative distance.
    """
    both = drift.filter(pl.col("side") == "both")
    result: list[MetricDrift] = []
    for name, column in METRICS:
        diff_col = "raw_usage_rel" if column == "raw_usage" else f"{column}_diff"
        limit = usage_tolerance if column == "raw_usage" else tolerance
        values = both.select(
            pl.col(diff_col).abs().alias("d"),
            pl.when(pl.col("user") == "")
            .then(pl.col("account"))
            .otherwise(pl.concat_str([pl.col("account"), pl.col("user")], separator="/"))
            .alias("where"),
        ).drop_nulls("d")
        if values.height == 0:
            result.append(MetricDrift(name, None, "", True))
            continue
        worst = values.sort("d", descending=True, nulls_last=True).row(0, named=True)
        largest = float(worst["d"])
        result.append(MetricDrift(name, largest, str(worst["where"]), largest <= limit))
    return result


def within_tolerance(
    drift: pl.DataFrame, *, tolerance: float = 1e-6, usage_tolerance: float = 1e-3
) -> bool:
    """Return True when every association is on both sides and every metric is within."""
    if drift.filter(pl.col("side") != "both").height:
        return False
    return all(
        m.within for m in summarize(drift, tolerance=tolerance, usage_tolerance=usage_tolerance)
    )


def _fmt(value: float | None, digits: int = 6) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "nan"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def format_drift(drift: pl.DataFrame) -> list[str]:
    """Return the drift as an aligned text table, one line per association."""
    head = ["Account", "User"]
    sub = ["", ""]
    for name, column in METRICS:
        head += [name, "", ""]
        sub += ["ours", "slurm", "rel" if column == "raw_usage" else "diff"]
    rows = [head, sub]
    for row in drift.iter_rows(named=True):
        cells = [" " * (row["depth"] or 0) + row["account"], row["user"]]
        for _, column in METRICS:
            if column == "raw_usage":
                cells += [
                    _fmt(row["raw_usage_ours"], 2),
                    _fmt(row["raw_usage_slurm"], 0),
                    _fmt(row["raw_usage_rel"], 6),
                ]
            else:
                cells += [
                    _fmt(row[f"{column}_ours"]),
                    _fmt(row[f"{column}_slurm"]),
                    _fmt(row[f"{column}_diff"]),
                ]
        if row["side"] != "both":
            cells.append(f"(only in {row['side']})")
        rows.append(cells)
    width = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(head))]
    lines = []
    for r in rows:
        text = "  ".join(
            (c.ljust(width[i]) if i < 2 else c.rjust(width[i])) if i < len(width) else c
            for i, c in enumerate(r)
        )
        lines.append(text.rstrip())
    return lines


def format_summary(summary: list[MetricDrift], *, ok: bool) -> list[str]:
    """Return the summary lines: the largest difference per metric, then the verdict."""
    lines = []
    for m in summary:
        kind = "max rel" if m.metric == "RawUsage" else "max |diff|"
        value = "-" if m.max_abs_diff is None else f"{m.max_abs_diff:.3g}"
        where = f" ({m.where})" if m.where else ""
        mark = "ok" if m.within else "OUT OF TOLERANCE"
        lines.append(f"{m.metric:<13} {kind} {value}{where}  {mark}")
    lines.append("within tolerance" if ok else "DRIFT: outside tolerance")
    return lines
