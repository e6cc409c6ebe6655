"""A statement as a PDF for people (fpdf2): header, balances, burn-down chart, summaries.

The PDF shows the charges summed by resource, partition and user, and the adjustments; the
itemised lines (up to hundreds of thousands) live in the CSV and XLSX forms, which the PDF
names. Amounts are printed from their exact decimals with thousands separators. The creation
date is the statement's ``generated_for``, so the same statement gives the same bytes.
Text is set in DejaVu Sans when the system has it (Debian ``fonts-dejavu-core``), with Droid
Sans Fallback (``fonts-droid-fallback``) for Chinese, Japanese and Korean when it is there;
without DejaVu, in the PDF core font Helvetica, where characters outside Latin-1 show as ``?``.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator, Sequence
from datetime import UTC
from decimal import Decimal
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF

from models.money.statement import Statement
from reports.statements.cells import (
    check_amounts,
    date_text,
    money_text,
    run_out_note,
    time_text,
)
from reports.statements.chart import burndown_png

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
)


def dejavu_fonts() -> tuple[Path, Path] | None:
    """Return the paths of DejaVu Sans regular and bold, or None when the system lacks them."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


FALLBACK_FONTS = (
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
    Path("/usr/share/fonts/droid/DroidSansFallbackFull.ttf"),
)


def fallback_font() -> Path | None:
    """Return the path of a font for the scripts DejaVu lacks (CJK), or None."""
    return next((p for p in FALLBACK_FONTS if p.is_file()), None)


@functools.cache
def _covered(font: Path) -> frozenset[int]:
    """Return the code points ``font`` has glyphs for."""
    with TTFont(str(font), lazy=True) as ttf:
        return frozenset(ttf.getBestCmap())


def _texts(s: Statement) -> Iterator[str]:
    """Yield every free text the PDF sets (names, reasons), for the font choice."""
    yield from (s.grant_id, s.funder, s.unit, s.regime or "")
    yield from (c.id for c in s.rate_cards)
    for summary in s.summaries:
        yield from summary.amounts
    for column in ("kind", "refers_period", "run_key", "reason"):
        yield from (v for v in s.adjustments[column] if v is not None)


def money_display(value: Decimal, decimals: int) -> str:
    """Return an amount as printed in the PDF: exact, with thousands separators."""
    return format(Decimal(money_text(value, decimals)), f",.{decimals}f")


def percent_display(ratio: Decimal) -> str:
    """Return a ratio as a percentage with the ratio's own places less two (0.4235 → 42.35 %)."""
    return format(ratio.scaleb(2), "f") + " %"


