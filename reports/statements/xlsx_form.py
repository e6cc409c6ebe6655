"""A statement as an Excel workbook (xlsxwriter): Summary, Charges, Adjustments, Burn-down.

Amounts are written as numbers (Excel has no decimal type): the exact decimal's text is parsed
to the nearest double, which Excel shows back exactly as long as the amount has at most 15
significant digits; the CSV and JSON forms stay the exact reference. Times are Excel date-times
in UTC. The workbook's created date is the statement's ``generated_for`` and xlsxwriter stamps
every zip entry with one fixed date, so the same statement gives the same bytes. The Charges
and Adjustments rows are written in bulk (``xlsx_rows``): their numbers are the exact decimal
text of the CSV, which Excel reads to the nearest double.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from models.money.statement import Statement
from reports.statements.cells import (
    adjustment_lines,
    charge_lines,
    check_amounts,
    money_text,
    ratio_text,
    run_out_note,
    summary_lines,
)
from reports.statements.xlsx_rows import SheetRows, fill_sheets

CHARGES_PART = "xl/worksheets/sheet2.xml"  # sheets in the order they are added
ADJUSTMENTS_PART = "xl/worksheets/sheet3.xml"
EXCEL_EPOCH_DAYS = 25569  # 1970-01-01 as an Excel serial day
US_PER_DAY = 86_400_000_000


def _serial_time(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("us") / US_PER_DAY + EXCEL_EPOCH_DAYS


def _serial_day(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Int32).cast(pl.Float64) + EXCEL_EPOCH_DAYS


def _number(column: str) -> pl.Expr:
    """The nearest double to an exact decimal (parsed from its text)."""
    return pl.col(column).cast(pl.String).cast(pl.Float64)


class _Formats:
    def __init__(self, book: xlsxwriter.Workbook, decimals: int) -> None:
        places = "." + "0" * decimals if decimals else ""
        self.money = book.add_format({"num_format": f"#,##0{places};-#,##0{places}"})
        self.fine = book.add_format({"num_format": "0.000000"})
        self.hours = book.add_format({"num_format": "#,##0.000000"})
        self.quantity = book.add_format(
            {"num_format": "General"}
        )  # 32, 0.5: as few places as needed
        self.count = book.add_format({"num_format": "0"})
        self.time = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.date = book.add_format({"num_format": "yyyy-mm-dd"})
        self.percent = book.add_format({"num_format": "0.00%"})
        self.bold = book.add_format({"bold": True})
        self.head = book.add_format({"bold": True, "bottom": 1})


def _table(
    sheet: Worksheet,
    head: Format,
    columns: Sequence[tuple[str, float, Format | None]],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Write a header row and ``rows`` (None = empty) under frozen headers with an autofilter.

    Column formats apply to every cell of the column. For small sheets (the burn-down).
    """
    for i, (_, width, fmt) in enumerate(columns):
        sheet.set_column(i, i, width, fmt)
    sheet.freeze_panes(1, 0)
    sheet.write_row(0, 0, [name for name, _, _ in columns], head)
    n = 0
    for n, row in enumerate(rows, start=1):
        sheet.write_row(n, 0, row)
    sheet.autofilter(0, 0, max(n, 1), len(columns) - 1)


def _charge_cells(statement: Statement) -> SheetRows:
    """Return the Charges sheet's cells as text (numbers as their exact decimal text)."""
    cells = charge_lines(statement).with_columns(
        statement.charges.select(_serial_time("end_at").cast(pl.String))
    )
    numeric = ("end_at", "quantity", "hours", "unit_price", "multiplier", "amount")
    return cells, [c in numeric for c in cells.columns]


def _adjustment_cells(statement: Statement) -> SheetRows:
    """Return the Adjustments sheet's cells as text (numbers as their exact decimal text)."""
    cells = adjustment_lines(statement).with_columns(
        statement.adjustments.select(_serial_time("posted_at").cast(pl.String))
    )
    return cells, [c in ("amount", "posted_at") for c in cells.columns]


def _summary_cells(statement: Statement) -> SheetRows:
    """Return the cells of the Charges sheet of a summarised statement."""
    cells = summary_lines(statement)
    return cells, [c in ("runs", "lines", "hours", "amount") for c in cells.columns]


def _bulk_header(book: xlsxwriter.Workbook, f: _Formats, cells: pl.DataFrame, name: str) -> None:
    """Add sheet ``name`` with the header of ``cells``, column formats and an autofilter.

    The data rows are written into the file afterwards by ``xlsx_rows.fill_sheet``.
    """
    text: tuple[float, Format | None] = (12, None)
    widths: dict[str, tuple[float, Format | None]] = {
        "run_key": (30, None),
        "reason": (40, None),
        "end_at": (19, f.time),
        "posted_at": (19, f.time),
        "quantity": (10, f.quantity),
        "hours": (14, f.hours),
        "unit_price": (12, f.fine),
        "multiplier": (10, f.fine),
        "runs": (8, f.count),
        "lines": (8, f.count),
        "amount": (16, f.money),
    }
    sheet = book.add_worksheet(name)
    for i, column in enumerate(cells.columns):
        sheet.set_column(i, i, *widths.get(column, text))
    sheet.freeze_panes(1, 0)
    sheet.write_row(0, 0, cells.columns, f.head)
    sheet.autofilter(0, 0, max(cells.height, 1), cells.width - 1)


