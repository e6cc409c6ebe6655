"""The column expressions that turn split sacct fields (raw strings ``r_<field>``) into typed
run and step columns, and the tables of values parsed once per distinct text (AllocTRES,
NodeList) that are joined back to the lines.
"""

from __future__ import annotations

import polars as pl

from ingest.sources.sacct_fields import (
    DURATION,
    JOB_ID,
    MB_SCALE,
    NO_LIMIT,
    SIZE_SCALE,
    STATE,
    STATE_CODES,
    TIME_FORMAT,
    TRES_ITEM,
)
from models import frames
from models.hostlist import EMPTY_HOSTLISTS, expand_hostlist


def tres_table(alloc_tres: pl.Series) -> pl.DataFrame:
    """Return, per distinct AllocTRES text, the TRES list and the counts runs carry.

    Memory-like TRES (mem, vmem, fs/*, bb/*) with a unit are converted to MB; any other TRES
    with a unit is multiplied out (``K`` = 1024). ``_tres_error`` is the first bad item.
    """
    distinct = pl.DataFrame({"r_alloctres": alloc_tres.unique()}).drop_nulls().with_row_index("_id")
    items = (
        distinct.with_columns(pl.col("r_alloctres").str.split(",").alias("_item"))
        .explode("_item")
        .filter(pl.col("r_alloctres") != "")
        .with_columns(pl.col("_item").str.extract_groups(TRES_ITEM).alias("_g"))
        .with_columns(
            pl.col("_g").struct.field("1").str.strip_chars().str.to_lowercase().alias("name"),
            pl.col("_g").struct.field("2").cast(pl.Float64).alias("_value"),
            pl.col("_g").struct.field("3").alias("_unit"),
        )
    )
    memory_like = pl.col("name").is_in(["mem", "vmem"]) | pl.col("name").str.contains("^(fs|bb)/")
    scale = (
        pl.when(memory_like)
        .then(pl.col("_unit").replace_strict(MB_SCALE, return_dtype=pl.Float64))
        .otherwise(pl.col("_unit").replace_strict(SIZE_SCALE, return_dtype=pl.Float64))
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


# Node lists in the forms sacct prints nearly always, expanded by polars: one host name, or a
# name and one bracket group of numbers and ascending ranges (``cn[0001-0004,0009]``). Every
# other form (several expressions, several groups, anything odd) goes to ``expand_hostlist``.
_HOST = r"[A-Za-z0-9._-]+"
_PLAIN_HOST = rf"^{_HOST}$"
_ONE_GROUP = rf"^({_HOST})\[([0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*)\]$"
_MAX_VECTOR_HOSTS = 100_000  # larger lists take the careful path (and its size limit)


def node_table(node_lists: pl.Series) -> pl.DataFrame:
    """Return, per distinct NodeList text, the expanded nodes (``nodes``) or why they cannot be
    (``_node_error``), as ``models.hostlist.expand_hostlist`` gives them."""
    schema: dict[str, pl.DataType] = {
        "r_nodelist": pl.String(),
        "nodes": pl.List(pl.String()),
        "_node_error": pl.String(),
    }
    values = pl.DataFrame({"r_nodelist": node_lists.unique().drop_nulls()})
    value = pl.col("r_nodelist")
    ordinary = ~value.is_in(sorted(EMPTY_HOSTLISTS))
    plain = values.filter(value.str.contains(_PLAIN_HOST) & ordinary).select(
        "r_nodelist",
        pl.concat_list(value).alias("nodes"),
        pl.lit(None, pl.String).alias("_node_error"),
    )
    grouped = _one_group_nodes(values.filter(value.str.contains(_ONE_GROUP) & ordinary))
    done = pl.concat([plain["r_nodelist"], grouped["r_nodelist"]])
    rest = values.filter(~value.is_in(done.implode())).to_series().to_list()
    expanded: list[list[str] | None] = []
    errors: list[str | None] = []
    for text in rest:
        try:
            expanded.append(expand_hostlist(text))
            errors.append(None)
        except ValueError as exc:
            expanded.append(None)
            errors.append(str(exc))
    careful = pl.DataFrame(
        {"r_nodelist": rest, "nodes": expanded, "_node_error": errors}, schema=schema
    )
    return pl.concat([plain, grouped, careful], how="vertical").cast(pl.Schema(schema))


def _one_group_nodes(values: pl.DataFrame) -> pl.DataFrame:
    """Return the hosts of ``name[ranges]`` node lists whose ranges ascend and stay small;
    others are left out (for ``expand_hostlist``). A range keeps its lower bound's padding."""
    groups = pl.col("r_nodelist").str.extract_groups(_ONE_GROUP)
    parts = (
        values.with_row_index("_v")
        .select(
            "_v",
            groups.struct.field("1").alias("_prefix"),
            groups.struct.field("2").str.split(",").alias("_part"),
        )
        .explode("_part")
        .with_columns(pl.col("_part").str.splitn("-", 2).alias("_bounds"))
        .with_columns(
            pl.col("_bounds").struct[0].alias("_lo_text"),
            pl.col("_bounds").struct[0].cast(pl.Int64, strict=False).alias("_lo"),
            pl.coalesce(pl.col("_bounds").struct[1], pl.col("_bounds").struct[0])
            .cast(pl.Int64, strict=False)
            .alias("_hi"),
        )
    )
    sane = parts.group_by("_v").agg(
        (
            pl.col("_lo").is_not_null()
            & pl.col("_hi").is_not_null()
            & (pl.col("_hi") >= pl.col("_lo"))
        )
        .all()
        .alias("_ok"),
        (pl.col("_hi") - pl.col("_lo") + 1).sum().alias("_hosts"),
    )
    keep = sane.filter(pl.col("_ok") & (pl.col("_hosts") <= _MAX_VECTOR_HOSTS)).select("_v")
    hosts = (
        parts.join(keep, on="_v", how="semi", maintain_order="left")
        .with_columns(pl.int_ranges("_lo", pl.col("_hi") + 1).alias("_n"))
        .explode("_n")
        .select(
            "_v",
            (
                pl.col("_prefix")
                + pl.col("_n").cast(pl.String).str.zfill(pl.col("_lo_text").str.len_chars())
            ).alias("_host"),
        )
        .group_by("_v", maintain_order=True)
        .agg(pl.col("_host").alias("nodes"))
    )
    return (
        values.with_row_index("_v")
        .join(hosts, on="_v", how="inner")
        .select("r_nodelist", "nodes", pl.lit(None, pl.String).alias("_node_error"))
    )


def raw(name: str) -> pl.Expr:
    return pl.col(f"r_{name}")


def text(name: str) -> pl.Expr:
    """Return raw column ``name`` with empty values as null."""
    return pl.when(raw(name) != "").then(raw(name))


def integer(name: str) -> pl.Expr:
    return raw(name).str.to_integer(strict=False)


def local_time(name: str) -> pl.Expr:
    return raw(name).str.to_datetime(TIME_FORMAT, strict=False, time_unit="us")


def utc_time(name: str, tz: str) -> pl.Expr:
    """Return the UTC time in raw column ``name``, read as local time in ``tz``."""
    local = local_time(name)
    if tz == "UTC":
        return local.dt.replace_time_zone("UTC")
    return local.dt.replace_time_zone(
        tz, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def seconds(name: str) -> pl.Expr:
    """Return the seconds of a ``[D-][HH:]MM:SS`` duration in raw column ``name``."""
    g = raw(name).str.extract_groups(DURATION)
    days, hours, minutes, seconds = (g.struct.field(str(i)).cast(pl.Int64) for i in range(1, 5))
    return days.fill_null(0) * 86400 + hours.fill_null(0) * 3600 + minutes * 60 + seconds


def limit_table(raw_columns: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Return, per distinct time-limit text (of TimelimitRaw, else Timelimit), its seconds
    (``timelimit_s``, null for no limit or a value that does not convert)."""
    field = "timelimitraw" if "timelimitraw" in names else "timelimit"
    limit = integer(field) * 60 if field == "timelimitraw" else seconds(field)
    return (
        raw_columns.select(raw(field).unique())
        .drop_nulls()
        .with_columns(pl.when(~raw(field).is_in(NO_LIMIT)).then(limit).alias("timelimit_s"))
    )


def typed_columns(
    names: list[str], cluster: str | None, tz: str, limits: pl.DataFrame
) -> list[list[pl.Expr]]:
    """Return the expressions that turn raw string columns into typed ones, in stages: each
    stage reads columns of the stages before it (so a regular expression runs once).
    ``limits`` is the ``limit_table`` of the lines."""
    job_id = pl.coalesce(text("jobid"), text("jobidraw"))
    job_id_raw = pl.coalesce(text("jobidraw"), text("jobid"))
    ids = pl.col("_ids")
    array_task, het_offset = ids.struct.field("2"), ids.struct.field("3")
    base = ids.struct.field("1").cast(pl.Int64, strict=False)
    state = pl.col("_state")
    elapsed = integer("elapsedraw") if "elapsedraw" in names else seconds("elapsed")
    limit_raw, limit_s = limits.get_column(limits.columns[0]), limits.get_column("timelimit_s")
    limit = (
        raw(limit_raw.name[2:]).replace_strict(limit_raw, limit_s, default=None)
        if limits.height
        else pl.lit(None, pl.Int64)
    )
    run_and_step = pl.col("job_id_raw").str.splitn(".", 2)
    first = [
        job_id.alias("job_id"),
        job_id_raw.alias("job_id_raw"),
        raw("state").str.extract_groups(STATE).alias("_state"),
    ]
    second = [
        pl.col("job_id").str.extract_groups(JOB_ID).alias("_ids"),
        pl.col("job_id_raw").str.contains(".", literal=True).fill_null(False).alias("_is_step"),
        run_and_step.struct[0].alias("_run_id_raw"),
        run_and_step.struct[1].alias("step_id"),
    ]
    third = [
        (pl.lit(cluster, pl.String) if cluster else text("cluster")).alias("cluster"),
        base.alias("_id_base"),
        pl.when(array_task.is_not_null()).then(base).alias("array_job_id"),
        array_task.alias("array_task_id"),
        pl.when(het_offset.is_not_null()).then(base).alias("het_job_id"),
        het_offset.cast(pl.Int32, strict=False).alias("het_offset"),
        *(text(c).alias(c) for c in ("user", "account", "partition", "qos", "reservation")),
        text("exitcode").alias("exit_code"),
        text("jobname").alias("job_name"),
        text("nodelist").alias("nodelist"),
        state.struct.field("1").replace(STATE_CODES).alias("state"),
        state.struct.field("2").cast(pl.Int64, strict=False).alias("state_by_uid"),
        *(utc_time(c, tz).alias(f"{c}_at") for c in ("submit", "eligible", "start", "end")),
        elapsed.alias("_elapsed"),
        limit.alias("timelimit_s"),
        pl.coalesce("_tres_cpu", integer("alloccpus"), integer("ncpus"))
        .cast(pl.Int32, strict=False)
        .alias("alloc_cpus"),
        pl.coalesce("_tres_node", integer("allocnodes"), integer("nnodes"))
        .cast(pl.Int32, strict=False)
        .alias("alloc_nodes"),
        pl.col("_gpus").cast(pl.Int32, strict=False).alias("alloc_gpus"),
        pl.col("line_no").alias("source_line"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
    ]
    return [first, second, third]


def derived_columns() -> list[pl.Expr]:
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


def key_columns() -> list[pl.Expr]:
    run_submit = pl.col("_alloc_submit_s").gather(pl.col("_alloc_row"))
    return [
        run_submit.alias("_run_submit_s"),
        pl.format("{}/{}/{}", "cluster", "_run_id_raw", run_submit).alias("run_key"),
        pl.format("{}/{}/{}", "cluster", "job_id_raw", run_submit).alias("step_key"),
    ]
