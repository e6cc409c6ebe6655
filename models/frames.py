"""Column names and dtypes of the frames every domain shares: runs, steps, quarantined records.

Times are UTC with microsecond precision and end in ``_at``; durations end in ``_s``;
memory is in megabytes (``_mb``). A frame's schema here is the contract between the parts:
parsers produce it, the store persists it, the models consume it. Each domain's own frames are
in its package: ``models.fairshare.frames``, ``models.money.frames``,
``models.compliance.frames``. ``conform`` casts any frame to its schema.
"""

from __future__ import annotations

import polars as pl
from polars._typing import PolarsDataType

from models.errors import SchemaMismatch

UTC_TIME = pl.Datetime("us", "UTC")

# One TRES of a run: name as Slurm spells it in lower case ("cpu", "mem", "node", "billing",
# "energy", "gres/gpu", "gres/gpu:a100", "license/foo"), count in the TRES's base unit
# (memory in MB, energy in joules, everything else a count).
TRES_ITEM = pl.Struct({"name": pl.String, "count": pl.Float64})

RUNS: dict[str, pl.DataType] = {
    "run_key": pl.String(),  # "<cluster>/<job_id_raw>/<submit epoch s>" (see ingest docs)
    "scheduler": pl.String(),  # "slurm", ...
    "cluster": pl.String(),
    "job_id": pl.String(),  # as the scheduler shows it: "123", "123_7", "123_[1-3]", "123+1"
    "job_id_raw": pl.String(),
    "array_job_id": pl.Int64(),
    "array_task_id": pl.String(),  # "7", or a pending range "[1-3,9]"
    "het_job_id": pl.Int64(),
    "het_offset": pl.Int32(),
    "user": pl.String(),
    "account": pl.String(),
    "partition": pl.String(),
    "qos": pl.String(),
    "state": pl.String(),  # base state: "COMPLETED", "CANCELLED", ...
    "state_by_uid": pl.Int64(),  # the uid of "CANCELLED by 1234"
    "exit_code": pl.String(),
    "submit_at": UTC_TIME,
    "eligible_at": UTC_TIME,
    "start_at": UTC_TIME,
    "end_at": UTC_TIME,
    "elapsed_s": pl.Int64(),
    "timelimit_s": pl.Int64(),
    "alloc_nodes": pl.Int32(),
    "alloc_cpus": pl.Int32(),
    "alloc_mem_mb": pl.Float64(),
    "alloc_gpus": pl.Int32(),
    "gpu_type": pl.String(),
    "tres": pl.List(TRES_ITEM),  # all of AllocTRES
    "billing": pl.Float64(),  # as the source reports it (sacct truncates to an integer)
    "nodelist": pl.String(),  # as the source gives it, e.g. "cn[001-004]"
    "nodes": pl.List(pl.String()),  # the node list expanded
    "reservation": pl.String(),
    "job_name": pl.String(),
    "source": pl.String(),  # file path or source name
    "source_line": pl.Int64(),  # line number in the source file (1-based), when there is one
}

# The largest size a run may have (docs/ingest.md#bounds): parsers quarantine a run beyond one
# (or with a size that is not a finite number) and charging leaves such a run unbilled (a store
# may hold one read before these bounds). No job comes near them: the largest machines have
# ~10^7 cores and ~10^10 MB of memory, and nothing runs for a century. Within them charging is
# exact: quantity x seconds is at most 2^40 x 3.2e9 < 3.5e21, so its Int128 product with a price
# and a QOS multiplier in millionths (``models.money.charges``) has room for a memory price of
# ~10^4 per GiB-hour and a CPU price of ~10^7 per CPU-hour at multiplier 1; charging also checks
# each product and leaves a run unbilled rather than let one overflow.
MAX_COUNT = 2**31 - 1  # CPUs, GPUs, nodes: the Int32 count columns
MAX_MEM_MB = 2**40  # 1 EiB, ~100 times the memory of today's largest machine
MAX_ELAPSED_S = 3_155_760_000  # 100 years of 365.25 days
MAX_TRES_COUNT = 2**53  # billing and every TRES count: beyond it a Float64 is not exact
BOUNDS_NOTE = "no job reaches it; see docs/ingest.md#bounds"  # ends a refusal's reason
RUN_BOUNDS: dict[str, int] = {
    "elapsed_s": MAX_ELAPSED_S,
    "alloc_nodes": MAX_COUNT,
    "alloc_cpus": MAX_COUNT,
    "alloc_mem_mb": MAX_MEM_MB,
    "alloc_gpus": MAX_COUNT,
    "billing": MAX_TRES_COUNT,
}


def beyond_bound(column: str) -> pl.Expr:
    """Return true where ``column``'s magnitude exceeds its ``RUN_BOUNDS`` entry or is not a
    finite number (NaN, ±inf); null where it is null."""
    return ~(pl.col(column).abs() <= RUN_BOUNDS[column])


