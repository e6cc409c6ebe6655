"""Charging runs: from allocation records to exact charge lines (pure: no clock, no I/O).

A line is one run's use of one resource (cpu, gpu, mem, node) in one period, priced by the
rate card in force then: ``amount = quantity × hours × unit price × QOS multiplier``, rounded
half-even to the policy's quantum (cents by default) *per line*; totals are sums of lines.
The arithmetic is exact: prices and multipliers become integers of millionths, quantities and
seconds are integers, the product is an Int128 and the one division rounds half-even in integer
arithmetic. No float touches an amount. A run whose charge cannot be computed exactly (a size
beyond ``models.frames.RUN_BOUNDS``, a product beyond ``MAX_PRODUCT``) is unbilled with the
reason, never an error for the others. See ``docs/money.md`` for every rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from models.errors import PolicyError
from models.frames import UTC_TIME, beyond_bound
from models.money.frames import LINES, MONEY, UNBILLED
from models.money.grants import Charging, RateCard, assign_grants, day_start
from models.policy import Policy

MICRO = 10**6  # prices and multipliers are held as integer millionths
MB_PER_GIB = 1024
# The largest quantity x seconds x price x multiplier a line may have. The product is an Int128
# (below 2^127 ~ 1.7e38), which polars wraps silently on overflow; its Float64 estimate is within
# 1e-15 of it, so a line estimated below 1e37 is computed exactly, and its amount (at most
# ~2.8e21 currency units) leaves MONEY room for sums of 10^10 lines. A run with a line beyond it
# is unbilled. Within ``models.frames.RUN_BOUNDS`` only an absurd price or multiplier gets there.
MAX_PRODUCT = 1e37


RESOURCE_COLUMNS = {
    "alloc_cpus": "cpu",
    "alloc_gpus": "gpu",
    "alloc_mem_mb": "mem",
    "alloc_nodes": "node",
}
RESOURCE_ORDER = {"cpu": 0, "gpu": 1, "mem": 2, "node": 3, "minimum": 4}


@dataclass(frozen=True)
class Charges:
    """The result of ``charge_runs``: priced lines, and the ended runs that were not charged."""

    lines: pl.DataFrame  # LINES, sorted by grant, period, run_key, resource
    unbilled: pl.DataFrame  # UNBILLED


def micros(value: Decimal, *, what: str) -> int:
    """Return ``value`` as an integer number of millionths; PolicyError if it has more digits."""
    scaled = value * MICRO
    if scaled != scaled.to_integral_value():
        raise PolicyError(f"{what} {value}: at most 6 decimal places")
    return int(scaled)


def half_even_div(numerator: pl.Expr, denominator: int) -> pl.Expr:
    """Return numerator / denominator rounded half to even, in integer arithmetic.

    ``numerator`` is a non-negative Int128 expression and ``denominator`` a positive integer.
    """
    quotient = numerator // denominator
    twice_rest = (numerator - quotient * denominator) * 2
    up = (twice_rest > denominator) | ((twice_rest == denominator) & (quotient % 2 == 1))
    return quotient + up.cast(pl.Int128)


def minor_to_money(minor: pl.Expr, decimals: int) -> pl.Expr:
    """Return an integer count of 10^-decimals units as a MONEY decimal."""
    return minor.cast(pl.Decimal(38, 0)) * pl.lit(Decimal(1).scaleb(-decimals), dtype=MONEY)


def rate_card_frame(cards: list[RateCard]) -> pl.DataFrame:
    """Return one row per rate: card id and start, resource, matching keys, price and
    specificity (a named cluster 4, partition 2, GPU model 1: the highest that matches wins)."""
    rows = [
        {
            "rate_card": card.id,
            "card_from": day_start(card.effective),
            "resource": rate.resource,
            "rate_cluster": rate.cluster,
            "rate_partition": rate.partition,
            "rate_gpu_model": rate.gpu_model.lower(),
            "price_u": micros(rate.price, what=f"rate card {card.id}: {rate.resource} price"),
            "specificity": 4 * (rate.cluster != "*")
            + 2 * (rate.partition != "*")
            + (rate.gpu_model != "*"),
        }
        for card in cards
        for rate in card.rates
    ]
    return pl.DataFrame(
        rows,
        schema={
            "rate_card": pl.String,
            "card_from": UTC_TIME,
            "resource": pl.String,
            "rate_cluster": pl.String,
            "rate_partition": pl.String,
            "rate_gpu_model": pl.String,
            "price_u": pl.Int64,
            "specificity": pl.Int8,
        },
    )


def _card_terms(cards: list[RateCard]) -> pl.DataFrame:
    """Return per card: id, start, minimum charge and the QOS multipliers as (qos, mult_u)."""
    rows = [
        {
            "rate_card": card.id,
            "card_from": day_start(card.effective),
            "minimum_u": micros(card.minimum_charge, what=f"rate card {card.id}: minimum_charge"),
        }
        for card in cards
    ]
    schema: dict[str, pl.DataType] = {
        "rate_card": pl.String(),
        "card_from": UTC_TIME,
        "minimum_u": pl.Int64(),
    }
    return pl.DataFrame(rows, schema=schema).sort("card_from")


def _multipliers(cards: list[RateCard]) -> pl.DataFrame:
    rows = [
        {"rate_card": c.id, "qos": q, "mult_u": micros(m, what=f"rate card {c.id}: qos {q}")}
        for c in cards
        for q, m in c.qos_multipliers.items()
    ]
    return pl.DataFrame(rows, schema={"rate_card": pl.String, "qos": pl.String, "mult_u": pl.Int64})


def _unchargeable() -> pl.Expr:
    """Return why a run's sizes cannot be charged exactly (the first beyond its bound in
    ``models.frames.RUN_BOUNDS``, or not a finite number), else null."""
    return pl.coalesce(
        pl.when(beyond_bound(c)).then(pl.format(f"{c} {{}} is beyond what can be charged", c))
        for c in ("elapsed_s", *RESOURCE_COLUMNS)
    )


def _not_charged(runs: pl.DataFrame, charging: Charging) -> pl.DataFrame:
    """Return ``runs`` with a ``reason`` column: null for a run to charge, else why not."""
    last_run = pl.col("submit_at") == pl.col("submit_at").max().over("cluster", "job_id_raw")
    requeued = pl.lit(False) if charging.charge_requeued_runs else ~last_run.fill_null(value=True)
    unchargeable = _unchargeable()
    return runs.with_columns(
        reason=pl.when(unchargeable.is_not_null())
        .then(unchargeable)
        .when(pl.col("state").is_in(charging.uncharged_states))
        .then(pl.format("state {} is not charged (charging.uncharged_states)", "state"))
        .when(requeued)
        .then(pl.lit("an earlier run of a requeued job (charging.charge_requeued_runs = false)"))
        .when(pl.col("grant_id").is_null())
        .then(pl.lit("no grant: the account is not a member of any grant at the run's end"))
    )


def _slices(runs: pl.DataFrame, attribution: str) -> pl.DataFrame:
    """Return one row per (run, period) with the run's seconds in that period.

    ``end``: the whole Elapsed in the period of the end. ``prorate``: Elapsed split over the
    calendar months between start and end in proportion to wall time, floored, with the
    remainder in the last month (slices sum exactly to Elapsed).
    """
    if attribution == "end":
        return runs.with_columns(
            period=pl.col("end_at").dt.strftime("%Y-%m"),
            seconds=pl.col("elapsed_s").clip(lower_bound=0),
            slice_at=pl.col("end_at"),
        )
    start_s = pl.col("start_at").dt.epoch("s")
    end_s = pl.col("end_at").dt.epoch("s")
    months = pl.date_ranges(
        pl.col("start_at").dt.date().dt.month_start(),
        pl.col("end_at").dt.date().dt.month_start(),
        interval="1mo",
    )
    exploded = runs.with_columns(month=months).explode("month")
    month_start = pl.col("month").cast(pl.Datetime("us", "UTC"))
    month_end = pl.col("month").dt.offset_by("1mo").cast(pl.Datetime("us", "UTC"))
    overlap = (
        pl.min_horizontal(end_s, month_end.dt.epoch("s"))
        - pl.max_horizontal(start_s, month_start.dt.epoch("s"))
    ).clip(lower_bound=0)
    wall = (end_s - start_s).clip(lower_bound=1)
    elapsed = pl.col("elapsed_s").clip(lower_bound=0)
    share = (elapsed * overlap) // wall
    is_last = pl.col("month") == pl.col("month").max().over("_run")
    return exploded.with_columns(
        period=pl.col("month").dt.strftime("%Y-%m"),
        seconds=pl.when(is_last)
        .then(elapsed - (share.sum().over("_run") - share))
        .otherwise(share),
        slice_at=pl.min_horizontal(pl.col("end_at"), month_end - pl.duration(microseconds=1)),
    ).drop("month")


def _quantities(priced: pl.DataFrame) -> pl.DataFrame:
    """Return one row per (slice, resource) with a positive integer quantity (memory in MB)."""
    return (
        priced.with_columns(
            pl.col("alloc_mem_mb").round(0),
        )
        .with_columns(pl.col(c).cast(pl.Int64).fill_null(0) for c in RESOURCE_COLUMNS)
        .unpivot(
            on=list(RESOURCE_COLUMNS),
            index=[c for c in priced.columns if c not in RESOURCE_COLUMNS],
            variable_name="resource",
            value_name="qty_num",
        )
        .filter((pl.col("qty_num") > 0) & (pl.col("seconds") > 0))
        .with_columns(pl.col("resource").replace_strict(RESOURCE_COLUMNS))
    )


def _match_rates(quantities: pl.DataFrame, cards: list[RateCard]) -> pl.DataFrame:
    """Return each quantity with the most specific rate of its card that matches it, and the
    card's QOS multiplier (1 when it names none); quantities no rate matches are left out."""
    gpu_model = pl.col("gpu_type").str.to_lowercase().fill_null("")
    matches = quantities.join(
        rate_card_frame(cards).drop("card_from"), on=["rate_card", "resource"]
    ).filter(
        ((pl.col("rate_cluster") == "*") | (pl.col("rate_cluster") == pl.col("cluster")))
        & ((pl.col("rate_partition") == "*") | (pl.col("rate_partition") == pl.col("partition")))
        & ((pl.col("rate_gpu_model") == "*") | (pl.col("rate_gpu_model") == gpu_model))
    )
    best = pl.col("specificity") == pl.col("specificity").max().over("_run", "period", "resource")
    return (
        matches.filter(best)
        .join(_multipliers(cards), on=["rate_card", "qos"], how="left")
        .with_columns(pl.col("mult_u").fill_null(MICRO))
    )


