"""``sreport``-style reports from runs: same report names, columns and units as Slurm's.

Usage is the part of each run's ``[start_at, end_at]`` inside the report window ``[start, end)``,
exact to the second, times the run's count of the TRES (``cpu``: alloc_cpus, ``gres/gpu``:
alloc_gpus, ``mem``: alloc_mem_mb, ``node``: alloc_nodes, ``billing``: the billing sacct shows,
anything else: its count in AllocTRES). A run still running (no ``end_at``) counts to ``end``.

Where this differs from sreport (see docs/reports.md): sreport reads slurmdbd's hourly roll-up,
so it sees nothing of the current hour and nothing not yet rolled up; we read the runs. We do
not know a cluster's down, planned-down, idle or planned (reserved) time, which sreport takes
from node events and reservations: ``Utilization`` reports only what runs allocated, plus idle
and reported time when a capacity is given. ``-t percent`` is of the cluster's reported time
when the capacity is known (as sreport does) and of the report's own total otherwise.

``build_*`` return numeric frames in TRES-seconds (``used_s``); ``in_units`` turns one into
sreport's columns and units; ``format_parsable``, ``format_text`` and ``banner`` print it.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

UNITS = {"seconds": 1, "minutes": 60, "hours": 3600}
UNIT_NAMES = {"seconds": "Seconds", "minutes": "Minutes", "hours": "Hours"}
DEFAULT_GROUPING = (50, 250, 500, 1000)

_COUNTS = {"cpu": "alloc_cpus", "gres/gpu": "alloc_gpus", "mem": "alloc_mem_mb"}
_COUNTS |= {"node": "alloc_nodes", "billing": "billing"}


def run_columns(tres: str) -> tuple[str, ...]:
    """Return the run columns the reports need for ``tres``."""
    count = _COUNTS.get(tres, "tres")
    return ("cluster", "account", "user", "alloc_cpus", "start_at", "end_at", count)


def _count(tres: str, columns: list[str]) -> pl.Expr:
    column = _COUNTS.get(tres)
    if column is not None and column in columns:
        return pl.col(column).cast(pl.Float64).fill_null(0.0)
    if "tres" not in columns:
        return pl.lit(0.0)
    return (
        pl.col("tres")
        .list.eval(pl.element().filter(pl.element().struct.field("name") == tres))
        .list.eval(pl.element().struct.field("count"))
        .list.sum()
        .cast(pl.Float64)
        .fill_null(0.0)
    )


def window_usage(runs: pl.LazyFrame, *, start: datetime, end: datetime, tres: str) -> pl.LazyFrame:
    """Return ``runs`` with ``window_s`` (seconds inside the window) and ``used_s`` added.

    ``used_s`` is the TRES count times ``window_s`` (TRES-seconds); rows with no time inside
    ``[start, end)`` are dropped.
    """
    if end <= start:
        raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    columns = runs.collect_schema().names()
    lo = pl.lit(start).cast(pl.Datetime("us", "UTC"))
    hi = pl.lit(end).cast(pl.Datetime("us", "UTC"))
    begin = pl.max_horizontal(pl.col("start_at"), lo)
    finish = pl.min_horizontal(pl.col("end_at").fill_null(hi), hi)
    seconds = ((finish - begin).dt.total_microseconds() // 1_000_000).clip(lower_bound=0)
    return (
        runs.filter(pl.col("start_at").is_not_null())
        .with_columns(seconds.alias("window_s"), _count(tres, columns).alias("__count"))
        .filter(pl.col("window_s") > 0)
        .with_columns((pl.col("__count") * pl.col("window_s")).alias("used_s"))
        .drop("__count")
    )


_UTIL_COLUMNS = ["cluster", "allocated_s", "down_s", "planned_down_s", "idle_s", "planned_s"]
_UTIL_COLUMNS += ["reported_s"]


def build_cluster_utilization(
    runs: pl.LazyFrame,
    *,
    start: datetime,
    end: datetime,
    tres: str = "cpu",
    cluster_capacity: dict[str, float] | None = None,
) -> pl.DataFrame:
    """Return one row per cluster: ``cluster, allocated_s, down_s, planned_down_s, idle_s,
    planned_s, reported_s`` in TRES-seconds.

    ``cluster_capacity`` is each cluster's count of the TRES (e.g. its CPUs); without it idle
    and reported are null. Down, planned down and planned are always null: runs do not tell.
    """
    used = (
        window_usage(runs, start=start, end=end, tres=tres)
        .group_by("cluster")
        .agg(pl.col("used_s").sum().alias("allocated_s"))
        .collect()
    )
    secs = (end - start).total_seconds()
    capacity = cluster_capacity or {}
    clusters = sorted(set(used.get_column("cluster").to_list()) | set(capacity))
    allocated = dict(zip(used["cluster"], used["allocated_s"], strict=True))
    rows = []
    for name in clusters:
        alloc = float(allocated.get(name, 0.0))
        reported = capacity[name] * secs if name in capacity else None
        rows.append(
            {
                "cluster": name,
                "allocated_s": alloc,
                "down_s": None,
                "planned_down_s": None,
                "idle_s": None if reported is None else max(reported - alloc, 0.0),
                "planned_s": None,
                "reported_s": reported,
            }
        )
    schema = {"cluster": pl.String, **{c: pl.Float64 for c in _UTIL_COLUMNS[1:]}}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _user_usage(runs: pl.LazyFrame, *, start: datetime, end: datetime, tres: str) -> pl.DataFrame:
    return (
        window_usage(runs, start=start, end=end, tres=tres)
        .group_by("cluster", "account", "user")
        .agg(pl.col("used_s").sum())
        .collect()
    )


def _parents(assocs: pl.DataFrame | None, cluster: str, accounts: set[str]) -> dict[str, str]:
    """Return each account's parent (root's is ""); accounts unknown to ``assocs`` sit at root."""
    parents: dict[str, str] = {}
    if assocs is not None:
        rows = assocs.filter((pl.col("cluster") == cluster) & (pl.col("user") == ""))
        for row in rows.iter_rows(named=True):
            parents[row["account"]] = row["parent_account"] or ""
    parents.setdefault("root", "")
    for account in accounts:
        parents.setdefault(account, "root")
    return parents


def _tree_rows(
    own: dict[str, dict[str, float]], parents: dict[str, str]
) -> list[dict[str, object]]:
    """Return account and user rows in tree order, accounts with their subtree's total."""
    children: dict[str, list[str]] = {}
    for account, parent in parents.items():
        if account != "root":
            children.setdefault(parent, []).append(account)
    totals: dict[str, float] = {}

    def total(account: str) -> float:
        if account not in totals:
            kids = children.get(account, [])
            totals[account] = sum(own.get(account, {}).values()) + sum(total(k) for k in kids)
        return totals[account]

    rows: list[dict[str, object]] = []

    def walk(account: str, depth: int) -> None:
        if total(account) <= 0 and account != "root":
            return
        rows.append({"account": account, "login": "", "depth": depth, "used_s": total(account)})
        for user, value in sorted(own.get(account, {}).items()):
            if value > 0:
                rows.append(
                    {"account": account, "login": user, "depth": depth + 1, "used_s": value}
                )
        for kid in sorted(children.get(account, [])):
            walk(kid, depth + 1)

    walk("root", 0)
    return rows


