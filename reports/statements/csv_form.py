"""A statement as one CSV table for a finance system (layout in docs/statements.md).

Every row has the same columns (``LINE_COLUMNS``); ``line_type`` says what the row is, in this
order: ``header`` and ``rate_card`` rows (``key``/``value``), ``opening``, the ``charge`` lines
(or ``charge_summary`` lines when not itemised), ``adjustment`` lines, ``summary`` rows (by
user, partition, resource), the ``total`` rows, ``closing``, and the ``forecast`` rows. The
``amount`` column holds every amount, so ``sum(amount where line_type = charge)`` is the
total of the charges.
"""

from __future__ import annotations

import polars as pl

from models.money.statement import Statement
from reports.statements.cells import (
    adjustment_lines,
    charge_lines,
    date_text,
    money_text,
    ratio_text,
    summary_lines,
    time_text,
)

LINE_COLUMNS: tuple[str, ...] = (
    "line_type",
    "key",
    "value",
    "run_key",
    "job_id",
    "cluster",
    "account",
    "user",
    "partition",
    "qos",
    "end_at",
    "resource",
    "gpu_model",
    "quantity",
    "hours",
    "rate_card",
    "unit_price",
    "multiplier",
    "runs",
    "lines",
    "kind",
    "refers_period",
    "reason",
    "author",
    "posted_at",
    "amount",
)

Row = dict[str, str | None]


def header_rows(statement: Statement, *, itemise: bool) -> list[Row]:
    """Return the ``header`` and ``rate_card`` rows: what the statement is about."""
    s = statement
    fields: list[tuple[str, str | None]] = [
        ("grant_id", s.grant_id),
        ("funder", s.funder),
        ("unit", s.unit),
        ("budget", money_text(s.budget, s.decimals)),
        ("grant_start", date_text(s.grant_start)),
        ("grant_end", date_text(s.grant_end)),
        ("regime", s.regime),
        ("period", s.period),
        ("period_start", time_text(s.period_start)),
        ("period_end", time_text(s.period_end)),
        ("status", s.status),
        ("closed_at", time_text(s.closed_at)),
        ("generated_for", time_text(s.generated_for)),
        ("policy_version", str(s.policy_version)),
        ("decimals", str(s.decimals)),
        ("charge_lines", "itemised" if itemise else "summarised"),
    ]
    rows: list[Row] = [{"line_type": "header", "key": k, "value": v} for k, v in fields]
    for card in s.rate_cards:
        effective = date_text(card.effective)
        for key, value in (("effective", effective), ("currency", card.currency)):
            rows.append(
                {"line_type": "rate_card", "key": key, "value": value, "rate_card": card.id}
            )
    return rows


def summary_rows(statement: Statement) -> list[Row]:
    """Return one ``summary`` row per (dimension, value), in the statement's order."""
    rows: list[Row] = []
    for summary in statement.summaries:
        for value, amount in summary.amounts.items():
            rows.append(
                {
                    "line_type": "summary",
                    "key": summary.dimension,
                    "value": value,
                    "amount": money_text(amount, statement.decimals),
                }
            )
    return rows


def closing_rows(statement: Statement) -> list[Row]:
    """Return the ``total``, ``closing`` and ``forecast`` rows."""
    s = statement
    d = s.decimals
    return [
        {"line_type": "total", "key": "total_charges", "amount": money_text(s.total_charges, d)},
        {
            "line_type": "total",
            "key": "total_adjustments",
            "amount": money_text(s.total_adjustments, d),
        },
        {
            "line_type": "closing",
            "key": "closing_balance",
            "amount": money_text(s.closing_balance, d),
        },
        {"line_type": "forecast", "key": "budget_used", "value": ratio_text(s.budget_used)},
        {
            "line_type": "forecast",
            "key": "burn_rate_per_day",
            "value": money_text(s.burn_rate_per_day, d),
        },
        {"line_type": "forecast", "key": "run_out", "value": date_text(s.run_out)},
    ]


def _frame(rows: list[Row]) -> pl.DataFrame:
    schema = dict.fromkeys(LINE_COLUMNS, pl.String())
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def _lines(frame: pl.DataFrame, line_type: str) -> pl.DataFrame:
    """Return text lines widened to LINE_COLUMNS with ``line_type`` set."""
    present = set(frame.columns)
    return frame.select(
        [
            pl.lit(line_type, pl.String).alias(c)
            if c == "line_type"
            else (pl.col(c) if c in present else pl.lit(None, pl.String).alias(c))
            for c in LINE_COLUMNS
        ]
    )


def statement_table(statement: Statement, *, itemise: bool = True) -> pl.DataFrame:
    """Return the statement as one frame of strings with LINE_COLUMNS, in file order."""
    opening: Row = {
        "line_type": "opening",
        "key": "opening_balance",
        "amount": money_text(statement.opening_balance, statement.decimals),
    }
    charges = (
        _lines(charge_lines(statement), "charge")
        if itemise
        else _lines(summary_lines(statement), "charge_summary")
    )
    return pl.concat(
        [
            _frame([*header_rows(statement, itemise=itemise), opening]),
            charges,
            _lines(adjustment_lines(statement), "adjustment"),
            _frame([*summary_rows(statement), *closing_rows(statement)]),
        ],
        how="vertical",
    )


def render_csv(statement: Statement, *, itemise: bool = True) -> bytes:
    """Return the statement as UTF-8 CSV bytes (``\\n`` line ends, empty cell for none)."""
    table = statement_table(statement, itemise=itemise)
    return table.write_csv(line_terminator="\n", null_value="", quote_style="necessary").encode()
