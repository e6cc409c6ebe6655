"""Charge-back statement renderers: one ``Statement`` → CSV, XLSX, PDF or JSON bytes.

Every renderer formats the Decimals of ``models.money.statement.Statement`` and computes no amount;
the same statement gives byte-identical files (layouts in docs/statements.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version

from models.money.statement import Statement
from reports.statements.csv_form import render_csv
from reports.statements.json_form import render_json
from reports.statements.pdf_form import render_pdf
from reports.statements.xlsx_form import render_xlsx

Renderer = Callable[..., bytes]

RENDERERS: dict[str, Renderer] = {
    "csv": render_csv,
    "xlsx": render_xlsx,
    "pdf": render_pdf,
    "json": render_json,
}
FORMATS: tuple[str, ...] = tuple(RENDERERS)
# The distributions whose code decides a format's bytes: a later release of one of them may
# render the same statement differently (fpdf2's PDF objects, xlsxwriter's XML, the chart).
RENDERED_WITH: dict[str, tuple[str, ...]] = {
    "csv": ("fairledger", "polars"),
    "json": ("fairledger", "polars", "orjson"),
    "xlsx": ("fairledger", "polars", "xlsxwriter"),
    "pdf": ("fairledger", "polars", "fpdf2", "fonttools", "altair", "vl-convert-python"),
}
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "json": "application/json",
}


def render(statement: Statement, fmt: str, *, itemise: bool = True) -> bytes:
    """Return ``statement`` rendered as ``fmt`` (one of FORMATS); ValueError for another."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(
            f"statement format {fmt!r}: expected one of {', '.join(FORMATS)}"
        ) from None
    return renderer(statement, itemise=itemise)


def made_with(formats: Sequence[str] = FORMATS) -> dict[str, str]:
    """Return {format: "fairledger 0.1.0, polars 2.2.0, ..."}: the installed versions of the
    distributions that render each of ``formats`` (``RENDERED_WITH``), recorded beside a closed
    statement's SHA-256 so that an auditor can tell why a later re-render could differ."""

    def installed(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} (not installed)"

    return {fmt: ", ".join(installed(name) for name in RENDERED_WITH[fmt]) for fmt in formats}


def file_name(statement: Statement, fmt: str) -> str:
    """Return the file name a statement is downloaded as, e.g. ``G-1_2026-03.csv``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in statement.grant_id)
    return f"{safe}_{statement.period}.{fmt}"


def render_all(statement: Statement, formats: Sequence[str] = FORMATS) -> dict[str, bytes]:
    """Return ``statement`` in each of ``formats`` ({format: bytes}), rendered two at a time.

    The renderers spend most of their time in polars, zlib and vl-convert, which release the
    GIL, so the slowest (XLSX) overlaps the others. The bytes are those of ``render``.
    """
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="statement") as pool:
        # the slowest first, so the other worker takes the rest meanwhile
        order = sorted(formats, key=lambda f: f != "xlsx")
        futures = {fmt: pool.submit(render, statement, fmt) for fmt in order}
        return {fmt: futures[fmt].result() for fmt in formats}
