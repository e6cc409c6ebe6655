"""Compliance verdicts: did a run charged to a regulated grant run only on certified nodes?

Pure: runs (with the ``grant_id`` of ``models.money.grants.assign_grants``) and the policy's grants
and registry in, one verdict per run charged to a grant with a regime out. No clock, no I/O.
Every node of a run, its partition and its cluster are checked against the registry in force
at the run's start and at its end (see ``docs/compliance.md`` for the rules in order):

- at the start, an interval ``[from, until)`` is in force when ``from <= start < until``;
- at the end, when ``from < end <= until`` (the run used the node up to, not at, its end), so a
  run ending at midnight is covered by a certification whose inclusive end is the day before
  (a run that ended as it started is checked at that instant with the start's rule).

The work is a handful of joins: node lists are exploded (one row per run and node), joined to
the inventory and to the certifications by (cluster, node) and by cluster for ``*`` node sets,
and folded back per run.
"""

from __future__ import annotations

import polars as pl

from models.compliance.frames import VERDICTS
from models.compliance.registry import (
    ANY,
    Compliance,
    certification_frame,
    certified_node_frame,
    inventory_frame,
)
from models.money.grants import Grant

APPROVED, VIOLATION, UNKNOWN = "approved", "violation", "unknown"

# Rules, in the order they are checked. Run-level first, then per node (in node-list order,
# each node at the start before the end).
RUN_RULES = (
    ("cluster_not_certified", VIOLATION),
    ("partition_not_certified", VIOLATION),
    ("no_start_time", UNKNOWN),
    ("no_end_time", UNKNOWN),
    ("no_partition", UNKNOWN),
    ("no_node_list", UNKNOWN),
)
NODE_RULES = (
    ("node_not_in_inventory", UNKNOWN),
    ("node_not_in_partition", VIOLATION),
    ("node_not_certified", VIOLATION),
    ("gpu_model_not_certified", VIOLATION),
    ("certification_not_valid_at_start", VIOLATION),
    ("certification_not_valid_at_end", VIOLATION),
)
RULES = dict(RUN_RULES + NODE_RULES)

# The columns ``run_verdicts`` needs in ``runs``.
RUN_COLUMNS = (
    "run_key",
    "grant_id",
    "cluster",
    "partition",
    "gpu_type",
    "start_at",
    "end_at",
    "nodes",
)


_TIME = "%Y-%m-%dT%H:%M:%S%.fZ"


def _in_force(at: str, moment: str) -> pl.Expr:
    """Return whether [from_at, until_at) is in force at the run's ``moment`` column."""
    at_start = (pl.col("from_at") <= pl.col(moment)) & (pl.col(moment) < pl.col("until_at"))
    if at == "start":
        return at_start
    before_end = (pl.col("from_at") < pl.col(moment)) & (pl.col(moment) <= pl.col("until_at"))
    # a run that ended as it started used the node at that instant only
    return pl.when(pl.col("end_at") > pl.col("start_at")).then(before_end).otherwise(at_start)


