"""Billing rates of runs: what one second of each run costs in fair-share usage.

Slurm charges fair-share usage with the *float* billing of a job, recomputed here from the run's
TRES and its partition's ``TRESBillingWeights`` (``sacct`` shows it truncated to an integer):

- summed over the weighted TRES, or with the cluster's ``MAX_TRES`` flag the largest weighted
  node-bound TRES (``models.policy.NODE_TRES_PREFIXES``) plus the sum of the global ones;
- the ``billing`` TRES itself is never weighted (it is the result);
- a partition without weights bills the CPU count (Slurm's default, ``CPU=1``);
- a run with an empty or unknown partition takes the cluster's default partition's weights,
  or the CPU count when that has none.

A QOS ``UsageFactor`` multiplies the rate; an unknown or empty QOS counts 1.0.

Every run of a requeued job counts, as in Slurm. With the policy's
``fairshare.count_requeued_runs = false`` only the last run (latest ``submit_at``) of each
``(cluster, job_id_raw)`` counts: the earlier runs get a usage factor of 0.
"""

from __future__ import annotations

import polars as pl

from models.frames import TRES_ITEM
from models.policy import NODE_TRES_PREFIXES, Policy

_NAME = pl.element().struct.field("name")
_COUNT = pl.element().struct.field("count")


def _is_node_tres(name: str) -> bool:
    return any(name == p or (p.endswith("/") and name.startswith(p)) for p in NODE_TRES_PREFIXES)


def _tres_count(name: str) -> pl.Expr:
    """Return the run's count of one TRES, null when the ``tres`` list lacks it."""
    tres = pl.col("tres").cast(pl.List(TRES_ITEM))  # an all-null column arrives as Null
    return tres.list.eval(_COUNT.filter(_NAME.eq(name))).list.first()


_SEP = "\x1f"  # joins cluster and partition into one lookup key


def _key(cluster: pl.Expr, partition: pl.Expr) -> pl.Expr:
    return pl.concat_str([cluster.fill_null(""), partition.fill_null("")], separator=_SEP)


def _tables(
    policy: Policy,
) -> tuple[dict[str, str | None], dict[str, str | None], dict[str, dict[str, float]], set[str]]:
    """Return the lookups of ``usage_rates``, all keyed by ``cluster<SEP>partition``.

    - partition key -> the key of the weights that apply, or None for the CPU count;
    - cluster -> the key of its default partition's weights, or None;
    - TRES name -> {weights key -> weight};
    - the clusters with MAX_TRES.
    """
    applies: dict[str, str | None] = {}
    defaults: dict[str, str | None] = {}
    weights: dict[str, dict[str, float]] = {}
    for cluster in policy.clusters:
        defaults.setdefault(cluster.name, None)
        for part in cluster.partitions:
            key = f"{cluster.name}{_SEP}{part.name}"
            if key in applies:
                continue  # the first definition wins, as in slurm.conf
            table = {k: v for k, v in part.billing_weights().items() if k != "billing"}
            applies[key] = key if table else None
            for name, weight in table.items():
                weights.setdefault(name, {})[key] = weight
            if part.default and table and defaults[cluster.name] is None:
                defaults[cluster.name] = key
    max_tres = {c.name for c in policy.clusters if c.max_tres}
    return applies, defaults, weights, max_tres


def usage_rates(runs: pl.LazyFrame, policy: Policy) -> pl.LazyFrame:
    """Return ``runs`` with ``billing_rate``, ``usage_factor`` and ``usage_rate`` added.

    ``billing_rate`` is the float billing (billing units per second of the run), recomputed from
    ``tres`` and the partition's weights; ``usage_factor`` is the QOS UsageFactor (1.0 when the
    QOS is unknown or empty); ``usage_rate = billing_rate * usage_factor``, the fair-share usage
    one second of the run adds. ``runs`` needs ``cluster``, ``partition``, ``qos`` and ``tres``;
    ``alloc_cpus``, when present, is the CPU count of a run whose ``tres`` lacks ``cpu``.
    Without ``count_requeued_runs`` it also needs ``job_id_raw`` and ``submit_at``.
    Expressions only (no joins), so the runs keep their order.
    """
    columns = runs.collect_schema().names()
    counted = pl.lit(True)
    if not policy.fairshare.count_requeued_runs:
        missing = sorted({"job_id_raw", "submit_at"} - set(columns))
        if missing:
            raise ValueError(f"count_requeued_runs = false needs the runs' {missing}")
        job = [pl.col("cluster"), pl.col("job_id_raw")]
        # a run without a job id or submit time cannot be matched: it counts
        counted = (pl.col("submit_at") == pl.col("submit_at").max().over(job)).fill_null(True)
    applies, defaults, weights, max_tres = _tables(policy)
    cluster = pl.col("cluster").cast(pl.String)  # an all-null column arrives as Null
    part_key = _key(cluster, pl.col("partition").cast(pl.String))
    key = (
        pl.when(part_key.is_in(list(applies)))
        .then(part_key.replace_strict(applies, default=None, return_dtype=pl.String))
        .otherwise(cluster.replace_strict(defaults, default=None, return_dtype=pl.String))
    )
    cpu = [_tres_count("cpu")]
    if "alloc_cpus" in columns:
        cpu.append(pl.col("alloc_cpus").cast(pl.Float64))
    cpu.append(pl.lit(0.0))
    weighted = {
        name: _tres_count(name).fill_null(0.0)
        * pl.col("__key").replace_strict(table, default=0.0, return_dtype=pl.Float64)
        for name, table in sorted(weights.items())
    }
    node = [w for n, w in weighted.items() if _is_node_tres(n)]
    glob = [w for n, w in weighted.items() if not _is_node_tres(n)]
    total = pl.sum_horizontal(*weighted.values()) if weighted else pl.lit(0.0)
    node_max = pl.max_horizontal(*node) if node else pl.lit(0.0)
    glob_sum = pl.sum_horizontal(*glob) if glob else pl.lit(0.0)
    billing = (
        pl.when(pl.col("__key").is_null())
        .then(pl.coalesce(cpu))
        .when(cluster.is_in(sorted(max_tres)))
        .then(node_max + glob_sum)
        .otherwise(total)
    )
    factors = {q.name: q.usage_factor for q in policy.qos}
    factor = (
        pl.col("qos").cast(pl.String).replace_strict(factors, default=1.0, return_dtype=pl.Float64)
    )
    return (
        runs.with_columns(key.alias("__key"))
        .with_columns(
            billing.cast(pl.Float64).alias("billing_rate"),
            pl.when(counted).then(factor.fill_null(1.0)).otherwise(0.0).alias("usage_factor"),
        )
        .select(
            *columns,
            "billing_rate",
            "usage_factor",
            (pl.col("billing_rate") * pl.col("usage_factor")).alias("usage_rate"),
        )
    )
