"""Bulk rows of an XLSX worksheet written as SpreadsheetML by polars, not cell by cell.

xlsxwriter spends ~10 µs of Python per cell: 100k charge lines × 16 columns take 15 s or
more. For the one large sheet, the renderer lets xlsxwriter write the header, column widths
and formats, frozen panes and the autofilter, then this module writes the data rows as
``<row>`` elements built with polars string expressions (inline strings, numbers written as
their exact decimal text) into that sheet's ``<sheetData>`` and re-zips the workbook with the
same entries, order and timestamps. Cell styles are the column styles xlsxwriter wrote into
``<cols>``, so every cell has its column's number format.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence

import polars as pl

MAX_ROWS = 1_048_576  # Excel's limit, the header row included
_COL = re.compile(rb'<col min="(\d+)" max="(\d+)"[^>]*?style="(\d+)"')


def column_letter(index: int) -> str:
    """Return the spreadsheet letters of a 0-based column index (0 → A, 26 → AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _xml_text(column: str) -> pl.Expr:
    """The column's text escaped for an XML text node (and for Excel's ``_xHHHH_`` escapes)."""
    return (
        pl.col(column)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
        .str.replace_all(r"_(x[0-9A-Fa-f]{4}_)", "_x005F_${1}")
        .str.replace_all(r"[\x00-\x08\x0B\x0C\x0E-\x1F]", "\ufffd")
    )


def rows_xml(
    cells: pl.DataFrame,
    numeric: Sequence[bool],
    styles: Sequence[int | None],
    *,
    first_row: int = 2,
) -> bytes:
    """Return ``<row>`` elements for ``cells`` (all String columns; null = no cell).

    A ``numeric`` column holds number literals (``12.50``, ``46084.5``) written as ``<v>``;
    the others are inline strings. ``styles`` are the cells' style indexes (None = none).
    """
    number = pl.int_range(pl.len(), dtype=pl.Int64) + first_row
    row = number.cast(pl.String)
    parts: list[pl.Expr] = [pl.lit('<row r="'), row, pl.lit('">')]
    for i, (name, is_number, style) in enumerate(zip(cells.columns, numeric, styles, strict=True)):
        s = f' s="{style}"' if style is not None else ""
        ref = pl.concat_str([pl.lit(f'<c r="{column_letter(i)}'), row])
        if is_number:
            cell = pl.concat_str([ref, pl.lit(f'"{s}><v>'), pl.col(name), pl.lit("</v></c>")])
        else:
            space = (
                pl.when(pl.col(name).str.contains(r"^\s|\s$"))
                .then(pl.lit(' xml:space="preserve"'))
                .otherwise(pl.lit(""))
            )
            cell = pl.concat_str(
                [ref, pl.lit(f'"{s} t="inlineStr"><is><t'), space, pl.lit(">"), _xml_text(name)]
                + [pl.lit("</t></is></c>")]
            )
        parts.append(pl.when(pl.col(name).is_not_null()).then(cell))
    parts.append(pl.lit("</row>"))
    joined = cells.select(pl.concat_str(parts, ignore_nulls=True).str.join(""))
    text = joined.item()
    return (text or "").encode("utf-8")


def column_styles(sheet_xml: bytes, columns: int) -> list[int | None]:
    """Return the style index xlsxwriter gave each of the first ``columns`` columns."""
    styles: list[int | None] = [None] * columns
    for low, high, style in _COL.findall(sheet_xml):
        for i in range(int(low) - 1, min(int(high), columns)):
            styles[i] = int(style)
    return styles


def fill_sheet(xlsx: bytes, sheet: str, cells: pl.DataFrame, numeric: Sequence[bool]) -> bytes:
    """Return the workbook ``xlsx`` with ``cells`` as the data rows (from row 2) of ``sheet``.

    ``sheet`` is the part name (``xl/worksheets/sheet2.xml``); it must hold only its header
    row. Entries keep their order, timestamps and compression, so the bytes are reproducible.
    """
    if cells.height + 1 > MAX_ROWS:
        raise ValueError(
            f"{cells.height} lines do not fit in one XLSX sheet ({MAX_ROWS - 1} at most): "
            "use the CSV or JSON form"
        )
    source = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == sheet:
                styles = column_styles(data, cells.width)
                last = f"{column_letter(cells.width - 1)}{cells.height + 1}"
                data = re.sub(
                    rb'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}"/>'.encode(), data
                )
                head, tail = data.split(b"</sheetData>", 1)
                data = head + rows_xml(cells, numeric, styles) + b"</sheetData>" + tail
            target.writestr(info, data, compress_type=info.compress_type, compresslevel=1)
    return out.getvalue()
