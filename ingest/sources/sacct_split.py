"""The first stage of ``parse_sacct``: sacct text cut into lines, the header, and raw fields.

Bytes that are UTF-8 without carriage returns are read by polars as they are, twice: once as
one ``line`` per physical line (kept for quarantined records and odd lines), once by its CSV
reader with ``|`` as the separator, which splits every line into fields on all cores. Other
input is decoded (``decode_text``) and split with string expressions. Both ways give the same
columns; a differential test holds them equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ingest.sources.sacct_fields import FREE_TEXT, USED, is_header
from models.errors import ParseError

# A byte that sacct output never holds, given to polars' CSV reader as the field separator so
# that each line is one value.
_NO_SEPARATOR = b"\x1f"
_NO_SEP = _NO_SEPARATOR.decode()


@dataclass(frozen=True)
class Lines:
    """The lines of a text: ``frame`` holds the non-blank ones as ``line_no`` (1-based,
    physical) and ``line``; ``data`` the bytes they were read from, when polars could read them
    as they are (UTF-8 without carriage returns), and ``physical`` how many lines it found."""

    frame: pl.DataFrame
    data: bytes | None = None
    physical: int = 0

    def with_frame(self, frame: pl.DataFrame) -> Lines:
        """Return these lines with ``frame`` instead (some of them, the same line numbers)."""
        return Lines(frame, self.data, self.physical)


def decode_text(data: bytes) -> str:
    """Return ``data`` decoded as ``Path.read_text`` does: UTF-8 with replacement characters,
    universal newlines (``\\r\\n`` and ``\\r`` become ``\\n``)."""
    text = data.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _byte_lines(data: bytes) -> pl.DataFrame | None:
    """Return the lines of ``data`` as a ``line`` column (an empty line is null), read by polars
    straight from the bytes; None when ``data`` needs ``decode_text`` (a carriage return, a
    byte-order mark, invalid UTF-8, or the separator byte)."""
    if b"\r" in data or _NO_SEPARATOR in data or data.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        return pl.read_csv(
            data, has_header=False, separator=_NO_SEP, quote_char=None, schema={"line": pl.String}
        )
    except pl.exceptions.ComputeError:  # not UTF-8
        return None


def data_lines(text: str | bytes) -> Lines:
    """Return the non-blank lines of ``text`` (see ``Lines``)."""
    data: bytes | None = None
    if isinstance(text, bytes):
        read = _byte_lines(text)
        if read is None:
            return data_lines(decode_text(text))
        lines, data = read, text
    else:
        # Split by polars, not str.split: no Python string per line.
        lines = (
            pl.DataFrame({"line": [text]}, schema={"line": pl.String})
            .select(pl.col("line").str.split("\n"))
            .explode("line")
        )
        if "\r" in text:
            lines = lines.with_columns(pl.col("line").str.strip_suffix("\r"))
    numbered = lines.with_row_index("line_no", offset=1).with_columns(
        pl.col("line_no").cast(pl.Int64)
    )
    return Lines(numbered.filter(pl.col("line").str.strip_chars() != ""), data, lines.height)


def header(
    lines: pl.DataFrame, fields: Sequence[str] | None, source: str
) -> tuple[list[str], pl.DataFrame]:
    """Return the lower-case field names and the data lines without header lines."""
    first = lines["line"][0]
    if is_header(first):
        head = first
        lines = lines.filter(pl.col("line") != head)
    elif fields is not None:
        head = "|".join(fields)
    else:
        raise ParseError(
            f"{source}: line {lines['line_no'][0]} is not a sacct header; for output written "
            "with --noheader, pass --fields with the sacct --format list, in order"
        )
    names = [n.strip().lower() for n in head.split("|")]
    if len(names) > 1 and names[-1] == "":
        names.pop()
        lines = lines.with_columns(pl.col("line").str.strip_suffix("|"))
    return names, lines


def split(lines: Lines, names: list[str]) -> pl.DataFrame:
    """Return the lines split into raw string columns ``r_<field>``, ``_pieces`` (how many
    ``|``-separated pieces the line has) and ``_shape_ok``.

    With exactly one free-text field, a line with extra pieces gives them to that field:
    fields left of it are counted from the left, those right of it from the right. Any other
    line with too few or too many pieces has ``_shape_ok`` false.
    """
    n = len(names)
    where = {name: i for i, name in reversed(list(enumerate(names)))}
    free = [i for i, name in enumerate(names) if name in FREE_TEXT]
    free_at = free[0] if len(free) == 1 else None
    pieces = (pl.col("line").str.count_matches("|", literal=True) + 1).cast(pl.UInt32)
    table = lines.frame.with_columns(pieces.alias("_pieces"))
    raw = None
    if lines.data is not None:
        raw = _read_fields(lines.data, names, where, table["line_no"], lines.physical)
    if raw is None:
        raw = _split_fields(table["line"], names, where)
    shape_ok = (pl.col("_pieces") == n) | ((pl.col("_pieces") > n) & (free_at is not None))
    split = pl.concat(
        [table.select("line_no", "line", "_pieces", shape_ok.alias("_shape_ok")), raw],
        how="horizontal",
    )
    rows = table.select(pl.arg_where(pl.col("_pieces") != n)).to_series()
    if not rows.len():
        return split
    # Lines with more or fewer pieces than fields are split again on their own, and their
    # values written over the first split's. When each has extra pieces for the one free-text
    # field, the fields left of it were right already.
    odd = table[rows]
    fixed = _split_odd(odd, names)
    left_right = free_at is not None and bool((odd["_pieces"] > n).all())
    redo = [c for c in USED if c in where and not (left_right and where[c] < (free_at or 0))]
    return split.with_columns(split[f"r_{c}"].scatter(rows, fixed[f"r_{c}"]) for c in redo)


def _split_fields(cut: pl.Series, names: list[str], where: dict[str, int]) -> pl.DataFrame:
    """Return the ``r_<field>`` columns of the lines ``cut`` split at their first n ``|``."""
    n = len(names)
    # The struct is a column first: read from an expression it would be split once per field.
    fields = pl.col("_fields")
    return (
        cut.str.splitn("|", n + 1)
        .alias("_fields")
        .to_frame()
        .select(
            (fields.struct[where[c]] if c in where else pl.lit(None, pl.String)).alias(f"r_{c}")
            for c in USED
        )
    )


def _read_fields(
    data: bytes, names: list[str], where: dict[str, int], line_no: pl.Series, physical: int
) -> pl.DataFrame | None:
    """Return the ``r_<field>`` columns of the physical lines ``line_no`` of ``data``, split by
    polars' CSV reader (a line's pieces beyond the n-th are dropped, missing ones are "": such
    lines are not exact and are split again by the caller); None if the reader fails or does
    not find the ``physical`` lines the one-column read found (the caller splits the lines
    then)."""
    wanted = sorted({where[c] for c in USED if c in where})
    try:
        csv = pl.read_csv(
            data,
            has_header=False,
            separator="|",
            quote_char=None,
            schema={f"column_{i + 1}": pl.String for i in range(len(names))},
            columns=wanted,
            truncate_ragged_lines=True,
            missing_columns="insert",  # the first line may be blank, or short
            empty_string_is_null=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if csv.height != physical:
        return None
    index = line_no - 1
    first = int(index[0]) if index.len() else 0
    if index.len() and int(index[-1]) - first + 1 == index.len():  # one run of lines: no copy
        csv = csv.slice(first, index.len())
    else:
        csv = csv[index]
    return csv.select(
        (pl.col(f"column_{where[c] + 1}") if c in where else pl.lit(None, pl.String)).alias(
            f"r_{c}"
        )
        for c in USED
    )


def _split_odd(lines: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Return ``split``'s columns for lines with more or fewer pieces than fields."""
    n = len(names)
    free = [i for i, name in enumerate(names) if name in FREE_TEXT]
    free_at = free[0] if len(free) == 1 else None
    parts = pl.col("_parts")
    count = parts.list.len()
    where = {name: i for i, name in reversed(list(enumerate(names)))}

    def column(name: str) -> pl.Expr:
        i = where.get(name)
        if i is None:
            value = pl.lit(None, pl.String)
        elif free_at is None or i < free_at:
            value = parts.list.get(i, null_on_oob=True)
        elif i > free_at:
            value = parts.list.get(i - n, null_on_oob=True)
        else:
            extra = parts.list.slice(free_at, (count - n + 1).clip(lower_bound=0)).list.join("|")
            value = pl.when(count == n).then(parts.list.get(i)).otherwise(extra)
        return value.alias(f"r_{name}")

    return (
        lines.lazy()
        .with_columns(pl.col("line").str.split("|").alias("_parts"))
        .select("line_no", "line", "_pieces", *(column(c) for c in USED))
        .collect()
    )