def _too_large(lines: pl.DataFrame) -> pl.DataFrame:
    """Return ``_run`` and ``reason`` of each run with a line whose exact product would pass
    ``MAX_PRODUCT`` (one row per run)."""
    estimate = (
        pl.col("qty_num").cast(pl.Float64)
        * pl.col("seconds").cast(pl.Float64)
        * pl.col("price_u").cast(pl.Float64)
        * pl.col("mult_u").cast(pl.Float64)
    )
    reason = pl.format(
        "its {} charge ({} x {} s at price {} x multiplier {}) is beyond what can be charged",
        "resource",
        "qty_num",
        "seconds",
        pl.col("price_u") / MICRO,
        pl.col("mult_u") / MICRO,
    )
    return (
        lines.filter(estimate > MAX_PRODUCT)
        .unique("_run", keep="first", maintain_order=True)
        .select("_run", reason.alias("reason"))
    )


def _amounts(lines: pl.DataFrame, decimals: int) -> pl.DataFrame:
    """Return ``lines`` with ``minor``: the amount in units of 10^-decimals, rounded half-even
    (memory quantities are MB priced per GiB)."""
    numerator = (
        pl.col("qty_num").cast(pl.Int128)
        * pl.col("seconds").cast(pl.Int128)
        * pl.col("price_u").cast(pl.Int128)
        * pl.col("mult_u").cast(pl.Int128)
    )
    denominator = 3600 * MICRO * MICRO // 10**decimals
    return lines.with_columns(
        minor=pl.when(pl.col("resource") == "mem")
        .then(half_even_div(numerator, denominator * MB_PER_GIB))
        .otherwise(half_even_div(numerator, denominator))
    )


