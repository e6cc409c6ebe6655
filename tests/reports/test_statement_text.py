"""Golden CSV and JSON statements, and the properties of the CSV a finance system relies on.

``pytest --update-golden`` rewrites the golden files (then read the diff: every number is
derived by hand in ``tests/golden/statements/README.md``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from models.money.statement import Statement
from reports.statements import FORMATS, render
from reports.statements.csv_form import LINE_COLUMNS
from tests.reports.statement_fixtures import ALL, small_statement

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "statements"

CASES = [(name, fmt, itemise) for name in ALL for fmt in ("csv", "json") for itemise in (True,)]
CASES += [("small", "csv", False), ("small", "json", False), ("zero_budget", "csv", False)]


def _golden_name(name: str, fmt: str, itemise: bool) -> str:
    return f"{name}{'' if itemise else '_summarised'}.{fmt}"


@pytest.mark.parametrize(("name", "fmt", "itemise"), CASES)
def test_text_forms_match_golden(name: str, fmt: str, itemise: bool, update_golden: bool) -> None:
    rendered = render(ALL[name](), fmt, itemise=itemise)
    expected = GOLDEN / _golden_name(name, fmt, itemise)
    if update_golden:
        expected.write_bytes(rendered)
        pytest.skip(f"regenerated {expected}")
    assert rendered.decode("utf-8") == expected.read_text(encoding="utf-8")


def _rows(statement: Statement, *, itemise: bool = True) -> list[dict[str, str]]:
    text = render(statement, "csv", itemise=itemise).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _amounts(rows: list[dict[str, str]], line_type: str) -> list[Decimal]:
    return [Decimal(r["amount"]) for r in rows if r["line_type"] == line_type]


@pytest.mark.parametrize("name", list(ALL))
def test_csv_is_one_table_with_exact_amounts(name: str) -> None:
    statement: Statement = ALL[name]()
    raw = render(statement, "csv")
    assert b"\r" not in raw and raw.endswith(b"\n")
    rows = _rows(statement)
    assert list(rows[0]) == list(LINE_COLUMNS)
    places = statement.decimals
    money = re.compile(rf"^-?\d+\.\d{{{places}}}$" if places else r"^-?\d+$")
    amounts = [r["amount"] for r in rows if r["amount"]]
    assert amounts and all(money.match(a) for a in amounts), amounts
    # a finance system's checks: the lines add up to the totals printed in the same file
    totals = {r["key"]: Decimal(r["amount"]) for r in rows if r["line_type"] == "total"}
    assert sum(_amounts(rows, "charge"), Decimal(0)) == totals["total_charges"]
    assert sum(_amounts(rows, "adjustment"), Decimal(0)) == totals["total_adjustments"]
    (opening,) = _amounts(rows, "opening")
    (closing,) = _amounts(rows, "closing")
    assert opening - totals["total_charges"] - totals["total_adjustments"] == closing
    assert len(_amounts(rows, "charge")) == statement.charges.height


def test_summarised_csv_keeps_the_total_and_groups_by_user_partition_resource() -> None:
    statement = small_statement()
    rows = _rows(statement, itemise=False)
    lines = [r for r in rows if r["line_type"] == "charge_summary"]
    assert not [r for r in rows if r["line_type"] == "charge"]
    keys = [(r["user"], r["partition"], r["resource"]) for r in lines]
    assert len(keys) == len(set(keys)) == 6
    assert sum((Decimal(r["amount"]) for r in lines), Decimal(0)) == statement.total_charges
    zoe_gpu = next(r for r in lines if r["user"] == "Zoë Ødegård" and r["resource"] == "gpu")
    assert (zoe_gpu["amount"], zoe_gpu["hours"], zoe_gpu["runs"]) == ("45.00", "10.000000", "1")


def test_csv_quotes_a_reason_with_a_comma_and_keeps_multibyte_names() -> None:
    rows = _rows(small_statement())
    manual = next(r for r in rows if r["kind"] == "manual")
    assert manual["reason"] == 'goodwill credit, ticket "4411"'
    assert manual["posted_at"] == "2026-03-31T16:00:00.250Z"
    assert {r["user"] for r in rows if r["line_type"] == "charge"} == {"ana", "Zoë Ødegård", "李伟"}


def test_json_amounts_are_exact_strings_and_times_end_in_z() -> None:
    document = json.loads(render(small_statement(), "json"))
    assert document["opening_balance"] == "8765.44"
    assert document["total_adjustments"] == "-14.30"
    assert document["period"]["closed_at"] == "2026-04-02T09:00:00Z"
    assert [c["amount"] for c in document["charges"]][:2] == ["0.96", "0.48"]
    assert document["charges"][0]["hours"] == 2.5
    assert document["summaries"]["user"][0] == {"value": "李伟", "amount": "64.16"}
    assert document["burndown"][-1] == {
        "day": "2026-05-31",
        "spent": "1533.49",
        "remaining": "8466.51",
        "forecast": True,
    }


def test_many_digit_amounts_print_every_digit() -> None:
    document = json.loads(render(ALL["many_digits"](), "json"))
    assert document["grant"]["budget"] == "123456789012.345"
    assert document["charges"][0]["amount"] == "98759111108.198"
    assert document["charges"][0]["unit_price"] == "3348.765432"
    assert (document["charges"][1]["quantity"], document["charges"][1]["hours"]) == (0.5, 2e-06)


def _with_amount(statement: Statement, amount: str) -> Statement:
    charges = statement.charges.with_columns(
        pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.lit(Decimal(amount)))
        .otherwise(pl.col("amount"))
        .cast(statement.charges.schema["amount"])
        .alias("amount")
    )
    return Statement(**{**statement.__dict__, "charges": charges})


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_amount_finer_than_the_statement_decimals_is_refused(fmt: str) -> None:
    statement = _with_amount(small_statement(), "0.485")
    with pytest.raises(ValueError, match=r"charge line 2: amount 0\.485"):
        render(statement, fmt)


def test_an_unknown_format_is_refused_with_the_known_ones() -> None:
    render_html: Callable[[], bytes] = lambda: render(small_statement(), "html")  # noqa: E731
    with pytest.raises(ValueError, match="csv, xlsx, pdf, json"):
        render_html()


def test_names_with_control_characters_quotes_and_newlines_survive_csv_and_json() -> None:
    statement = small_statement()
    odd = ["bell\x07", 'quote"back\\slash', "new\nline", "tab\t", "\u2028sep", "ok"]
    charges = statement.charges.with_columns(user=pl.Series(odd))
    changed = Statement(**{**statement.__dict__, "charges": charges})
    document = json.loads(render(changed, "json"))
    assert [c["user"] for c in document["charges"]] == odd
    assert [r["user"] for r in _rows(changed) if r["line_type"] == "charge"] == odd