def _burndown_sheet(book: xlsxwriter.Workbook, f: _Formats, statement: Statement) -> None:
    frame = statement.burndown.select(
        _serial_day("day").alias("day"),
        _number("spent"),
        _number("remaining"),
        pl.col("forecast"),
    )
    columns = [("day", 12, f.date), ("spent", 16, f.money), ("remaining", 16, f.money)]
    columns.append(("forecast", 10, None))
    _table(book.add_worksheet("Burn-down"), f.head, columns, frame.iter_rows())


def _excel_time(value: datetime | None) -> datetime | None:
    """A naive UTC datetime (Excel has no time zones)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _summary_sheet(book: xlsxwriter.Workbook, f: _Formats, s: Statement, itemise: bool) -> None:
    sheet = book.add_worksheet("Summary")
    sheet.set_column(0, 0, 26)
    sheet.set_column(1, 1, 22)
    sheet.set_column(2, 2, 12)
    row = 0

    def put(label: str, value: Any, fmt: Format | None = None, note: str | None = None) -> None:
        nonlocal row
        sheet.write_string(row, 0, label, f.bold)
        if value is None:
            pass
        elif isinstance(value, datetime):
            sheet.write_datetime(row, 1, value, fmt)
        elif isinstance(value, str):
            sheet.write_string(row, 1, value)
        else:
            sheet.write(row, 1, value, fmt)
        if note is not None:
            sheet.write_string(row, 2, note)
        row += 1

    def money(amount: Any) -> float:
        return float(money_text(amount, s.decimals))

    def day(value: Any) -> datetime | None:
        # Excel dates have no zone: xlsxwriter refuses an aware datetime
        return None if value is None else datetime(value.year, value.month, value.day)  # noqa: DTZ001

    put("Grant", s.grant_id)
    put("Funder", s.funder)
    put("Unit", s.unit)
    put("Budget", money(s.budget), f.money)
    put("Grant start", day(s.grant_start), f.date)
    put("Grant end", day(s.grant_end), f.date)
    put("Regime", s.regime)
    put("Period", s.period)
    put("Period start (UTC)", _excel_time(s.period_start), f.time)
    put("Period end (UTC, exclusive)", _excel_time(s.period_end), f.time)
    put("Status", s.status)
    put("Closed at (UTC)", _excel_time(s.closed_at), f.time)
    put("Generated for (UTC)", _excel_time(s.generated_for), f.time)
    put("Policy version", s.policy_version, f.count)
    for card in s.rate_cards:
        put(f"Rate card {card.id}", day(card.effective), f.date, card.currency)
    put("Charge lines", "itemised" if itemise else "summarised by user, partition, resource")
    row += 1
    put("Opening balance", money(s.opening_balance), f.money)
    put("Total charges", money(s.total_charges), f.money)
    put("Total adjustments", money(s.total_adjustments), f.money)
    put("Closing balance", money(s.closing_balance), f.money)
    put("Budget used", float(ratio_text(s.budget_used)), f.percent)
    put("Burn rate per day", money(s.burn_rate_per_day), f.money)
    put("Run-out date", day(s.run_out), f.date, run_out_note(s))
    for summary in s.summaries:
        row += 1
        sheet.write_row(row, 0, [f"By {summary.dimension}", "amount"], f.head)
        row += 1
        for value, amount in summary.amounts.items():
            put(value, money(amount), f.money)
    sheet.activate()


def render_xlsx(statement: Statement, *, itemise: bool = True) -> bytes:
    """Return the statement as XLSX bytes (same statement, same bytes)."""
    check_amounts(statement)
    buffer = io.BytesIO()
    created = _excel_time(statement.generated_for)
    options = {
        "constant_memory": True,
        "strings_to_numbers": False,
        "strings_to_formulas": False,
        "strings_to_urls": False,
    }
    book = xlsxwriter.Workbook(buffer, options)
    book.set_properties(
        {
            "title": f"Statement {statement.grant_id} {statement.period}",
            "subject": "charge-back statement",
            "author": "fairledger",
            "created": created,
        }
    )
    f = _Formats(book, statement.decimals)
    _summary_sheet(book, f, statement, itemise)
    charges = _charge_cells(statement) if itemise else _summary_cells(statement)
    adjustments = _adjustment_cells(statement)
    _bulk_header(book, f, charges[0], "Charges")
    _bulk_header(book, f, adjustments[0], "Adjustments")
    _burndown_sheet(book, f, statement)
    book.close()
    return fill_sheets(buffer.getvalue(), {CHARGES_PART: charges, ADJUSTMENTS_PART: adjustments})