def _minimum_lines(lines: pl.DataFrame, terms: pl.DataFrame, decimals: int) -> pl.DataFrame:
    """Return a ``minimum`` line for each run charged less than its card's minimum charge
    (after QOS multipliers; in the run's last period), with ``lines``' columns."""
    quantum = 10 ** (6 - decimals)
    minimum = terms.select("rate_card", (pl.col("minimum_u") // quantum).alias("min_minor"))
    if minimum.filter(pl.col("min_minor") > 0).height == 0:
        return lines.clear()
    last = pl.col("period") == pl.col("period").max().over("_run")
    per_run = (
        lines.group_by("_run")
        .agg(pl.col("minor").sum().alias("total"))
        .join(lines.filter(last).unique("_run", keep="first").drop("minor"), on="_run")
        .join(minimum, on="rate_card")
        .filter(pl.col("min_minor").cast(pl.Int128) > pl.col("total"))
    )
    return per_run.with_columns(
        resource=pl.lit("minimum"),
        qty_num=pl.lit(1, dtype=pl.Int64),
        seconds=pl.lit(0, dtype=pl.Int64),
        price_u=pl.lit(0, dtype=pl.Int64),
        mult_u=pl.lit(MICRO, dtype=pl.Int64),
        minor=pl.col("min_minor").cast(pl.Int128) - pl.col("total"),
    ).select(lines.columns)


def _finish(lines: pl.DataFrame, runs: pl.DataFrame, decimals: int) -> pl.DataFrame:
    """Return ``LINES``: the priced lines with the runs' descriptive columns and Decimals."""
    unit = pl.lit(Decimal(1).scaleb(-6), dtype=MONEY)
    described = runs.select("_run", "run_key", "job_id", "account", "user", "end_at")
    return (
        lines.join(described, on="_run")
        .with_columns(
            gpu_model=pl.when(pl.col("resource") == "gpu").then(pl.col("gpu_type")),
            quantity=pl.when(pl.col("resource") == "mem")
            .then(pl.col("qty_num") / MB_PER_GIB)
            .otherwise(pl.col("qty_num").cast(pl.Float64)),
            hours=pl.col("seconds") / 3600.0,
            unit_price=pl.col("price_u").cast(pl.Decimal(38, 0)) * unit,
            multiplier=pl.col("mult_u").cast(pl.Decimal(38, 0)) * unit,
            amount=minor_to_money(pl.col("minor"), decimals),
            _order=pl.col("resource").replace_strict(RESOURCE_ORDER, return_dtype=pl.Int8),
        )
        .sort("_run", "period", "_order")
        .select(list(LINES))
    )


def charge_runs(runs: pl.DataFrame, policy: Policy) -> Charges:
    """Return the charge lines of the ended runs in ``runs`` under ``policy``.

    ``runs`` holds at least ``CHARGE_RUN_COLUMNS``. A run still running (no end) is not charged
    yet and not reported; an ended run that is not charged (a size beyond
    ``models.frames.RUN_BOUNDS`` or a line beyond ``MAX_PRODUCT``, which cannot be charged
    exactly; no grant, an uncharged end state, an earlier run of a requeued job, no rate card in
    force or no rate matching) is in ``unbilled`` with the reason: one run never fails the rest.
    Lines are in the order of ``runs``, then period, then resource.
    """
    charging = policy.charging
    decimals = charging.decimals
    ended = runs.filter(pl.col("end_at").is_not_null() & pl.col("start_at").is_not_null())
    ended = _not_charged(assign_grants(ended, policy.grants), charging).with_row_index("_run")
    unbilled = [ended.filter(pl.col("reason").is_not_null())]
    work = ["_run", "grant_id", "cluster", "partition", "qos", "gpu_type", "start_at", "end_at"]
    billable = ended.filter(pl.col("reason").is_null()).select(
        *work, "elapsed_s", *RESOURCE_COLUMNS
    )

    slices = _slices(billable, charging.attribution).sort("slice_at")
    terms = _card_terms(policy.rate_cards)
    priced = slices.join_asof(terms, left_on="slice_at", right_on="card_from", strategy="backward")
    no_card = priced.filter(pl.col("rate_card").is_null()).select("_run").unique()
    unbilled.append(
        ended.join(no_card, on="_run").with_columns(
            reason=pl.lit("no rate card in force at the run's end")
        )
    )
    priced = priced.filter(pl.col("rate_card").is_not_null()).select(
        "_run",
        "grant_id",
        "period",
        "seconds",
        "rate_card",
        "cluster",
        "partition",
        "qos",
        "gpu_type",
        *RESOURCE_COLUMNS,
    )
    matched = _match_rates(_quantities(priced), policy.rate_cards)
    too_large = _too_large(matched)
    unbilled.append(ended.drop("reason").join(too_large, on="_run"))
    matched = matched.join(too_large, on="_run", how="anti")
    priced = priced.join(too_large, on="_run", how="anti")
    lines = _amounts(matched, decimals).select(
        "_run",
        "grant_id",
        "period",
        "cluster",
        "partition",
        "qos",
        "gpu_type",
        "resource",
        "qty_num",
        "seconds",
        "rate_card",
        "price_u",
        "mult_u",
        "minor",
    )
    lines = pl.concat([lines, _minimum_lines(lines, terms, decimals)])

    unpriced = priced.join(lines.select("_run").unique(), on="_run", how="anti")
    unbilled.append(
        ended.join(
            unpriced.unique("_run", keep="first").select("_run", "rate_card"), on="_run"
        ).with_columns(
            reason=pl.format("no rate on card {} matches its cluster and partition", "rate_card")
        )
    )
    return Charges(
        lines=_finish(lines, ended, decimals),
        unbilled=pl.concat([u.select(list(UNBILLED)) for u in unbilled]).sort("run_key"),
    )


def recharge(charges: Charges, runs: pl.DataFrame, policy: Policy) -> Charges:
    """Return ``charges`` with the runs of some jobs charged again under ``policy``.

    ``runs`` holds every current run of those jobs (``CHARGE_RUN_COLUMNS``): a job's runs are
    charged together (with ``charging.charge_requeued_runs`` false only its last run is). Their
    earlier lines and unbilled rows are dropped (a run key never goes away, so every run that
    had some is among ``runs``) and the new ones appended: the same lines and rows as charging
    every run again, in another order (the lines of ``runs`` last; readers sort).
    """
    if runs.is_empty():
        return charges
    fresh = charge_runs(runs, policy)
    stale = ~pl.col("run_key").is_in(runs["run_key"].implode())
    return Charges(
        lines=pl.concat([charges.lines.filter(stale), fresh.lines]),
        unbilled=pl.concat([charges.unbilled.filter(stale), fresh.unbilled]).sort("run_key"),
    )