def build_account_utilization_by_user(
    runs: pl.LazyFrame,
    assocs: pl.DataFrame | None,
    *,
    start: datetime,
    end: datetime,
    tres: str = "cpu",
) -> pl.DataFrame:
    """Return sreport's AccountUtilizationByUser rows: ``cluster, account, login, depth, used_s``.

    Per cluster, in the account tree's order (root first; under an account its users, then its
    sub-accounts, each by name): an account row (``login`` "") carries its subtree's total, a
    user row its own usage in that account. Only accounts and users with usage appear (root
    always). ``assocs`` is an ``ASSOCIATIONS`` frame; None puts every account under root.
    """
    usage = _user_usage(runs, start=start, end=end, tres=tres)
    rows: list[dict[str, object]] = []
    for cluster in sorted(set(usage.get_column("cluster").to_list())):
        own: dict[str, dict[str, float]] = {}
        for row in usage.filter(pl.col("cluster") == cluster).iter_rows(named=True):
            own.setdefault(row["account"], {})[row["user"]] = float(row["used_s"])
        parents = _parents(assocs, cluster, set(own))
        rows += [{"cluster": cluster, **r} for r in _tree_rows(own, parents)]
    schema: dict[str, pl.DataType] = {"cluster": pl.String(), "account": pl.String()}
    schema |= {"login": pl.String(), "depth": pl.Int32(), "used_s": pl.Float64()}
    return pl.DataFrame(rows, schema=schema, orient="row")


