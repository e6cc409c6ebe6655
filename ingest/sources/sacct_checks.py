"""Why a sacct line is refused: one check per field, and the quarantine columns of a refused line.

A check is a pair of expressions over the parsed wide frame (``ingest.sources.sacct``): where
the line is bad, and the reason, evaluated on refused lines only.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ingest.sources.sacct_fields import BASE_STATES, CANONICAL, JOB_ID_RAW, NO_LIMIT, NULL_TIMES
from ingest.sources.sacct_values import integer, local_time, raw, text
from models.frames import BOUNDS_NOTE, MAX_COUNT, MAX_ELAPSED_S, MAX_MEM_MB, MAX_TRES_COUNT


@dataclass(frozen=True)
class Check:
    field: str  # the sacct field reported in quarantine
    bad: pl.Expr  # true where a line is refused for this field
    reason: pl.Expr  # why; evaluated on refused lines only


def line_checks(names: list[str], *, cluster_given: bool, tz: str) -> list[Check]:
    """Return the reasons a line is refused, ordered as their fields are in the header."""
    alloc = ~pl.col("_is_step")
    missing = pl.lit("missing required value")

    def found(name: str, expected: str) -> pl.Expr:
        return pl.format(f"expected {expected}, found '{{}}'", raw(name))

    def filled(name: str) -> pl.Expr:
        return raw(name).is_not_null() & (raw(name) != "")

    id_field = "JobID" if "jobid" in names else "JobIDRaw"
    checks = [
        Check(
            id_field,
            pl.col("job_id").is_null() | pl.col("_id_base").is_null(),
            pl.when(pl.col("job_id").is_null())
            .then(missing)
            .otherwise(
                pl.format(
                    "expected a job id like 123, 123_7, 123_[1-3], 123+1 or 123.batch, found '{}'",
                    "job_id",
                )
            ),
        ),
        Check(
            id_field,
            pl.col("_is_step") & pl.col("_run_submit_s").is_null(),
            pl.format("no allocation line with a Submit time for step '{}' above it", "job_id"),
        ),
        Check(
            "State",
            ~pl.col("state").is_in(sorted(BASE_STATES)).fill_null(False),
            pl.when(filled("state")).then(pl.format("unknown state '{}'", raw("state")))
            .otherwise(missing),
        ),
        Check("AllocTRES", pl.col("_tres_error").is_not_null(),
               pl.format("expected NAME=NUMBER[KMGTP] items, found '{}'", "_tres_error")),
        Check("NodeList", pl.col("_node_error").is_not_null(), pl.col("_node_error")),
    ]  # fmt: skip
    if "jobid" in names and "jobidraw" in names:
        checks.append(
            Check(
                "JobIDRaw",
                ~raw("jobidraw").str.contains(JOB_ID_RAW),
                pl.when(filled("jobidraw"))
                .then(found("jobidraw", "a numeric job id with an optional .step"))
                .otherwise(missing),
            )
        )
    if not cluster_given:
        checks.append(Check("Cluster", pl.col("cluster").is_null(), missing))
    for name in ("account", "user"):
        checks.append(Check(CANONICAL[name], alloc & pl.col(name).is_null(), missing))
    for name in ("submit", "eligible", "start", "end"):
        unset = raw(name).is_in(NULL_TIMES).fill_null(True)
        # An allocation's Submit keys its run; the other times may be unknown.
        required = alloc & unset if name == "submit" else pl.lit(False)
        reason = (
            pl.when(unset)
            .then(missing)
            .when(local_time(name).is_not_null())
            .then(pl.format(f"'{{}}' does not exist in time zone {tz}", raw(name)))
            .otherwise(found(name, "a time YYYY-MM-DDTHH:MM:SS"))
        )
        bad = (~unset & pl.col(f"{name}_at").is_null()) | required
        checks.append(Check(CANONICAL[name], bad, reason))
    for name in ("nnodes", "ncpus", "alloccpus", "allocnodes", "elapsedraw"):
        value = (
            integer(name) if name == "elapsedraw" else integer(name).cast(pl.Int32, strict=False)
        )
        checks.append(
            Check(CANONICAL[name], filled(name) & value.is_null(), found(name, "an integer"))
        )
    if "elapsedraw" not in names:
        checks.append(
            Check("Elapsed", filled("elapsed") & pl.col("_elapsed").is_null(),
                   found("elapsed", "a duration [D-]HH:MM:SS"))
        )  # fmt: skip
    checks += _bound_checks(names, alloc)
    limit = "timelimitraw" if "timelimitraw" in names else "timelimit"
    checks.append(
        Check(CANONICAL[limit], ~raw(limit).is_in(NO_LIMIT) & pl.col("timelimit_s").is_null(),
               found(limit, "minutes or UNLIMITED" if limit == "timelimitraw"
                     else "a duration [D-]HH:MM:SS or UNLIMITED"))
    )  # fmt: skip

    def position(check: Check) -> int:
        lower = check.field.lower()
        return names.index(lower) if lower in names else len(names)

    # A line split into the wrong number of fields is refused for that alone.
    shape_ok = pl.col("_shape_ok")
    misshapen = Check(
        "", ~shape_ok, pl.format("expected {} fields, found {}", pl.lit(len(names)), "_pieces")
    )
    return [misshapen] + [
        Check(c.field, shape_ok & c.bad, c.reason) for c in sorted(checks, key=position)
    ]


def _bound_checks(names: list[str], alloc: pl.Expr) -> list[Check]:
    """Return the checks refusing an allocation line whose sizes are beyond
    ``models.frames.RUN_BOUNDS`` (docs/ingest.md#bounds); the TRES ones name AllocTRES."""
    elapsed = "ElapsedRaw" if "elapsedraw" in names else "Elapsed"
    sizes = [
        ("AllocTRES", "alloc_mem_mb", pl.col("alloc_mem_mb"), MAX_MEM_MB),
        ("AllocTRES", "billing", pl.col("billing"), MAX_TRES_COUNT),
        ("AllocTRES", "cpu", pl.col("_tres_cpu"), MAX_COUNT),
        ("AllocTRES", "node", pl.col("_tres_node"), MAX_COUNT),
        ("AllocTRES", "gres/gpu", pl.col("_gpus"), MAX_COUNT),
        (elapsed, "elapsed_s", pl.col("elapsed_s"), MAX_ELAPSED_S),
    ]
    checks = [
        Check(field, alloc & ~(value.abs() <= bound),
              pl.format(f"{name} {{}} is beyond the bound of {bound} ({BOUNDS_NOTE})", value))
        for field, name, value, bound in sizes
    ]  # fmt: skip
    count = pl.element().struct.field("count")
    beyond = pl.col("tres").list.eval(~(count.abs() <= MAX_TRES_COUNT)).list.any()
    named = pl.any_horizontal(c.bad.fill_null(False) for c in checks if c.field == "AllocTRES")
    reason = f"a TRES count is beyond the bound of {MAX_TRES_COUNT} ({BOUNDS_NOTE}): {{}}"
    checks.append(Check("AllocTRES", alloc & beyond & ~named, pl.format(reason, raw("alloctres"))))
    return checks


def refused_columns(checks: list[Check], source: str) -> list[pl.Expr]:
    """Return the QUARANTINE columns of a refused line: its first bad field, and the others."""
    flags = [c.bad.fill_null(False) for c in checks]
    first = pl.coalesce([pl.when(f).then(pl.lit(i)) for i, f in enumerate(flags)])
    others = pl.concat_str(
        [
            pl.when(f & (first != i)).then(pl.lit(c.field))
            for i, (f, c) in enumerate(zip(flags, checks, strict=True))
        ],
        separator=", ",
        ignore_nulls=True,
    )
    reason = pl.coalesce([pl.when(f).then(c.reason) for f, c in zip(flags, checks, strict=True)])
    return [
        pl.lit(source).alias("source"),
        pl.col("line_no"),
        pl.coalesce(text("jobid"), text("jobidraw")).alias("record_id"),
        pl.coalesce(
            [pl.when(f).then(pl.lit(c.field)) for f, c in zip(flags, checks, strict=True)]
        ).alias("field"),
        pl.when(others != "")
        .then(pl.format("{} (also bad: {})", reason, others))
        .otherwise(reason)
        .alias("reason"),
        pl.col("line").alias("raw"),
    ]
