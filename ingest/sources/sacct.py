"""Slurm's ``sacct --parsable2`` output turned into runs, steps and quarantined records.

``parse_sacct`` is pure: the caller reads the text (a file, or what ``sacct`` printed) and this
module parses it column-wise with polars: lines become one string column, fields are split out
of it, and every conversion is an expression over a whole column. Values that repeat a lot
(AllocTRES, NodeList) are parsed once per distinct value and joined back.

One bad record never stops a batch: a line with the wrong number of fields, a value that does
not convert, an unknown state or a missing required value is quarantined with its line number,
field and reason, and the lines beside it land.

The vocabulary (field names, states) is in ``sacct_fields``, the typed columns in
``sacct_values``, the checks in ``sacct_checks`` and running sacct in ``sacct_fetch``; their
public names are re-exported here.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from ingest.sources.sacct_checks import line_checks, refused_columns
from ingest.sources.sacct_fetch import (
    Runner,
    SacctPull,
    fetch_sacct,
    resolve_sacct_time,
    sacct_command,
    subprocess_runner,
)
from ingest.sources.sacct_fields import (
    BASE_STATES,
    CANONICAL,
    FREE_TEXT,
    KNOWN_FIELDS,
    NO_LIMIT,
    NULL_TIMES,
    SACCT_FORMAT,
    SACCT_STATES,
    STATE_CODES,
    TIME_FORMAT,
    USED,
    is_header,
)
from ingest.sources.sacct_values import (
    derived_columns,
    key_columns,
    limit_table,
    node_table,
    tres_table,
    typed_columns,
)
from models import frames
from models.errors import ParseError

__all__ = [
    "BASE_STATES",
    "KNOWN_FIELDS",
    "NO_LIMIT",
    "NULL_TIMES",
    "SACCT_FORMAT",
    "SACCT_STATES",
    "STATE_CODES",
    "TIME_FORMAT",
    "Runner",
    "SacctBatch",
    "SacctPull",
    "decode_text",
    "fetch_sacct",
    "is_header",
    "parse_sacct",
    "resolve_sacct_time",
    "sacct_command",
    "subprocess_runner",
]


# Whole-column expressions over a frame that fits in memory: polars' in-memory engine runs them
# with less overhead than the streaming one (its default since 2.0).
_ENGINE: Final = "in-memory"


@dataclass(frozen=True)
class SacctBatch:
    """What one sacct text parsed into.

    ``runs`` (``frames.RUNS``) and ``steps`` (``frames.STEPS``) hold one row per key, the last
    line of the text winning; ``quarantine`` (``frames.QUARANTINE``) one row per refused line;
    ``lines_read`` counts data lines (header and blank lines excluded).
    """

    runs: pl.DataFrame
    steps: pl.DataFrame
    quarantine: pl.DataFrame
    lines_read: int


def parse_sacct(
    text: str | bytes,
    *,
    source: str,
    fields: Sequence[str] | None = None,
    cluster: str | None = None,
    tz: str = "UTC",
) -> SacctBatch:
    """Return the runs, steps and quarantined lines of ``sacct --parsable2`` output.

    ``text`` may be the bytes of a file: they are read as ``decode_text`` reads them (polars
    splits UTF-8 bytes into lines itself, which saves a copy of a large file).

    The first non-blank line is the header if it is made of field names, some of them sacct's
    (any case); otherwise ``fields`` names the columns, and without it ParseError asks for
    ``--fields``. Repeated header lines (concatenated pulls) are skipped, unknown fields
    ignored, ``--parsable`` output (a trailing ``|``) accepted. A ``|`` inside the one
    free-text field of the header (JobName, Reason, Comment, ...) is kept in that field; with
    two free-text fields a line with extra pieces is ambiguous and quarantined.

    ``cluster`` replaces the Cluster field on every line (the name fairledger uses for the
    cluster) and is required when there is no Cluster field. Times are read in ``tz`` and
    returned in UTC; ``Unknown``, ``None`` and empty times are null. Elapsed and Timelimit are
    read only when ElapsedRaw and TimelimitRaw are absent; elapsed_s falls back to end - start.

    Keys: run_key is ``cluster/JobIDRaw/Submit epoch s``. sacct prints a step's own start as
    its Submit, so a step takes the Submit of the nearest allocation line above it with the
    same cluster and JobIDRaw (``123.batch`` belongs to ``123``); a step with none is
    quarantined. A key seen twice keeps its last line: later lines are newer revisions (with
    ``--duplicates`` an earlier run of a requeued job has its own Submit, hence its own key).
    """
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ParseError(f"{source}: unknown time zone {tz!r}") from exc
    lines = _data_lines(text)
    if lines.is_empty():
        return _empty_batch()
    names, lines = _header(lines, fields, source)
    _check_required(names, cluster, source)
    if lines.is_empty():
        return _empty_batch()
    table = _split(lines, names)
    checks = line_checks(names, cluster_given=bool(cluster), tz=tz)
    nodes = node_table(table["r_nodelist"])
    # The expanded node lists are joined to the runs only (steps do not keep them); every line
    # gets its node list's error, which few (usually no) node lists have.
    errors = nodes.filter(pl.col("_node_error").is_not_null())
    node_error = (
        pl.col("r_nodelist").replace_strict(
            errors["r_nodelist"], errors["_node_error"], default=None, return_dtype=pl.String
        )
        if errors.height
        else pl.lit(None, pl.String)
    )
    typed = typed_columns(names, cluster, tz, limit_table(table, names))
    # One pass computes every line's columns; runs, steps and refused lines are cut from it.
    parsed = (
        table.lazy()
        .join(tres_table(table["r_alloctres"]).lazy(), on="r_alloctres", how="left",
              maintain_order="left")
        .with_columns(node_error.alias("_node_error"))
        .with_columns(typed[0])
        .with_columns(typed[1])
        .with_columns(typed[2])
        .drop("_ids", "_state")  # read by the stage above only
        .with_columns(derived_columns())
        .with_columns(key_columns())
        .with_columns(pl.any_horizontal([c.bad.fill_null(False) for c in checks]).alias("_bad"))
        .with_columns(pl.lit(source).alias("source"), pl.lit("slurm").alias("scheduler"))
        .collect(engine=_ENGINE)
        .lazy()
    )  # fmt: skip
    good = ~pl.col("_bad")
    run_columns = [c for c in frames.RUNS if c != "nodes"]
    runs, steps, refused = pl.collect_all(
        [
            parsed.filter(good & ~pl.col("_is_step"))
            .filter(pl.col("run_key").is_last_distinct())
            .select(*run_columns, "r_nodelist")
            .join(nodes.lazy().select("r_nodelist", "nodes"), on="r_nodelist", how="left",
                  maintain_order="left")
            .select(*frames.RUNS),
            parsed.filter(good & pl.col("_is_step"))
            .filter(pl.col("step_key").is_last_distinct())
            .select(*frames.STEPS),
            parsed.filter(pl.col("_bad")).select(refused_columns(checks, source)),
        ],
        engine=_ENGINE,
    )  # fmt: skip
    return SacctBatch(
        runs=_conformed(runs, frames.RUNS),
        steps=_conformed(steps, frames.STEPS),
        quarantine=_conformed(refused, frames.QUARANTINE),
        lines_read=lines.height,
    )


def _conformed(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Return ``frame`` conformed to ``schema`` (as it is when it already has that schema)."""
    return frame if frame.schema == pl.Schema(schema) else frames.conform(frame, schema)