def build_user_utilization_by_account(
    runs: pl.LazyFrame, *, start: datetime, end: datetime, tres: str = "cpu"
) -> pl.DataFrame:
    """Return sreport's UserUtilizationByAccount rows: ``cluster, login, account, used_s``.

    One row per user and account with usage, per cluster the largest first (ties by login,
    then account).
    """
    return (
        _user_usage(runs, start=start, end=end, tres=tres)
        .filter(pl.col("used_s") > 0)
        .rename({"user": "login"})
        .select("cluster", "login", "account", "used_s")
        .sort(["cluster", "used_s", "login", "account"], descending=[False, True, False, False])
    )


def build_user_top_usage(
    runs: pl.LazyFrame,
    *,
    start: datetime,
    end: datetime,
    tres: str = "cpu",
    top: int = 10,
    group: bool = False,
) -> pl.DataFrame:
    """Return sreport's user TopUsage rows: ``cluster, login, account, used_s``.

    The ``top`` largest per cluster. As sreport: one row per user and account unless ``group``,
    which sums a user's accounts into one row, ``account`` their names joined by commas.
    """
    usage = build_user_utilization_by_account(runs, start=start, end=end, tres=tres)
    if group:
        usage = (
            usage.sort("account")
            .group_by("cluster", "login")
            .agg(pl.col("account").str.join(","), pl.col("used_s").sum())
            .sort(["cluster", "used_s", "login"], descending=[False, True, False])
        )
    return (
        usage.group_by("cluster", maintain_order=True)
        .head(top)
        .select("cluster", "login", "account", "used_s")
    )