def _node_checks(nodes: pl.LazyFrame, compliance: Compliance) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Return (checks, certifications): ``nodes`` (one row per run and node, ``_n`` its id)
    with ``rule_start`` and ``rule_end``, the first failing node rule at each time or null; and
    per run (``_r``) the sorted ids of the certifications that approved its nodes at the start
    and at the end (``certifications_at_start``, ``certifications_at_end``)."""
    inventory = inventory_frame(compliance.nodes).lazy()
    in_part = pl.col("partitions").list.contains(pl.col("partition"))
    seen = (
        nodes.select("_n", "cluster", "node", "partition", "start_at", "end_at")
        .join(inventory, on=["cluster", "node"], how="inner")
        .with_columns(_s=_in_force("start", "start_at"), _e=_in_force("end", "end_at"))
        .group_by("_n")
        .agg(
            present_s=pl.col("_s").any(),
            present_e=pl.col("_e").any(),
            in_part_s=(pl.col("_s") & in_part).any(),
            in_part_e=(pl.col("_e") & in_part).any(),
            model_s=pl.col("gpu_model").filter(pl.col("_s")).first(),
            model_e=pl.col("gpu_model").filter(pl.col("_e")).first(),
        )
    )
    checked = nodes.join(seen, on="_n", how="left")

    certs = certification_frame(compliance.certifications).lazy()
    named = certified_node_frame(compliance.certifications).lazy()
    keys = ["regime", "cluster"]
    by_name = checked.join(named, on=[*keys, "node"], how="inner")
    by_star = checked.join(
        certs.filter("all_nodes").select(*keys, "certification_id"), on=keys, how="inner"
    )
    candidates = (
        pl.concat([by_name, by_star], how="vertical_relaxed")
        .join(certs.drop(keys), on="certification_id", how="inner")
        .filter(
            pl.col("partitions").list.contains(pl.col("partition"))
            | pl.col("partitions").list.contains(ANY)
        )
    )
    models = pl.col("gpu_models")
    run_gpu_ok = pl.col("gpu_type").is_null() | models.list.contains(pl.col("gpu_type"))

    def gpu_ok(model: str) -> pl.Expr:
        return (
            models.list.contains(ANY) | (models.list.contains(pl.col(model)) & run_gpu_ok)
        ).fill_null(False)

    flagged = (
        candidates.with_columns(
            _gs=gpu_ok("model_s"),
            _ge=gpu_ok("model_e"),
            _vs=_in_force("start", "start_at"),
            _ve=_in_force("end", "end_at"),
        )
        .select("_n", "_r", "certification_id", "_gs", "_ge", "_vs", "_ve")
        .collect()  # read twice below
        .lazy()
    )

    def approving_at(gpu: str, valid: str, name: str) -> pl.LazyFrame:
        # one sort of (run, id) pairs, then lists in that order: cheaper than a sort per run
        return (
            flagged.filter(pl.col(gpu) & pl.col(valid))
            .select("_r", "certification_id")
            .unique()
            .sort("_r", "certification_id")
            .group_by("_r", maintain_order=True)
            .agg(pl.col("certification_id").alias(name))
        )

    approving = approving_at("_gs", "_vs", "certifications_at_start").join(
        approving_at("_ge", "_ve", "certifications_at_end"), on="_r", how="full", coalesce=True
    )
    matched = flagged.group_by("_n").agg(
        node_cert=pl.lit(True),
        gpu_s=pl.col("_gs").any(),
        gpu_e=pl.col("_ge").any(),
        ok_s=(pl.col("_gs") & pl.col("_vs")).any(),
        ok_e=(pl.col("_ge") & pl.col("_ve")).any(),
    )
    flags = ["present", "in_part", "gpu", "ok"]
    filled = [f"{f}_{t}" for f in flags for t in "se"] + ["node_cert"]
    out = checked.join(matched, on="_n", how="left").with_columns(pl.col(filled).fill_null(False))

    def rule(t: str, when_invalid: str) -> pl.Expr:
        return (
            pl.when(~pl.col(f"present_{t}"))
            .then(pl.lit("node_not_in_inventory"))
            .when(~pl.col(f"in_part_{t}"))
            .then(pl.lit("node_not_in_partition"))
            .when(~pl.col("node_cert"))
            .then(pl.lit("node_not_certified"))
            .when(~pl.col(f"gpu_{t}"))
            .then(pl.lit("gpu_model_not_certified"))
            .when(~pl.col(f"ok_{t}"))
            .then(pl.lit(when_invalid))
        )

    checks = out.select(
        "_r",
        "_i",
        "node",
        rule_start=rule("s", "certification_not_valid_at_start"),
        rule_end=rule("e", "certification_not_valid_at_end"),
    )
    return checks, approving


def _first_finding(checks: pl.LazyFrame, kind: str) -> pl.LazyFrame:
    """Return per run the first node (in list order, start before end) whose rule is of
    ``kind``: _r, rule, offending_node, at."""
    unknown = "node_not_in_inventory"

    def of_kind(column: str) -> pl.Expr:
        is_unknown = pl.col(column) == unknown
        return pl.col(column).is_not_null() & (is_unknown if kind == UNKNOWN else ~is_unknown)

    return (
        checks.filter(of_kind("rule_start") | of_kind("rule_end"))
        .with_columns(
            rule=pl.when(of_kind("rule_start")).then("rule_start").otherwise("rule_end"),
            at=pl.when(of_kind("rule_start")).then(pl.lit("start")).otherwise(pl.lit("end")),
        )
        .sort("_r", "_i")
        .unique("_r", keep="first")
        .select(
            "_r",
            pl.col("rule").alias(f"{kind}_rule"),
            pl.col("node").alias(f"{kind}_node"),
            pl.col("at").alias(f"{kind}_at"),
        )
    )


def _run_level(runs: pl.LazyFrame, compliance: Compliance) -> pl.LazyFrame:
    """Return ``runs`` with ``cluster_ok`` and ``partition_ok``: whether any certification of
    the run's regime names its cluster, and its partition (or ``*``), at any time."""
    certs = certification_frame(compliance.certifications).lazy()
    clusters = certs.select("regime", "cluster").unique().with_columns(cluster_ok=pl.lit(True))
    parts = (
        certs.select("regime", "cluster", pl.col("partitions").alias("partition"))
        .explode("partition")
        .unique()
    )
    named = parts.filter(pl.col("partition") != ANY).with_columns(part_named=pl.lit(True))
    star = parts.filter(pl.col("partition") == ANY).select(
        "regime", "cluster", part_any=pl.lit(True)
    )
    return (
        runs.join(clusters, on=["regime", "cluster"], how="left")
        .join(named, on=["regime", "cluster", "partition"], how="left")
        .join(star, on=["regime", "cluster"], how="left")
        .with_columns(
            cluster_ok=pl.col("cluster_ok").fill_null(False),
            partition_ok=pl.col("part_named").fill_null(False)
            | pl.col("part_any").fill_null(False),
        )
        .drop("part_named", "part_any")
    )