def _empty_batch() -> SacctBatch:
    return SacctBatch(
        runs=frames.empty(frames.RUNS),
        steps=frames.empty(frames.STEPS),
        quarantine=frames.empty(frames.QUARANTINE),
        lines_read=0,
    )


def decode_text(data: bytes) -> str:
    """Return ``data`` decoded as ``Path.read_text`` does: UTF-8 with replacement characters,
    universal newlines (``\\r\\n`` and ``\\r`` become ``\\n``)."""
    text = data.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


# A byte that sacct output never holds, given to polars' CSV reader as the field separator so
# that each line is one value.
_NO_SEPARATOR = b"\x1f"


def _byte_lines(data: bytes) -> pl.DataFrame | None:
    """Return the lines of ``data`` as a ``line`` column (an empty line is null), read by polars
    straight from the bytes; None when ``data`` needs ``decode_text`` (a carriage return, a
    byte-order mark, invalid UTF-8, or the separator byte)."""
    if b"\r" in data or _NO_SEPARATOR in data or data.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        return pl.read_csv(
            data,
            has_header=False,
            separator=_NO_SEPARATOR.decode(),
            quote_char=None,
            schema={"line": pl.String},
        )
    except pl.exceptions.ComputeError:  # not UTF-8
        return None


def _data_lines(text: str | bytes) -> pl.DataFrame:
    """Return the non-blank lines as ``line_no`` (1-based, physical) and ``line``."""
    if isinstance(text, bytes):
        read = _byte_lines(text)
        if read is None:
            return _data_lines(decode_text(text))
        lines = read
    else:
        # Split by polars, not str.split: no Python string per line.
        lines = (
            pl.DataFrame({"line": [text]}, schema={"line": pl.String})
            .select(pl.col("line").str.split("\n"))
            .explode("line")
        )
        if "\r" in text:
            lines = lines.with_columns(pl.col("line").str.strip_suffix("\r"))
    lines = lines.with_row_index("line_no", offset=1).with_columns(pl.col("line_no").cast(pl.Int64))
    return lines.filter(pl.col("line").str.strip_chars() != "")