STEPS: dict[str, pl.DataType] = {
    "step_key": pl.String(),  # "<cluster>/<job_id_raw of the step>/<submit epoch s>"
    "run_key": pl.String(),  # the run the step belongs to
    "cluster": pl.String(),
    "job_id": pl.String(),  # "123.batch", "123_7.0", "123+1.extern"
    "step_id": pl.String(),  # "batch", "extern", "0", ...
    "state": pl.String(),
    "exit_code": pl.String(),
    "start_at": UTC_TIME,
    "end_at": UTC_TIME,
    "elapsed_s": pl.Int64(),
    "alloc_nodes": pl.Int32(),
    "alloc_cpus": pl.Int32(),
    "tres": pl.List(TRES_ITEM),
    "nodelist": pl.String(),
    "job_name": pl.String(),
    "source": pl.String(),
    "source_line": pl.Int64(),
}

# A record a parser refused, with where it came from and why.
QUARANTINE: dict[str, pl.DataType] = {
    "source": pl.String(),
    "line_no": pl.Int64(),
    "record_id": pl.String(),  # JobID when it could be read
    "field": pl.String(),  # the offending field, or "" for a whole-line problem
    "reason": pl.String(),
    "raw": pl.String(),
}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Return an empty frame with the given schema."""
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Return ``df`` with exactly the schema's columns, in order and cast to its dtypes.

    Missing columns are added as nulls; extra columns are dropped. Struct fields are matched by
    name, whatever their order (a dict from JSON, a pydantic dump, another source's parser), at
    any depth of lists and structs; a struct's extra fields are dropped. A missing struct field or
    a value that cannot be cast raises :class:`SchemaMismatch` naming the column, the field path
    (``tres[].count``) and, for a value, the first one that does not fit.
    """
    have = df.schema
    exprs = []
    for name, dtype in schema.items():
        if name in have:
            exprs.append(_by_name(pl.col(name), have[name], dtype, name).alias(name))
        else:
            exprs.append(pl.lit(None).cast(dtype).alias(name))
    try:
        return df.select(exprs)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        for name, dtype in schema.items():
            if name in have:
                _raise_if_unfit(df.get_column(name), dtype, name)
        raise SchemaMismatch(f"the frame does not fit its schema: {exc}") from exc


def _field_names(dtype: PolarsDataType) -> list[str]:
    return [field.name for field in dtype.fields] if isinstance(dtype, pl.Struct) else []


def _by_name(expr: pl.Expr, have: PolarsDataType, want: PolarsDataType, path: str) -> pl.Expr:
    """Return ``expr`` (of dtype ``have``) cast to ``want``, struct fields matched by name."""
    if have == want or have == pl.Null():
        return expr.cast(want)
    if isinstance(want, pl.Struct):
        if not isinstance(have, pl.Struct):
            raise SchemaMismatch(f"{path}: is {have}, not a struct of {_field_names(want)}")
        fields = {field.name: field.dtype for field in have.fields}
        for field in want.fields:
            if field.name not in fields:
                raise SchemaMismatch(
                    f"{path}.{field.name}: missing (the struct has {list(fields)})"
                )
        if _field_names(have) == _field_names(want) and not any(
            isinstance(f.dtype, pl.Struct | pl.List) for f in want.fields
        ):
            return expr.cast(want)
        rebuilt = pl.struct(
            _by_name(expr.struct.field(f.name), fields[f.name], f.dtype, f"{path}.{f.name}").alias(
                f.name
            )
            for f in want.fields
        )
        return pl.when(expr.is_null()).then(pl.lit(None, dtype=want)).otherwise(rebuilt)
    if isinstance(want, pl.List):
        if not isinstance(have, pl.List | pl.Array):
            raise SchemaMismatch(f"{path}: is {have}, not a list of {want.inner}")
        inner = have.inner
        assert inner is not None and want.inner is not None
        if inner == want.inner or inner == pl.Null():
            return expr.cast(want)
        if isinstance(have, pl.Array):
            expr = expr.arr.to_list()
        return expr.list.eval(_by_name(pl.element(), inner, want.inner, f"{path}[]"))
    return expr.cast(want)


def _raise_if_unfit(values: pl.Series, want: PolarsDataType, path: str) -> None:
    """Raise :class:`SchemaMismatch` naming the field path and first value of ``values`` that
    cannot be cast to ``want``; return when they all can."""
    try:
        values.to_frame().select(_by_name(pl.col(values.name), values.dtype, want, path))
        return
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
        pass
    if isinstance(want, pl.Struct) and isinstance(values.dtype, pl.Struct):
        for field in want.fields:
            _raise_if_unfit(values.struct.field(field.name), field.dtype, f"{path}.{field.name}")
    elif isinstance(want, pl.List) and isinstance(values.dtype, pl.List | pl.Array):
        assert want.inner is not None
        items = values.to_frame().select(pl.col(values.name).explode()).to_series()
        _raise_if_unfit(items, want.inner, f"{path}[]")
    else:
        cast = values.cast(want, strict=False)
        bad = values.filter(cast.is_null() & values.is_not_null())
        shown = repr(bad[0]) if len(bad) else "a value"
        raise SchemaMismatch(f"{path}: {shown} cannot be read as {want}")
    raise SchemaMismatch(f"{path}: cannot be cast from {values.dtype} to {want}")
