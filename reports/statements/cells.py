"""The exact text of a statement's values, shared by every format.

Amounts print with exactly the statement's ``decimals`` places (Decimal formatting, never
float), unit prices and multipliers with the storage scale (6 places, exact), hours with 6
places, quantities with as few places as they need (at most 6), times as ISO-8601 UTC with
``Z`` (fractional seconds only when there are some), dates as ``YYYY-MM-DD``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl

from models.money.frames import MONEY
from models.money.statement import Statement, summarised_charges

ISO_Z = "%Y-%m-%dT%H:%M:%S%.fZ"
FINE = pl.Decimal(38, 6)  # the storage scale of prices and multipliers


def money_text(value: Decimal, decimals: int) -> str:
    """Return ``value`` with exactly ``decimals`` places; ValueError if it has more."""
    quantum = Decimal(1).scaleb(-decimals)
    shown = value.quantize(quantum)
    if shown != value:
        raise ValueError(f"amount {value} has more than the statement's {decimals} decimals")
    return format(shown, "f")


def ratio_text(value: Decimal) -> str:
    """Return a ratio (budget used) as a plain decimal string, e.g. ``0.4235``."""
    return format(value, "f")


def time_text(value: datetime | None) -> str | None:
    """Return ``value`` as ISO-8601 UTC ending in ``Z`` (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    # the fraction as polars' %.f prints it (ISO_Z): none, milliseconds or microseconds
    us = value.microsecond
    spec = "seconds" if us == 0 else "milliseconds" if us % 1000 == 0 else "microseconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def date_text(value: date | None) -> str | None:
    """Return ``value`` as ``YYYY-MM-DD`` (None stays None)."""
    return None if value is None else value.isoformat()


def _check_quantum(frame: pl.DataFrame, column: str, decimals: int, what: str) -> None:
    """Raise ValueError naming the first line of ``frame`` whose ``column`` has more places."""
    exact = pl.col(column)
    shown = exact.cast(pl.Decimal(38, decimals)).cast(MONEY)
    bad = frame.with_row_index("_line").filter(shown != exact.cast(MONEY))
    if bad.height:
        line = bad.row(0, named=True)
        raise ValueError(
            f"{what} line {line['_line'] + 1}: {column} {line[column]} has more than "
            f"the statement's {decimals} decimals"
        )


def run_out_note(statement: Statement) -> str | None:
    """Return why there is no run-out date (None when there is one)."""
    if statement.run_out is not None:
        return None
    if statement.closing_balance <= 0:
        return "budget already used up"
    return "not at this burn rate"


def check_amounts(statement: Statement) -> None:
    """Raise ValueError if a charge or adjustment amount has more than ``decimals`` places."""
    _check_quantum(statement.charges, "amount", statement.decimals, "charge")
    _check_quantum(statement.adjustments, "amount", statement.decimals, "adjustment")


def money_expr(column: str, decimals: int) -> pl.Expr:
    """Return an expression printing an (already quantised) amount with ``decimals`` places."""
    return pl.col(column).cast(pl.Decimal(38, decimals)).cast(pl.String)


def fine_expr(column: str) -> pl.Expr:
    """Return an expression printing a price or multiplier at the storage scale."""
    return pl.col(column).cast(FINE).cast(pl.String)


def hours_expr(column: str = "hours") -> pl.Expr:
    """Return an expression printing hours with 6 places."""
    return pl.col(column).cast(pl.Decimal(38, 6)).cast(pl.String)


def quantity_expr(column: str = "quantity") -> pl.Expr:
    """Return an expression printing a quantity with the places it needs (at most 6)."""
    return pl.col(column).cast(pl.Decimal(38, 6)).cast(pl.String).str.replace(r"\.?0+$", "")


def time_expr(column: str) -> pl.Expr:
    """Return an expression printing a UTC time column as ISO-8601 with ``Z``."""
    return pl.col(column).dt.strftime(ISO_Z)


def charge_lines(statement: Statement) -> pl.DataFrame:
    """Return the itemised charge lines as text: CHARGE_COLUMNS, every column a string."""
    frame = statement.charges
    d = statement.decimals
    _check_quantum(frame, "amount", d, "charge")
    return frame.select(
        "run_key",
        "job_id",
        "cluster",
        "account",
        "user",
        "partition",
        "qos",
        time_expr("end_at").alias("end_at"),
        "resource",
        "gpu_model",
        quantity_expr().alias("quantity"),
        hours_expr().alias("hours"),
        "rate_card",
        fine_expr("unit_price").alias("unit_price"),
        fine_expr("multiplier").alias("multiplier"),
        money_expr("amount", d).alias("amount"),
    )


def summary_lines(statement: Statement) -> pl.DataFrame:
    """Return the charges summed by user, partition and resource as text (all strings).

    Columns: user, partition, resource, runs, lines, hours, amount.
    """
    d = statement.decimals
    _check_quantum(statement.charges, "amount", d, "charge")
    return summarised_charges(statement.charges).select(
        "user",
        "partition",
        "resource",
        pl.col("runs").cast(pl.String),
        pl.col("lines").cast(pl.String),
        hours_expr().alias("hours"),
        money_expr("amount", d).alias("amount"),
    )


def adjustment_lines(statement: Statement) -> pl.DataFrame:
    """Return the adjustment lines as text: ADJUSTMENT_COLUMNS, every column a string."""
    frame = statement.adjustments
    d = statement.decimals
    _check_quantum(frame, "amount", d, "adjustment")
    return frame.select(
        "kind",
        "refers_period",
        "run_key",
        "resource",
        money_expr("amount", d).alias("amount"),
        "reason",
        "author",
        time_expr("posted_at").alias("posted_at"),
    )


def burndown_lines(statement: Statement) -> pl.DataFrame:
    """Return the burn-down days as text: day, spent, remaining, forecast ("true"/"false")."""
    frame = statement.burndown
    d = statement.decimals
    return frame.select(
        pl.col("day").dt.strftime("%Y-%m-%d"),
        money_expr("spent", d).alias("spent"),
        money_expr("remaining", d).alias("remaining"),
        pl.col("forecast").cast(pl.String),
    )
