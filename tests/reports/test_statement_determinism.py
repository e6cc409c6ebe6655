"""The same statement gives byte-identical files in every format, whenever it is rendered."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from reports.statements import FORMATS, render
from tests.reports.statement_fixtures import ALL, small_statement


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(ALL))
def test_rebuilt_statement_renders_to_the_same_bytes(name: str, fmt: str) -> None:
    for itemise in (True, False) if fmt != "pdf" else (True,):  # PDF: itemise only edits a note
        first = render(ALL[name](), fmt, itemise=itemise)
        again = render(ALL[name](), fmt, itemise=itemise)  # new frames, new objects
        assert hashlib.sha256(first).hexdigest() == hashlib.sha256(again).hexdigest()


def test_binary_forms_take_their_dates_from_the_statement_not_the_clock() -> None:
    statement = small_statement()
    before = {fmt: render(statement, fmt) for fmt in ("xlsx", "pdf")}
    time.sleep(1.1)  # past the one-second resolution of both files' dates
    after = {fmt: render(statement, fmt) for fmt in ("xlsx", "pdf")}
    assert before == after
    later = replace(statement, generated_for=statement.generated_for + timedelta(days=1))
    assert all(render(later, fmt) != before[fmt] for fmt in ("xlsx", "pdf"))


def test_itemised_and_summarised_forms_differ() -> None:
    statement = small_statement()
    for fmt in ("csv", "json", "xlsx"):
        assert render(statement, fmt, itemise=True) != render(statement, fmt, itemise=False)
