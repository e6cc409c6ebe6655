"""A statement as one JSON document: amounts as exact decimal strings, keys in a fixed order.

Times are ISO-8601 UTC with ``Z``, dates ``YYYY-MM-DD``; quantities and hours are JSON
numbers (they are measurements, not money); the document is indented by two spaces and ends
with a newline; the lines of charges, adjustments and the burn-down are one JSON object per
line. The key order is the order written here, so the same statement always gives the same
bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl

from models.money.statement import Statement
from reports.statements.cells import (
    adjustment_lines,
    burndown_lines,
    charge_lines,
    date_text,
    money_text,
    ratio_text,
    summary_lines,
    time_text,
)

FORMAT_VERSION = 1


def _records(frame: pl.DataFrame, numbers: tuple[str, ...] = ()) -> orjson.Fragment:
    """Return ``frame`` as a JSON array with one object per line (written by polars).

    ``numbers`` columns become JSON numbers (``runs`` and ``lines`` integers, others floats).
    """
    frame = frame.with_columns(
        [
            pl.col(c).cast(pl.Int64) if c in ("runs", "lines") else pl.col(c).cast(pl.Float64)
            for c in numbers
        ]
    )
    if frame.height == 0:
        return orjson.Fragment(b"[]")
    # in NDJSON a raw newline only ends a row (newlines inside strings are escaped)
    rows = frame.write_ndjson().encode("utf-8").rstrip(b"\n").replace(b"\n", b",\n")
    return orjson.Fragment(b"[\n" + rows + b"\n]")


def statement_document(statement: Statement, *, itemise: bool = True) -> dict[str, Any]:
    """Return the statement as a dict of JSON values in the document's key order."""
    s = statement
    d = s.decimals
    burndown = burndown_lines(s).with_columns(pl.col("forecast") == "true")
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "grant": {
            "id": s.grant_id,
            "funder": s.funder,
            "unit": s.unit,
            "budget": money_text(s.budget, d),
            "start": date_text(s.grant_start),
            "end": date_text(s.grant_end),
            "regime": s.regime,
        },
        "period": {
            "id": s.period,
            "start": time_text(s.period_start),
            "end": time_text(s.period_end),
            "status": s.status,
            "closed_at": time_text(s.closed_at),
            "generated_for": time_text(s.generated_for),
        },
        "policy_version": s.policy_version,
        "rate_cards": [
            {"id": c.id, "effective": date_text(c.effective), "currency": c.currency}
            for c in s.rate_cards
        ],
        "decimals": d,
        "opening_balance": money_text(s.opening_balance, d),
        "charge_lines": "itemised" if itemise else "summarised",
    }
    if itemise:
        document["charges"] = _records(charge_lines(s), ("quantity", "hours"))
    else:
        document["charge_summary"] = _records(summary_lines(s), ("runs", "lines", "hours"))
    document |= {
        "adjustments": _records(adjustment_lines(s)),
        "total_charges": money_text(s.total_charges, d),
        "total_adjustments": money_text(s.total_adjustments, d),
        "closing_balance": money_text(s.closing_balance, d),
        "budget_used": ratio_text(s.budget_used),
        "burn_rate_per_day": money_text(s.burn_rate_per_day, d),
        "run_out": date_text(s.run_out),
        "summaries": {
            summary.dimension: [
                {"value": value, "amount": money_text(amount, d)}
                for value, amount in summary.amounts.items()
            ]
            for summary in s.summaries
        },
        "burndown": _records(burndown),
    }
    return document


def render_json(statement: Statement, *, itemise: bool = True) -> bytes:
    """Return the statement as UTF-8 JSON bytes (indented, trailing newline)."""
    document = statement_document(statement, itemise=itemise)
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
