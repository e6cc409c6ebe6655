"""The XLSX statement read back with openpyxl: the same numbers as the CSV, line for line."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from decimal import Decimal

import openpyxl
import polars as pl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from models.money.statement import Statement
from reports.statements import render
from tests.reports.statement_fixtures import ALL, small_statement

TEXT = ("run_key", "job_id", "cluster", "account", "user", "partition", "qos", "resource")


def _csv(statement: Statement, *, itemise: bool = True) -> list[dict[str, str]]:
    text = render(statement, "csv", itemise=itemise).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _book(statement: Statement, *, itemise: bool = True) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(render(statement, "xlsx", itemise=itemise)))


def _records(sheet: Worksheet) -> list[dict[str, object]]:
    rows = list(sheet.iter_rows(values_only=True))
    head = [str(h) for h in rows[0]]
    return [dict(zip(head, row, strict=True)) for row in rows[1:]]


def _money(value: object, places: int) -> str:
    """The cell's number as the CSV prints it (the nearest decimal at ``places``)."""
    assert isinstance(value, int | float), value
    return format(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places)), "f")


def _iso(value: object) -> str:
    assert isinstance(value, datetime), value
    return value.isoformat(timespec="seconds") + "Z"


@pytest.mark.parametrize("name", list(ALL))
def test_charges_sheet_equals_the_csv_line_for_line(name: str) -> None:
    statement = ALL[name]()
    d = statement.decimals
    lines = [r for r in _csv(statement) if r["line_type"] == "charge"]
    cells = _records(_book(statement)["Charges"])
    assert len(cells) == len(lines) == statement.charges.height
    for line, cell in zip(lines, cells, strict=True):
        assert {k: cell[k] for k in TEXT} == {k: line[k] for k in TEXT}
        assert (cell["gpu_model"] or "") == line["gpu_model"]
        assert _money(cell["amount"], d) == line["amount"]
        assert _money(cell["unit_price"], 6) == line["unit_price"]
        assert _money(cell["multiplier"], 6) == line["multiplier"]
        assert _money(cell["hours"], 6) == line["hours"]
        assert Decimal(line["quantity"]) == Decimal(repr(float(cell["quantity"])))
        assert _iso(cell["end_at"]) == line["end_at"]


@pytest.mark.parametrize("name", list(ALL))
def test_adjustments_and_summary_sheets_equal_the_csv(name: str) -> None:
    statement = ALL[name]()
    d = statement.decimals
    rows = _csv(statement)
    book = _book(statement)
    adjustments = _records(book["Adjustments"])
    expected = [r for r in rows if r["line_type"] == "adjustment"]
    assert [_money(a["amount"], d) for a in adjustments] == [r["amount"] for r in expected]
    assert [a["reason"] for a in adjustments] == [r["reason"] for r in expected]

    summary = {
        row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0] is not None
    }
    by_key = {r["key"]: r for r in rows}
    for label, key in [
        ("Opening balance", "opening_balance"),
        ("Total charges", "total_charges"),
        ("Total adjustments", "total_adjustments"),
        ("Closing balance", "closing_balance"),
    ]:
        assert _money(summary[label], d) == by_key[key]["amount"], label
    assert _money(summary["Budget"], d) == by_key["budget"]["value"]
    assert Decimal(repr(float(summary["Budget used"]))) == Decimal(by_key["budget_used"]["value"])
    run_out = summary["Run-out date"]
    expected_run_out = by_key["run_out"]["value"]
    assert (run_out.date().isoformat() if run_out else "") == expected_run_out


def test_summary_sheet_uses_real_number_formats() -> None:
    book = _book(small_statement())
    sheet = book["Summary"]
    formats = {row[0].value: row[1].number_format for row in sheet.iter_rows(max_col=2)}
    assert formats["Closing balance"] == "#,##0.00;-#,##0.00"
    assert formats["Budget used"] == "0.00%"
    assert formats["Run-out date"] == "yyyy-mm-dd"
    assert formats["Period start (UTC)"] == "yyyy-mm-dd hh:mm:ss"
    charges = book["Charges"]
    assert charges.freeze_panes == "A2"
    assert charges.auto_filter.ref == "A1:P7"
    assert charges["P2"].number_format == "#,##0.00;-#,##0.00"
    assert charges["H2"].is_date
    whole = _book(ALL["zero_budget"]())
    assert whole["Charges"]["P2"].number_format == "#,##0;-#,##0"
    assert whole["Summary"]["B4"].value == 0


def test_summarised_workbook_lists_the_grouped_lines_of_the_csv() -> None:
    statement = small_statement()
    lines = [r for r in _csv(statement, itemise=False) if r["line_type"] == "charge_summary"]
    cells = _records(_book(statement, itemise=False)["Charges"])
    assert [(c["user"], c["partition"], c["resource"]) for c in cells] == [
        (r["user"], r["partition"], r["resource"]) for r in lines
    ]
    assert [_money(c["amount"], 2) for c in cells] == [r["amount"] for r in lines]
    assert [c["runs"] for c in cells] == [int(r["runs"]) for r in lines]


def test_a_name_that_looks_like_a_formula_stays_text() -> None:
    statement = small_statement()
    charges = statement.charges.with_columns(user=statement.charges["user"].replace("ana", "=1+1"))
    sheet = _book(Statement(**{**statement.__dict__, "charges": charges}))["Charges"]
    assert sheet["E2"].value == "=1+1" and sheet["E2"].data_type == "s"


def test_names_needing_xml_escapes_read_back_unchanged() -> None:
    statement = small_statement()
    odd = ["R&D <lab>", " padded ", "tab\there", "a > b"]
    names = statement.charges["user"].to_list()
    users = [odd[i] if i < len(odd) else name for i, name in enumerate(names)]
    charges = statement.charges.with_columns(user=pl.Series(users))
    changed = Statement(**{**statement.__dict__, "charges": charges})
    lines = [r for r in _csv(changed) if r["line_type"] == "charge"]
    cells = _records(_book(changed)["Charges"])
    assert [c["user"] for c in cells] == [r["user"] for r in lines] == users


def test_excel_escapes_are_written_as_xlsxwriter_writes_them() -> None:
    statement = small_statement()
    users = ["_x0041_ literal", "bell\x07", *statement.charges["user"].to_list()[2:]]
    charges = statement.charges.with_columns(user=pl.Series(users))
    xlsx = render(Statement(**{**statement.__dict__, "charges": charges}), "xlsx")
    sheet = zipfile.ZipFile(io.BytesIO(xlsx)).read("xl/worksheets/sheet2.xml").decode()
    # Excel reads these back as "_x0041_ literal" and "bell" + BEL
    assert "<t>_x005F_x0041_ literal</t>" in sheet and "<t>bell_x0007_</t>" in sheet