class _Page(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer_text
        self.unicode = False
        self.covered: frozenset[int] = frozenset(range(256))

    def set_cell(self, width: float, height: float, text: str, align: str) -> None:
        """Draw one table cell, re-setting the font after text set in the fallback font.

        fpdf2 2.8 sets a fallback font inside a saved graphics state and then believes its
        own font is still set: without this the next cells show no text.
        """
        self.cell(width, height, text, border="B", align=align)
        self.restore_font(text)

    def restore_font(self, text: str) -> None:
        """Set the current font again if ``text`` needed the fallback font."""
        if any(ord(c) not in self.covered for c in text):
            size = self.font_size_pt
            self.set_font(size=size + 1)
            self.set_font(size=size)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(size=8)
        self.cell(0, 5, self.settable(self.footer_text), align="L")
        self.restore_font(self.footer_text)
        self.set_x(self.l_margin)
        self.cell(0, 5, f"page {self.page_no()} of {{nb}}", align="R")

    def settable(self, value: str) -> str:
        """Return ``value`` as the current font can set it."""
        if self.unicode:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")


def _setup(statement: Statement) -> _Page:
    footer = f"{statement.grant_id} · {statement.period} · fairledger"
    pdf = _Page(footer)
    fonts = dejavu_fonts()
    if fonts is not None:
        pdf.add_font("dejavu", "", str(fonts[0]))
        pdf.add_font("dejavu", "B", str(fonts[1]))
        fallback = fallback_font()
        covered = pdf.covered = _covered(fonts[0])
        if fallback is not None and any(
            ord(c) not in covered for text in _texts(statement) for c in text
        ):  # the fallback font is large: loaded only when a name needs it
            pdf.add_font("fallback", "", str(fallback))
            pdf.set_fallback_fonts(["fallback"], exact_match=False)
        pdf.set_font("dejavu", size=9)
        pdf.unicode = True
    else:
        pdf.footer_text = footer.replace("·", "-")
        pdf.set_font("helvetica", size=9)
    created = statement.generated_for
    pdf.set_creation_date(created if created.tzinfo else created.replace(tzinfo=UTC))
    pdf.set_title(f"Statement {statement.grant_id} {statement.period}")
    pdf.set_author("fairledger")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    return pdf


def _heading(pdf: _Page, text: str) -> None:
    pdf.ln(3)
    pdf.set_font(style="B", size=11)
    pdf.cell(0, 7, pdf.settable(text), new_x="LMARGIN", new_y="NEXT")
    pdf.restore_font(text)
    pdf.set_font(style="", size=9)


def _fit(pdf: _Page, text: str, width: float) -> str:
    """Return ``text`` shortened with an ellipsis so that it fits in a cell ``width`` wide."""
    room = width - 2 * pdf.c_margin
    if pdf.get_string_width(text) <= room:
        return text
    while text and pdf.get_string_width(text + "…") > room:
        text = text[:-1]
    return text + "…"


def _table(
    pdf: _Page,
    rows: Sequence[Sequence[str]],
    widths: Sequence[int],
    align: Sequence[str],
    *,
    heading: Sequence[str] | None = None,
) -> None:
    """Draw a table row by row, the heading repeated after a page break.

    Plain cells rather than fpdf2's table(): several hundred rows (users) stay fast. A value
    wider than its column is cut with an ellipsis.
    """
    height = 5.0
    pdf.set_draw_color(170)
    pdf.set_line_width(0.1)

    def line(values: Sequence[str], style: str) -> None:
        pdf.set_font(style=style)
        for value, width, side in zip(values, widths, align, strict=True):
            text = _fit(pdf, pdf.settable(value), width)
            pdf.set_cell(width, height, text, "R" if side == "RIGHT" else "L")
        pdf.ln(height)

    if heading is not None:
        line(heading, "B")
    for values in rows:
        if pdf.will_page_break(height):
            pdf.add_page()
            if heading is not None:
                line(heading, "B")
        line(values, "")
    pdf.set_font(style="")


def _header_rows(s: Statement) -> list[tuple[str, str]]:
    start, end = date_text(s.grant_start) or "", date_text(s.grant_end) or ""
    closed = f"closed {time_text(s.closed_at)}" if s.status == "closed" else "open"
    rows = [
        ("Grant", s.grant_id),
        ("Funder", s.funder),
        ("Budget", f"{money_display(s.budget, s.decimals)} {s.unit}"),
        ("Grant runs", f"{start} to {end}"),
        ("Regime", s.regime or "none"),
        ("Period", f"{s.period} ({time_text(s.period_start)} to {time_text(s.period_end)})"),
        ("Status", f"{closed}; figures as of {time_text(s.generated_for)}"),
        ("Policy version", str(s.policy_version)),
    ]
    for card in s.rate_cards:
        rows.append(("Rate card", f"{card.id}, effective {card.effective}, {card.currency}"))
    return rows


def _balance_rows(s: Statement) -> list[tuple[str, str]]:
    d, unit = s.decimals, s.unit
    run_out = s.run_out.isoformat() if s.run_out is not None else run_out_note(s) or ""
    return [
        ("Opening balance", f"{money_display(s.opening_balance, d)} {unit}"),
        ("Charges", f"{money_display(s.total_charges, d)} {unit}"),
        ("Adjustments", f"{money_display(s.total_adjustments, d)} {unit}"),
        ("Closing balance", f"{money_display(s.closing_balance, d)} {unit}"),
        ("Budget used", percent_display(s.budget_used)),
        ("Burn rate per day", f"{money_display(s.burn_rate_per_day, d)} {unit}"),
        ("Run-out date", run_out),
    ]


def render_pdf(statement: Statement, *, itemise: bool = True) -> bytes:
    """Return the statement as PDF bytes (same statement, same bytes).

    ``itemise`` only changes the note on where the itemised lines are: the PDF always shows
    the charges summed by resource, partition and user.
    """
    s = statement
    check_amounts(s)
    pdf = _setup(s)
    pdf.set_font(style="B", size=15)
    title = f"Charge-back statement {s.grant_id} {s.period}"
    pdf.cell(0, 9, pdf.settable(title))
    pdf.restore_font(title)
    pdf.ln(10)
    pdf.set_font(style="", size=9)
    _table(pdf, _header_rows(s), (40, 140), ("LEFT", "LEFT"))
    _heading(pdf, "Balance")
    _table(pdf, _balance_rows(s), (40, 50), ("LEFT", "RIGHT"))

    png = burndown_png(s)
    if png is not None:
        _heading(pdf, "Burn-down (remaining budget per day; dashed: forecast at the burn rate)")
        pdf.image(io.BytesIO(png), x=pdf.l_margin, w=180)
        pdf.ln(2)

    for summary in s.summaries:
        _heading(pdf, f"Charges by {summary.dimension}")
        by = [(value, money_display(a, s.decimals)) for value, a in summary.amounts.items()]
        if not by:
            by = [("no charges", money_display(Decimal(0), s.decimals))]
        _table(pdf, by, (90, 40), ("LEFT", "RIGHT"), heading=(summary.dimension, s.unit))

    if s.adjustments.height:
        _heading(pdf, "Adjustments")
        rows = [
            (
                a["kind"] or "",
                a["refers_period"] or "",
                a["run_key"] or "",
                a["reason"] or "",
                money_display(a["amount"], s.decimals),
            )
            for a in s.adjustments.iter_rows(named=True)
        ]
        _table(
            pdf,
            rows,
            (22, 20, 48, 60, 30),
            ("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT"),
            heading=("kind", "period", "run", "reason", s.unit),
        )

    _heading(pdf, "Itemised lines")
    lines = "itemised" if itemise else "summarised by user, partition and resource"
    pdf.multi_cell(
        0,
        5,
        pdf.settable(
            f"{s.charges.height} charge lines. The CSV and XLSX forms of this statement list "
            f"them ({lines}); the CSV and JSON forms carry the exact amounts."
        ),
    )
    return bytes(pdf.output())
