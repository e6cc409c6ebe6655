"""Slurm's ``sacct --parsable2`` output turned into runs, steps and quarantined records.

``parse_sacct`` is pure: the caller reads the text (a file, or what ``sacct`` printed) and this
module parses it column-wise with polars: lines become one string column, fields are split out
of it, and every conversion is an expression over a whole column. Values that repeat a lot
(AllocTRES, NodeList) are parsed once per distinct value and joined back.

One bad record never stops a batch: a line with the wrong number of fields, a value that does
not convert, an unknown state or a missing required value is quarantined with its line number,
field and reason, and the lines beside it land.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import polars as pl

from models import frames
from models.errors import ParseError, SourceUnavailable
from models.hostlist import expand_hostlist

# The fields fairledger asks sacct for (``sacct --format``); JobName, the one free-text field,
# is last, so a ``|`` inside it is recovered.
SACCT_FORMAT: tuple[str, ...] = (
    "JobID", "JobIDRaw", "Cluster", "Partition", "QOS", "Account", "User", "Submit",
    "Eligible", "Start", "End", "Elapsed", "ElapsedRaw", "Timelimit", "ExitCode", "State",
    "NNodes", "NCPUS", "ReqMem", "AllocTRES", "NodeList", "Reservation", "JobName",
)  # fmt: skip
# Every state, so that jobs which never became eligible are listed too (slurm-lab.md).
SACCT_STATES = "BF,CA,CD,DL,F,NF,OOM,PD,PR,R,RQ,RS,RV,S,TO"

# ``sacct --helpformat`` (Slurm 20.11 to 25.05); a header line names some of these.
KNOWN_FIELDS: tuple[str, ...] = (
    "Account", "AdminComment", "AllocCPUS", "AllocGRES", "AllocNodes", "AllocTRES", "AssocID",
    "AveCPU", "AveCPUFreq", "AveDiskRead", "AveDiskWrite", "AvePages", "AveRSS", "AveVMSize",
    "BlockID", "Cluster", "Comment", "Constraints", "ConsumedEnergy", "ConsumedEnergyRaw",
    "Container", "CPUTime", "CPUTimeRAW", "DBIndex", "DerivedExitCode", "Elapsed",
    "ElapsedRaw", "Eligible", "End", "ExitCode", "Extra", "FailedNode", "Flags", "GID", "Group",
    "JobID", "JobIDRaw", "JobName", "Layout", "Licenses", "MaxDiskRead", "MaxDiskReadNode",
    "MaxDiskReadTask", "MaxDiskWrite", "MaxDiskWriteNode", "MaxDiskWriteTask", "MaxPages",
    "MaxPagesNode", "MaxPagesTask", "MaxRSS", "MaxRSSNode", "MaxRSSTask", "MaxVMSize",
    "MaxVMSizeNode", "MaxVMSizeTask", "McsLabel", "MinCPU", "MinCPUNode", "MinCPUTask",
    "NCPUS", "NNodes", "NodeList", "NTasks", "OriginalSLUID", "Partition", "Planned",
    "PlannedCPU", "PlannedCPURAW", "Priority", "QOS", "QOSRAW", "QOSREQ", "Reason",
    "ReqCPUFreq", "ReqCPUFreqGov", "ReqCPUFreqMax", "ReqCPUFreqMin", "ReqCPUS", "ReqGRES",
    "ReqMem", "ReqNodes", "ReqTRES", "Reservation", "ReservationId", "Reserved", "ResvCPU",
    "ResvCPURAW", "Restarts", "SLUID", "Start", "State", "StdErr", "StdIn", "StdOut", "Submit",
    "SubmitLine", "Suspended", "SystemComment", "SystemCPU", "Timelimit", "TimelimitRaw",
    "TotalCPU", "TRESUsageInAve", "TRESUsageInMax", "TRESUsageInMaxNode", "TRESUsageInMaxTask",
    "TRESUsageInMin", "TRESUsageInMinNode", "TRESUsageInMinTask", "TRESUsageInTot",
    "TRESUsageOutAve", "TRESUsageOutMax", "TRESUsageOutMaxNode", "TRESUsageOutMaxTask",
    "TRESUsageOutMin", "TRESUsageOutMinNode", "TRESUsageOutMinTask", "TRESUsageOutTot", "UID",
    "User", "UserCPU", "WCKey", "WCKeyID", "WorkDir",
)  # fmt: skip
_CANONICAL = {name.lower(): name for name in KNOWN_FIELDS}
# Fields a user writes freely; a ``|`` in one of them splits the line into too many pieces.
FREE_TEXT = frozenset(
    {"jobname", "reason", "comment", "admincomment", "systemcomment", "constraints", "extra",
     "submitline", "workdir", "stdout", "stderr", "stdin"}
)  # fmt: skip
# The fields this parser reads (lower case); any other field is ignored.
_USED = (
    "jobid", "jobidraw", "cluster", "partition", "qos", "account", "user", "submit", "eligible",
    "start", "end", "elapsed", "elapsedraw", "timelimit", "timelimitraw", "exitcode", "state",
    "nnodes", "ncpus", "allocnodes", "alloccpus", "alloctres", "nodelist", "reservation",
    "jobname",
)  # fmt: skip

STATE_CODES = {
    "BF": "BOOT_FAIL", "CA": "CANCELLED", "CD": "COMPLETED", "DL": "DEADLINE", "F": "FAILED",
    "NF": "NODE_FAIL", "OOM": "OUT_OF_MEMORY", "PD": "PENDING", "PR": "PREEMPTED",
    "R": "RUNNING", "RQ": "REQUEUED", "RS": "RESIZING", "RV": "REVOKED", "S": "SUSPENDED",
    "TO": "TIMEOUT",
}  # fmt: skip
BASE_STATES = frozenset(STATE_CODES.values())
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
NULL_TIMES = ("", "Unknown", "None")
NO_LIMIT = ("", "UNLIMITED", "Partition_Limit", "NONE", "INVALID")
_MB = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}
_SIZE = {"": 1.0, "K": 1024.0, "M": 1024.0**2, "G": 1024.0**3, "T": 1024.0**4, "P": 1024.0**5}

_JOB_ID = r"^(\d+)(?:_(\d+|\[[0-9,%:\-]+\]))?(?:\+(\d+))?(?:\.([^\s.]+))?$"
_JOB_ID_RAW = r"^\d+(?:\.[^\s.]+)?$"
_DURATION = r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?$"
_STATE = r"^([A-Z_]+)(?: by (\d+))?$"
_TRES_ITEM = r"^([^=]+)=([0-9]+(?:\.[0-9]+)?)([KMGTP]?)$"
_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


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


@dataclass(frozen=True)
class _Check:
    field: str  # the sacct field reported in quarantine
    bad: pl.Expr  # true where a line is refused for this field
    reason: pl.Expr  # why; evaluated on refused lines only


def parse_sacct(
    text: str,
    *,
    source: str,
    fields: Sequence[str] | None = None,
    cluster: str | None = None,
    tz: str = "UTC",
) -> SacctBatch:
    """Return the runs, steps and quarantined lines of ``sacct --parsable2`` output.

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
    checks = _checks(names, cluster_given=bool(cluster), tz=tz)
    parsed = (
        table.lazy()
        .join(_tres_table(table["r_alloctres"]).lazy(), on="r_alloctres", how="left",
              maintain_order="left")
        .join(_node_table(table["r_nodelist"]).lazy(), on="r_nodelist", how="left",
              maintain_order="left")
        .with_columns(_typed(names, cluster, tz))
        .with_columns(_derived())
        .with_columns(_keys())
        .with_columns(pl.any_horizontal([c.bad.fill_null(False) for c in checks]).alias("_bad"))
        .with_columns(pl.lit(source).alias("source"), pl.lit("slurm").alias("scheduler"))
    )  # fmt: skip
    # Only the output columns are filtered: copying the wide frame costs more than parsing.
    good = ~pl.col("_bad")
    runs, steps, refused = pl.collect_all(
        [
            parsed.filter(good & ~pl.col("_is_step"))
            .filter(pl.col("run_key").is_last_distinct())
            .select(*frames.RUNS),
            parsed.filter(good & pl.col("_is_step"))
            .filter(pl.col("step_key").is_last_distinct())
            .select(*frames.STEPS),
            parsed.filter(pl.col("_bad")).select(_refused(checks, source)),
        ]
    )
    return SacctBatch(
        runs=frames.conform(runs, frames.RUNS),
        steps=frames.conform(steps, frames.STEPS),
        quarantine=frames.conform(refused, frames.QUARANTINE),
        lines_read=lines.height,
    )