def size_labels(grouping: list[int] | tuple[int, ...], *, tres: str = "cpu") -> list[str]:
    """Return sreport's size column headers, e.g. ``0-49 CPUs`` ... ``>= 1000 CPUs``."""
    name = "CPUs" if tres == "cpu" else f"{tres.upper()}s"
    edges = [0, *grouping]
    labels = [f"{lo}-{hi - 1} {name}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">= {edges[-1]} {name}"]


def build_job_sizes_by_account(
    runs: pl.LazyFrame,
    assocs: pl.DataFrame | None,
    *,
    start: datetime,
    end: datetime,
    tres: str = "cpu",
    grouping: list[int] | tuple[int, ...] = DEFAULT_GROUPING,
    flat: bool = False,
) -> pl.DataFrame:
    """Return sreport's job SizesByAccount: ``cluster, account`` and one TRES-seconds column
    per size bin (named as ``size_labels``).

    A run falls in the bin of its CPU count (``alloc_cpus``); its usage is of ``tres``. Rows are
    root's children (their subtrees summed), or every account with usage when ``flat``.
    """
    if list(grouping) != sorted(set(grouping)) or not grouping or grouping[0] <= 0:
        raise ValueError(f"grouping {list(grouping)} must be increasing positive CPU counts")
    labels = size_labels(grouping, tres=tres)
    cpus = pl.col("alloc_cpus").fill_null(0)
    bin_expr = pl.lit(0, dtype=pl.Int32)
    for i, edge in enumerate(grouping, start=1):
        bin_expr = pl.when(cpus >= edge).then(pl.lit(i, dtype=pl.Int32)).otherwise(bin_expr)
    used = (
        window_usage(runs, start=start, end=end, tres=tres)
        .with_columns(bin_expr.alias("bin"))
        .group_by("cluster", "account", "bin")
        .agg(pl.col("used_s").sum())
        .collect()
    )
    rows: list[dict[str, object]] = []
    for cluster in sorted(set(used.get_column("cluster").to_list())):
        mine = used.filter(pl.col("cluster") == cluster)
        parents = _parents(assocs, cluster, set(mine.get_column("account").to_list()))

        def top_of(account: str, parents: dict[str, str] = parents) -> str:
            seen = set()
            while parents.get(account, "root") not in ("root", "") and account not in seen:
                seen.add(account)
                account = parents[account]
            return account

        bins: dict[str, list[float]] = {}
        for row in mine.iter_rows(named=True):
            key = row["account"] if flat else top_of(row["account"])
            bins.setdefault(key, [0.0] * len(labels))[row["bin"]] += float(row["used_s"])
        for account in sorted(bins):
            rows.append(
                {
                    "cluster": cluster,
                    "account": account,
                    **dict(zip(labels, bins[account], strict=True)),
                }
            )
    schema = {"cluster": pl.String, "account": pl.String, **{label: pl.Float64 for label in labels}}
    return pl.DataFrame(rows, schema=schema, orient="row")


REPORTS = ("utilization", "account_by_user", "user_by_account", "top_usage", "job_sizes")
_USER_HEADERS = ["Cluster", "Login", "Proper Name", "Account", "Used", "Energy"]


def _convert(values: pl.Expr, *, unit: str, total_s: float | None) -> pl.Expr:
    if unit == "percent":
        if not total_s:
            return pl.lit(0.0, dtype=pl.Float64) * values
        return (values * 100.0 / total_s).round(2)
    return (values // UNITS[unit]).cast(pl.Int64)


def in_units(
    df: pl.DataFrame,
    report: str,
    *,
    unit: str = "minutes",
    total_s: float | None = None,
    tres: str = "cpu",
) -> pl.DataFrame:
    """Return a ``build_*`` frame with sreport's column headers and values in ``unit``.

    ``unit`` is seconds, minutes or hours (whole numbers, truncated as sreport does) or percent
    (of ``total_s`` TRES-seconds, two decimals). Proper Name is empty (we keep no GECOS) and
    Energy 0 (runs carry no energy). Job sizes add ``% of cluster``: each account's share of
    the report's total.
    """
    if unit not in (*UNITS, "percent"):
        raise ValueError(f"unknown unit {unit!r}; one of seconds, minutes, hours, percent")
    tres_col = [pl.lit(tres).alias("TRES Name")] if tres != "cpu" else []
    if report == "utilization":
        names = ["Allocated", "Down", "PLND Down", "Idle", "Planned", "Reported"]
        return df.select(
            pl.col("cluster").alias("Cluster"),
            *tres_col,
            *(
                _convert(pl.col(c), unit=unit, total_s=total_s).alias(n)
                for c, n in zip(_UTIL_COLUMNS[1:], names, strict=True)
            ),
        )
    used = _convert(pl.col("used_s"), unit=unit, total_s=total_s).alias("Used")
    blank = pl.lit("").alias("Proper Name")
    energy = pl.lit(0, dtype=pl.Int64).alias("Energy")
    if report == "account_by_user":
        return df.select(
            pl.col("cluster").alias("Cluster"),
            pl.col("account").alias("Account"),
            pl.col("login").alias("Login"),
            blank,
            *tres_col,
            used,
            energy,
        )
    if report in ("user_by_account", "top_usage"):
        return df.select(
            pl.col("cluster").alias("Cluster"),
            pl.col("login").alias("Login"),
            blank,
            pl.col("account").alias("Account"),
            *tres_col,
            used,
            energy,
        )
    if report == "job_sizes":
        bins = [c for c in df.columns if c not in ("cluster", "account")]
        row_total = pl.sum_horizontal(*(pl.col(c) for c in bins)) if bins else pl.lit(0.0)
        grand = float(df.select(bins).sum_horizontal().sum()) if bins and df.height else 0.0
        share = (row_total * 100.0 / grand).round(2) if grand else pl.lit(0.0) * row_total
        return df.select(
            pl.col("cluster").alias("Cluster"),
            pl.col("account").alias("Account"),
            *(_convert(pl.col(c), unit=unit, total_s=total_s).alias(c) for c in bins),
            share.alias("% of cluster"),
        )
    raise ValueError(f"unknown report {report!r}; one of {', '.join(REPORTS)}")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}%" if math.isfinite(value) else str(value)
    return str(value)


def format_parsable(df: pl.DataFrame) -> list[str]:
    """Return ``df`` as ``sreport -P`` prints it: a header, then ``|``-separated rows.

    No trailing ``|``; percentages (floats) as ``12.34%``; unknown values empty.
    """
    return ["|".join(df.columns), *("|".join(_text(v) for v in row) for row in df.iter_rows())]


def format_text(df: pl.DataFrame, *, indent: str | None = None) -> list[str]:
    """Return ``df`` as sreport's aligned table: header, dashes, rows (numbers right-aligned).

    ``indent`` names a column to indent one space per ``depth`` (pass the depths as the
    frame's ``depth`` column; it is not printed), as ``sreport ... tree`` does.
    """
    shown = [c for c in df.columns if c != "depth"]
    cells = []
    for row in df.iter_rows(named=True):
        line = [_text(row[c]) for c in shown]
        if indent is not None and "depth" in row:
            i = shown.index(indent)
            line[i] = " " * int(row["depth"] or 0) + line[i]
        cells.append(line)
    numeric = [df.schema[c].is_numeric() for c in shown]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(shown)]

    def join(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return " ".join(parts).rstrip()

    return [join(shown), join(["-" * w for w in widths]), *(join(r) for r in cells)]


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def banner(
    report: str,
    *,
    start: datetime,
    end: datetime,
    unit: str = "minutes",
    tres: str = "cpu",
    top: int = 10,
) -> list[str]:
    """Return the lines sreport prints above a report: rule, title and period, units, rule.

    The period ends one second before ``end``, as sreport prints it.
    """
    period = f"{_stamp(start)} - {_stamp(end - timedelta(seconds=1))}"
    secs = f"({int((end - start).total_seconds())} secs)"
    titles = {
        "utilization": f"Cluster Utilization {period}",
        "account_by_user": f"Cluster/Account/User Utilization {period} {secs}",
        "user_by_account": f"Cluster/User/Account Utilization {period} {secs}",
        "top_usage": f"Top {top} Users {period} {secs}",
        "job_sizes": f"Job Sizes {period} {secs}",
    }
    if report not in titles:
        raise ValueError(f"unknown report {report!r}; one of {', '.join(REPORTS)}")
    what = "Percentage of Total" if unit == "percent" else UNIT_NAMES[unit]
    if report == "job_sizes":
        units = f"Time reported in {what}"
    elif unit == "percent":
        units = f"Usage reported in {what}"
    else:
        units = f"Usage reported in {'CPU' if tres == 'cpu' else 'TRES'} {what}"
    rule = "-" * 80
    return [rule, titles[report], units, rule]


def to_json(df: pl.DataFrame) -> dict[str, object]:
    """Return ``df`` in the ``{data, count}`` envelope."""
    return {"data": df.to_dicts(), "count": df.height}


def write_sreport(lines: list[str], path: Path) -> None:
    """Write ``lines`` to ``path``, one per line."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
