"""Plain aligned text tables for the command line."""

from __future__ import annotations

import math

import polars as pl


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6f}"
    return str(value)


def build_table(frame: pl.DataFrame) -> list[str]:
    """Return ``frame`` as lines of a text table: a header, a rule, one line per row.

    Floats show six decimals (``inf`` as such), nulls as empty cells; numbers align right.
    """
    cells = [[_cell(v) for v in row] for row in frame.iter_rows()]
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    widths = [
        max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(frame.columns)
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line(frame.columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
