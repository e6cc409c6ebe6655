"""Bulk rows of an XLSX worksheet written as SpreadsheetML by polars, not cell by cell.

xlsxwriter spends ~10 µs of Python per cell: 100k charge lines × 16 columns take 15 s or
more. For the line sheets (charges, adjustments), the renderer lets xlsxwriter write the
header, column widths and formats, frozen panes and the autofilter, then this module writes
the data rows as ``<row>`` elements built with polars string expressions (inline strings,
numbers written as their exact decimal text) into each sheet's ``<sheetData>`` and re-zips
the workbook with the same entries, order and timestamps. Cell styles are the column styles
xlsxwriter wrote into ``<cols>``, so every cell has its column's number format.
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


_NEEDS_ESCAPE = r"[&<>\x00-\x08\x0B\x0C\x0E-\x1F]|_x[0-9A-Fa-f]{4}_"


_CONTROL = [c for c in range(32) if chr(c) not in "\t\n\r"]


def _xml_text(column: str) -> pl.Expr:
    """The column's text escaped for an XML text node, as xlsxwriter and Excel escape it.

    ``& < >`` become entities; a control character becomes ``_xHHHH_`` and a literal
    ``_xHHHH_`` gets its underscore escaped (``_x005F_xHHHH_``), which Excel reads back as
    the original text (openpyxl does not undo these two for inline strings).
    """
    text = (
        pl.col(column)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
        .str.replace_all(r"_(x[0-9A-Fa-f]{4}_)", "_x005F_${1}")
    )
    for code in _CONTROL:
        text = text.str.replace_all(chr(code), f"_x{code:04X}_", literal=True)
    return text


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
    text = [c for c, n in zip(cells.columns, numeric, strict=True) if not n]
    # one pass finds the columns that need escaping, xml:space or null handling at all
    facts = cells.select(
        *[pl.col(c).str.contains(_NEEDS_ESCAPE).any().alias(f"e{c}") for c in text],
        *[pl.col(c).str.contains(r"^\s|\s$").any().alias(f"s{c}") for c in text],
        *[pl.col(c).is_null().any().alias(f"n{c}") for c in cells.columns],
    ).row(0, named=True)
    row = (pl.int_range(pl.len(), dtype=pl.Int64) + first_row).cast(pl.String)
    parts: list[pl.Expr] = [pl.lit('<row r="'), row, pl.lit('">')]
    for i, (name, is_number, style) in enumerate(zip(cells.columns, numeric, styles, strict=True)):
        s = f' s="{style}"' if style is not None else ""
        head = [pl.lit(f'<c r="{column_letter(i)}'), row]
        if is_number:
            cell = [*head, pl.lit(f'"{s}><v>'), pl.col(name), pl.lit("</v></c>")]
        else:
            value = _xml_text(name) if facts[f"e{name}"] else pl.col(name)
            space: list[pl.Expr] = []
            if facts[f"s{name}"]:
                preserve = pl.col(name).str.contains(r"^\s|\s$")
                space = [
                    pl.when(preserve).then(pl.lit(' xml:space="preserve"')).otherwise(pl.lit(""))
                ]
            opening = pl.lit(f'"{s} t="inlineStr"><is><t')
            cell = [*head, opening, *space, pl.lit(">"), value, pl.lit("</t></is></c>")]
        if facts[f"n{name}"]:  # no cell at all for a null
            parts.append(pl.when(pl.col(name).is_not_null()).then(pl.concat_str(cell)))
        else:
            parts.extend(cell)
    parts.append(pl.lit("</row>"))
    rows = cells.select(pl.concat_str(parts, ignore_nulls=True))
    # written by polars straight to bytes: no 70 MB Python string on the way
    buffer = io.BytesIO()
    rows.write_csv(buffer, include_header=False, quote_style="never", line_terminator="")
    return buffer.getvalue()


def column_styles(sheet_xml: bytes, columns: int) -> list[int | None]:
    """Return the style index xlsxwriter gave each of the first ``columns`` columns."""
    styles: list[int | None] = [None] * columns
    for low, high, style in _COL.findall(sheet_xml):
        for i in range(int(low) - 1, min(int(high), columns)):
            styles[i] = int(style)
    return styles


SheetRows = tuple[pl.DataFrame, Sequence[bool]]  # cells (all String) and which are numbers


def _filled(data: bytes, cells: pl.DataFrame, numeric: Sequence[bool]) -> bytes:
    """Return worksheet XML ``data`` (header row only) with ``cells`` as its rows from row 2."""
    styles = column_styles(data, cells.width)
    last = f"{column_letter(cells.width - 1)}{cells.height + 1}"
    data = re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}"/>'.encode(), data)
    head, tail = data.split(b"</sheetData>", 1)
    return b"".join([head, rows_xml(cells, numeric, styles), b"</sheetData>", tail])


def fill_sheets(xlsx: bytes, sheets: dict[str, SheetRows]) -> bytes:
    """Return the workbook ``xlsx`` with each sheet's data rows (from row 2) written in.

    ``sheets`` maps a part name (``xl/worksheets/sheet2.xml``) to its rows; each of those
    sheets must hold only its header row. Entries keep their order and timestamps, so the
    bytes are reproducible.
    """
    for cells, _ in sheets.values():
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
            if info.filename in sheets:
                data = _filled(data, *sheets[info.filename])
            target.writestr(info, data, compress_type=info.compress_type, compresslevel=1)
    return out.getvalue()