def _empty_batch() -> SacctBatch:
    return SacctBatch(
        runs=frames.empty(frames.RUNS),
        steps=frames.empty(frames.STEPS),
        quarantine=frames.empty(frames.QUARANTINE),
        lines_read=0,
    )


def _data_lines(text: str) -> pl.DataFrame:
    """Return the non-blank lines as ``line_no`` (1-based, physical) and ``line``."""
    lines = pl.DataFrame({"line": text.split("\n")}, schema={"line": pl.String})
    lines = lines.with_row_index("line_no", offset=1).with_columns(pl.col("line_no").cast(pl.Int64))
    if "\r" in text:
        lines = lines.with_columns(pl.col("line").str.strip_suffix("\r"))
    return lines.filter(pl.col("line").str.strip_chars() != "")


def _is_header(line: str) -> bool:
    """Return whether ``line`` is a header: all field names, at least one of them sacct's.

    Data lines never qualify (their JobID is numeric); unknown names are newer sacct fields.
    """
    names = [n.strip() for n in line.split("|")]
    if len(names) > 1 and names[-1] == "":
        names.pop()  # --parsable ends every line with a delimiter
    return all(_HEADER_NAME.fullmatch(n) for n in names) and any(
        n.lower() in _CANONICAL for n in names
    )


