"""Charge-back statement renderers: one ``Statement`` → CSV, XLSX, PDF or JSON bytes.

Every renderer formats the Decimals of ``models.statement.Statement`` and computes no amount;
the same statement gives byte-identical files (layouts in docs/statements.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from models.statement import Statement
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