def _header(
    lines: pl.DataFrame, fields: Sequence[str] | None, source: str
) -> tuple[list[str], pl.DataFrame]:
    """Return the lower-case field names and the data lines without header lines."""
    first = lines["line"][0]
    if is_header(first):
        header = first
        lines = lines.filter(pl.col("line") != header)
    elif fields is not None:
        header = "|".join(fields)
    else:
        raise ParseError(
            f"{source}: line {lines['line_no'][0]} is not a sacct header; for output written "
            "with --noheader, pass --fields with the sacct --format list, in order"
        )
    names = [n.strip().lower() for n in header.split("|")]
    if len(names) > 1 and names[-1] == "":
        names.pop()
        lines = lines.with_columns(pl.col("line").str.strip_suffix("|"))
    return names, lines


def _check_required(names: list[str], cluster: str | None, source: str) -> None:
    required = ["state", "account", "user", "submit"] + ([] if cluster else ["cluster"])
    missing = [CANONICAL[n] for n in required if n not in names]
    if "jobidraw" not in names and "jobid" not in names:
        missing.insert(0, "JobIDRaw")
    if missing:
        hint = " (or pass the cluster name)" if "Cluster" in missing else ""
        raise ParseError(f"{source}: sacct fields missing: {', '.join(missing)}{hint}")


def _split(lines: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Return the lines split into raw string columns ``r_<field>``, and ``_shape_ok``.

    With exactly one free-text field, a line with extra pieces gives them to that field:
    fields left of it are counted from the left, those right of it from the right. Any other
    line with too few or too many pieces has ``_shape_ok`` false and ``_pieces`` counted.
    """
    n = len(names)
    where = {name: i for i, name in reversed(list(enumerate(names)))}
    # Split at the first n delimiters: a line has exactly one piece per field (nearly all do)
    # when its last field is there and nothing is left over.
    # (The struct is a column first: read from an expression it would be split once per field.)
    fields = pl.col("_fields")
    split = lines.with_columns(pl.col("line").str.splitn("|", n + 1).alias("_fields")).select(
        "line_no",
        "line",
        pl.lit(n, pl.UInt32).alias("_pieces"),
        pl.lit(True).alias("_shape_ok"),
        *(
            (fields.struct[where[c]] if c in where else pl.lit(None, pl.String)).alias(f"r_{c}")
            for c in USED
        ),
        (fields.struct[n - 1].is_not_null() & fields.struct[n].is_null()).alias("_exact"),
    )
    if split["_exact"].all():
        return split.drop("_exact")
    # The few other lines are split again and their values written over the first split's.
    rows = split.select(pl.arg_where(~pl.col("_exact"))).to_series()
    odd = lines[rows].with_columns(
        (pl.col("line").str.count_matches("|", literal=True) + 1).cast(pl.UInt32).alias("_pieces")
    )
    fixed = _split_odd(odd, names)
    split = split.drop("_exact")
    return split.with_columns(
        split[c].scatter(rows, fixed[c]) for c in fixed.columns if c not in ("line_no", "line")
    )


def _split_odd(lines: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Return ``_split``'s columns for lines with more or fewer pieces than fields."""
    n = len(names)
    free = [i for i, name in enumerate(names) if name in FREE_TEXT]
    free_at = free[0] if len(free) == 1 else None
    parts = pl.col("_parts")
    count = parts.list.len()
    where = {name: i for i, name in reversed(list(enumerate(names)))}

    def column(name: str) -> pl.Expr:
        i = where.get(name)
        if i is None:
            value = pl.lit(None, pl.String)
        elif free_at is None or i < free_at:
            value = parts.list.get(i, null_on_oob=True)
        elif i > free_at:
            value = parts.list.get(i - n, null_on_oob=True)
        else:
            extra = parts.list.slice(free_at, (count - n + 1).clip(lower_bound=0)).list.join("|")
            value = pl.when(count == n).then(parts.list.get(i)).otherwise(extra)
        return value.alias(f"r_{name}")

    return (
        lines.lazy()
        .with_columns(pl.col("line").str.split("|").alias("_parts"))
        .select(
            "line_no",
            "line",
            "_pieces",
            (count >= n if free_at is not None else count == n).alias("_shape_ok"),
            *(column(c) for c in USED),
        )
        .collect()
    )
