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
    KNOWN_FIELDS,
    NO_LIMIT,
    NULL_TIMES,
    SACCT_FORMAT,
    SACCT_STATES,
    STATE_CODES,
    TIME_FORMAT,
    is_header,
)
from ingest.sources.sacct_split import data_lines, decode_text, header, split
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
    read = data_lines(text)
    if read.frame.is_empty():
        return _empty_batch()
    names, lines = header(read.frame, fields, source)
    _check_required(names, cluster, source)
    if lines.is_empty():
        return _empty_batch()
    table = split(read.with_frame(lines), names)
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


def _check_required(names: list[str], cluster: str | None, source: str) -> None:
    required = ["state", "account", "user", "submit"] + ([] if cluster else ["cluster"])
    missing = [CANONICAL[n] for n in required if n not in names]
    if "jobidraw" not in names and "jobid" not in names:
        missing.insert(0, "JobIDRaw")
    if missing:
        hint = " (or pass the cluster name)" if "Cluster" in missing else ""
        raise ParseError(f"{source}: sacct fields missing: {', '.join(missing)}{hint}")