def _header(
    lines: pl.DataFrame, fields: Sequence[str] | None, source: str
) -> tuple[list[str], pl.DataFrame]:
    """Return the lower-case field names and the data lines without header lines."""
    first = lines["line"][0]
    if _is_header(first):
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
    missing = [_CANONICAL[n] for n in required if n not in names]
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
            count.alias("_pieces"),
            (count >= n if free_at is not None else count == n).alias("_shape_ok"),
            *(column(c) for c in _USED),
        )
        .collect()
    )


def _tres_table(alloc_tres: pl.Series) -> pl.DataFrame:
    """Return, per distinct AllocTRES text, the TRES list and the counts runs carry.

    Memory-like TRES (mem, vmem, fs/*, bb/*) with a unit are converted to MB; any other TRES
    with a unit is multiplied out (``K`` = 1024). ``_tres_error`` is the first bad item.
    """
    distinct = pl.DataFrame({"r_alloctres": alloc_tres.unique()}).drop_nulls().with_row_index("_id")
    items = (
        distinct.with_columns(pl.col("r_alloctres").str.split(",").alias("_item"))
        .explode("_item")
        .filter(pl.col("r_alloctres") != "")
        .with_columns(pl.col("_item").str.extract_groups(_TRES_ITEM).alias("_g"))
        .with_columns(
            pl.col("_g").struct.field("1").str.strip_chars().str.to_lowercase().alias("name"),
            pl.col("_g").struct.field("2").cast(pl.Float64).alias("_value"),
            pl.col("_g").struct.field("3").alias("_unit"),
        )
    )
    memory_like = pl.col("name").is_in(["mem", "vmem"]) | pl.col("name").str.contains("^(fs|bb)/")
    scale = (
        pl.when(memory_like)
        .then(pl.col("_unit").replace_strict(_MB, return_dtype=pl.Float64))
        .otherwise(pl.col("_unit").replace_strict(_SIZE, return_dtype=pl.Float64))
    )
    items = items.with_columns((pl.col("_value") * scale).alias("count"))
    typed_gpu = pl.col("name").str.starts_with("gres/gpu:")

    def first(name: str) -> pl.Expr:
        return pl.col("count").filter(pl.col("name") == name).first()

    per_value = items.group_by("_id").agg(
        pl.struct("name", "count").alias("tres"),
        pl.col("_item").filter(pl.col("name").is_null()).first().alias("_tres_error"),
        first("cpu").alias("_tres_cpu"),
        first("node").alias("_tres_node"),
        first("mem").alias("alloc_mem_mb"),
        first("billing").alias("billing"),
        pl.coalesce(first("gres/gpu"), pl.col("count").filter(typed_gpu).sum()).alias("_gpus"),
        pl.col("name").filter(typed_gpu).unique().alias("_gpu_types"),
    )
    only_type = pl.col("_gpu_types").list.first().str.strip_prefix("gres/gpu:")
    return distinct.join(per_value, on="_id", how="left").select(
        "r_alloctres",
        pl.col("tres").fill_null(pl.lit([], frames.RUNS["tres"])),
        "_tres_error",
        "_tres_cpu",
        "_tres_node",
        "alloc_mem_mb",
        "billing",
        pl.col("_gpus").fill_null(0.0),
        pl.when(pl.col("_gpu_types").list.len() == 1).then(only_type).alias("gpu_type"),
    )