def run_verdicts(
    runs: pl.DataFrame, *, grants: list[Grant], compliance: Compliance
) -> pl.DataFrame:
    """Return one verdict per run charged to a grant with a regime (``VERDICTS`` columns, plus
    ``row_hash`` when ``runs`` has it), in the order of ``runs``.

    ``runs`` needs ``RUN_COLUMNS``; ``grant_id`` comes from ``assign_grants``. Runs without a
    grant, or whose grant has no regime, get no verdict.
    """
    regimes = pl.DataFrame(
        [(g.id, g.regime) for g in grants if g.regime is not None],
        schema={"grant_id": pl.String(), "regime": pl.String()},
        orient="row",
    )
    extra = ["row_hash"] if "row_hash" in runs.columns else []
    base = _run_level(
        runs.lazy()
        .select(*RUN_COLUMNS, *extra)
        .with_row_index("_r")
        .join(regimes.lazy(), on="grant_id", how="inner"),
        compliance,
    )
    runnable = (
        pl.col("cluster_ok")
        & pl.col("partition_ok")
        & pl.col("start_at").is_not_null()
        & pl.col("end_at").is_not_null()
        & pl.col("partition").is_not_null()
        & (pl.col("nodes").list.len() > 0)
    )
    nodes = (
        base.filter(runnable)
        .select("_r", "regime", "cluster", "partition", "gpu_type", "start_at", "end_at", "nodes")
        .with_columns(_i=pl.int_ranges(0, pl.col("nodes").list.len(), dtype=pl.UInt32))
        .explode("nodes", "_i")
        .rename({"nodes": "node"})
        .with_row_index("_n")
        # Collected once: ``_n`` must be the same in every branch that reads it, and a join's
        # output order (hence a row index after it) is not fixed from one evaluation to the next.
        .collect()
        .lazy()
    )
    checks, approving = _node_checks(nodes, compliance)
    checks = checks.collect().lazy()  # read twice below
    found = (
        base.join(_first_finding(checks, VIOLATION), on="_r", how="left")
        .join(_first_finding(checks, UNKNOWN), on="_r", how="left")
        .join(approving, on="_r", how="left")
    )
    run_rule = (
        pl.when(~pl.col("cluster_ok"))
        .then(pl.lit("cluster_not_certified"))
        .when(pl.col("partition").is_not_null() & ~pl.col("partition_ok"))
        .then(pl.lit("partition_not_certified"))
        .when(pl.col("start_at").is_null())
        .then(pl.lit("no_start_time"))
        .when(pl.col("end_at").is_null())
        .then(pl.lit("no_end_time"))
        .when(pl.col("partition").is_null())
        .then(pl.lit("no_partition"))
        .when(pl.col("nodes").list.len().fill_null(0) == 0)
        .then(pl.lit("no_node_list"))
    )
    rule = pl.coalesce(run_rule, pl.col("violation_rule"), pl.col("unknown_rule"))
    empty = pl.lit([], dtype=pl.List(pl.String()))
    evidence = pl.struct(
        "regime",
        "cluster",
        "partition",
        "gpu_type",
        pl.col("start_at").dt.to_string(_TIME).alias("start_at"),
        pl.col("end_at").dt.to_string(_TIME).alias("end_at"),
        pl.col("nodes").fill_null(empty),
        pl.col("certifications_at_start").fill_null(empty),
        pl.col("certifications_at_end").fill_null(empty),
    ).struct.json_encode()
    from_violation = pl.col("violation_rule").is_not_null()
    out = found.with_columns(
        rule=rule,
        offending_node=pl.when(from_violation).then("violation_node").otherwise("unknown_node"),
        at=pl.when(from_violation).then("violation_at").otherwise("unknown_at"),
        evidence=evidence,
    ).with_columns(
        verdict=pl.col("rule").replace_strict(RULES, default=None).fill_null(pl.lit(APPROVED)),
    )
    return (
        out.sort("_r").select(*VERDICTS, *extra).collect().cast(VERDICTS)  # type: ignore[arg-type]
    )