def _node_table(node_lists: pl.Series) -> pl.DataFrame:
    """Return, per distinct NodeList text, the expanded nodes or why they cannot be."""
    values = node_lists.unique().drop_nulls().to_list()
    expanded: list[list[str] | None] = []
    errors: list[str | None] = []
    for value in values:
        try:
            expanded.append(expand_hostlist(value))
            errors.append(None)
        except ValueError as exc:
            expanded.append(None)
            errors.append(str(exc))
    return pl.DataFrame(
        {"r_nodelist": values, "nodes": expanded, "_node_error": errors},
        schema={"r_nodelist": pl.String, "nodes": pl.List(pl.String), "_node_error": pl.String},
    )


def _raw(name: str) -> pl.Expr:
    return pl.col(f"r_{name}")


def _text(name: str) -> pl.Expr:
    """Return raw column ``name`` with empty values as null."""
    return pl.when(_raw(name) != "").then(_raw(name))


def _integer(name: str) -> pl.Expr:
    return _raw(name).str.to_integer(strict=False)


def _local_time(name: str) -> pl.Expr:
    return _raw(name).str.to_datetime(TIME_FORMAT, strict=False, time_unit="us")


def _time(name: str, tz: str) -> pl.Expr:
    """Return the UTC time in raw column ``name``, read as local time in ``tz``."""
    local = _local_time(name)
    if tz == "UTC":
        return local.dt.replace_time_zone("UTC")
    return local.dt.replace_time_zone(
        tz, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def _seconds(name: str) -> pl.Expr:
    """Return the seconds of a ``[D-][HH:]MM:SS`` duration in raw column ``name``."""
    g = _raw(name).str.extract_groups(_DURATION)
    days, hours, minutes, seconds = (g.struct.field(str(i)).cast(pl.Int64) for i in range(1, 5))
    return days.fill_null(0) * 86400 + hours.fill_null(0) * 3600 + minutes * 60 + seconds


def _typed(names: list[str], cluster: str | None, tz: str) -> list[pl.Expr]:
    """Return the expressions that turn raw string columns into typed ones."""
    job_id = pl.coalesce(_text("jobid"), _text("jobidraw"))
    job_id_raw = pl.coalesce(_text("jobidraw"), _text("jobid"))
    ids = job_id.str.extract_groups(_JOB_ID)
    array_task, het_offset = ids.struct.field("2"), ids.struct.field("3")
    base = ids.struct.field("1").cast(pl.Int64, strict=False)
    state = _raw("state").str.extract_groups(_STATE)
    elapsed = _integer("elapsedraw") if "elapsedraw" in names else _seconds("elapsed")
    limit_field = "timelimitraw" if "timelimitraw" in names else "timelimit"
    limit = _integer(limit_field) * 60 if limit_field == "timelimitraw" else _seconds(limit_field)
    return [
        (pl.lit(cluster, pl.String) if cluster else _text("cluster")).alias("cluster"),
        job_id.alias("job_id"),
        job_id_raw.alias("job_id_raw"),
        job_id_raw.str.contains(".", literal=True).fill_null(False).alias("_is_step"),
        job_id_raw.str.extract(r"^([^.]*)").alias("_run_id_raw"),
        job_id_raw.str.extract(r"\.(.*)$").alias("step_id"),
        base.alias("_id_base"),
        pl.when(array_task.is_not_null()).then(base).alias("array_job_id"),
        array_task.alias("array_task_id"),
        pl.when(het_offset.is_not_null()).then(base).alias("het_job_id"),
        het_offset.cast(pl.Int32, strict=False).alias("het_offset"),
        *(_text(c).alias(c) for c in ("user", "account", "partition", "qos", "reservation")),
        _text("exitcode").alias("exit_code"),
        _text("jobname").alias("job_name"),
        _text("nodelist").alias("nodelist"),
        state.struct.field("1").replace(STATE_CODES).alias("state"),
        state.struct.field("2").cast(pl.Int64, strict=False).alias("state_by_uid"),
        *(_time(c, tz).alias(f"{c}_at") for c in ("submit", "eligible", "start", "end")),
        elapsed.alias("_elapsed"),
        pl.when(~_raw(limit_field).is_in(NO_LIMIT)).then(limit).alias("timelimit_s"),
        pl.coalesce("_tres_cpu", _integer("alloccpus"), _integer("ncpus"))
        .cast(pl.Int32, strict=False)
        .alias("alloc_cpus"),
        pl.coalesce("_tres_node", _integer("allocnodes"), _integer("nnodes"))
        .cast(pl.Int32, strict=False)
        .alias("alloc_nodes"),
        pl.col("_gpus").cast(pl.Int32, strict=False).alias("alloc_gpus"),
        pl.col("line_no").alias("source_line"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
    ]


def _derived() -> list[pl.Expr]:
    """Return elapsed time, and for each line the row of its allocation line."""
    return [
        pl.coalesce("_elapsed", (pl.col("end_at") - pl.col("start_at")).dt.total_seconds()).alias(
            "elapsed_s"
        ),
        # A step belongs to the nearest allocation line above it (see parse_sacct).
        pl.when(~pl.col("_is_step"))
        .then(pl.col("_row"))
        .forward_fill()
        .over("cluster", "_run_id_raw")
        .alias("_alloc_row"),
        pl.when(~pl.col("_is_step") & pl.col("_shape_ok"))
        .then(pl.col("submit_at").dt.epoch("s"))
        .alias("_alloc_submit_s"),
    ]


def _keys() -> list[pl.Expr]:
    run_submit = pl.col("_alloc_submit_s").gather(pl.col("_alloc_row"))
    return [
        run_submit.alias("_run_submit_s"),
        pl.format("{}/{}/{}", "cluster", "_run_id_raw", run_submit).alias("run_key"),
        pl.format("{}/{}/{}", "cluster", "job_id_raw", run_submit).alias("step_key"),
    ]


def _checks(names: list[str], *, cluster_given: bool, tz: str) -> list[_Check]:
    """Return the reasons a line is refused, ordered as their fields are in the header."""
    alloc = ~pl.col("_is_step")
    missing = pl.lit("missing required value")

    def found(name: str, expected: str) -> pl.Expr:
        return pl.format(f"expected {expected}, found '{{}}'", _raw(name))

    def filled(name: str) -> pl.Expr:
        return _raw(name).is_not_null() & (_raw(name) != "")

    id_field = "JobID" if "jobid" in names else "JobIDRaw"
    checks = [
        _Check(
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
        _Check(
            id_field,
            pl.col("_is_step") & pl.col("_run_submit_s").is_null(),
            pl.format("no allocation line with a Submit time for step '{}' above it", "job_id"),
        ),
        _Check(
            "State",
            ~pl.col("state").is_in(sorted(BASE_STATES)).fill_null(False),
            pl.when(filled("state")).then(pl.format("unknown state '{}'", _raw("state")))
            .otherwise(missing),
        ),
        _Check("AllocTRES", pl.col("_tres_error").is_not_null(),
               pl.format("expected NAME=NUMBER[KMGTP] items, found '{}'", "_tres_error")),
        _Check("NodeList", pl.col("_node_error").is_not_null(), pl.col("_node_error")),
    ]  # fmt: skip
    if "jobid" in names and "jobidraw" in names:
        checks.append(
            _Check(
                "JobIDRaw",
                ~_raw("jobidraw").str.contains(_JOB_ID_RAW),
                pl.when(filled("jobidraw"))
                .then(found("jobidraw", "a numeric job id with an optional .step"))
                .otherwise(missing),
            )
        )
    if not cluster_given:
        checks.append(_Check("Cluster", pl.col("cluster").is_null(), missing))
    for name in ("account", "user"):
        checks.append(_Check(_CANONICAL[name], alloc & pl.col(name).is_null(), missing))
    for name in ("submit", "eligible", "start", "end"):
        unset = _raw(name).is_in(NULL_TIMES).fill_null(True)
        # An allocation's Submit keys its run; the other times may be unknown.
        required = alloc & unset if name == "submit" else pl.lit(False)
        reason = (
            pl.when(unset)
            .then(missing)
            .when(_local_time(name).is_not_null())
            .then(pl.format(f"'{{}}' does not exist in time zone {tz}", _raw(name)))
            .otherwise(found(name, "a time YYYY-MM-DDTHH:MM:SS"))
        )
        bad = (~unset & pl.col(f"{name}_at").is_null()) | required
        checks.append(_Check(_CANONICAL[name], bad, reason))
    for name in ("nnodes", "ncpus", "alloccpus", "allocnodes", "elapsedraw"):
        value = (
            _integer(name) if name == "elapsedraw" else _integer(name).cast(pl.Int32, strict=False)
        )
        checks.append(
            _Check(_CANONICAL[name], filled(name) & value.is_null(), found(name, "an integer"))
        )
    if "elapsedraw" not in names:
        checks.append(
            _Check("Elapsed", filled("elapsed") & pl.col("_elapsed").is_null(),
                   found("elapsed", "a duration [D-]HH:MM:SS"))
        )  # fmt: skip
    limit = "timelimitraw" if "timelimitraw" in names else "timelimit"
    checks.append(
        _Check(_CANONICAL[limit], ~_raw(limit).is_in(NO_LIMIT) & pl.col("timelimit_s").is_null(),
               found(limit, "minutes or UNLIMITED" if limit == "timelimitraw"
                     else "a duration [D-]HH:MM:SS or UNLIMITED"))
    )  # fmt: skip

    def position(check: _Check) -> int:
        lower = check.field.lower()
        return names.index(lower) if lower in names else len(names)

    # A line split into the wrong number of fields is refused for that alone.
    shape_ok = pl.col("_shape_ok")
    misshapen = _Check(
        "", ~shape_ok, pl.format("expected {} fields, found {}", pl.lit(len(names)), "_pieces")
    )
    return [misshapen] + [
        _Check(c.field, shape_ok & c.bad, c.reason) for c in sorted(checks, key=position)
    ]


def _refused(checks: list[_Check], source: str) -> list[pl.Expr]:
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
        pl.coalesce(_text("jobid"), _text("jobidraw")).alias("record_id"),
        pl.coalesce(
            [pl.when(f).then(pl.lit(c.field)) for f, c in zip(flags, checks, strict=True)]
        ).alias("field"),
        pl.when(others != "")
        .then(pl.format("{} (also bad: {})", reason, others))
        .otherwise(reason)
        .alias("reason"),
        pl.col("line").alias("raw"),
    ]


# Running sacct: the argv is built by a pure function, the command runs through an injected
# runner (tests pass a fake executable, the real-Slurm suite the real sacct).


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
