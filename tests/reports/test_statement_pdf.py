"""The PDF statement rendered by poppler: a page image that is not blank, and the totals in
its text.

``pdftoppm`` and ``pdftotext`` (Debian ``poppler-utils``) and the fonts the PDF embeds
(``fonts-dejavu-core``, ``fonts-droid-fallback`` for CJK names) are installed with apt-get when
missing, as the Slurm suite installs Slurm; the tests are skipped, with the reason, only where
that is impossible (not root, no apt-get).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from models.money.statement import Statement
from reports.statements import pdf_form, render
from reports.statements.pdf_form import dejavu_fonts, fallback_font, money_display
from tests.debian_packages import ensure_packages
from tests.reports.statement_fixtures import ALL, LI, ZOE, small_statement

PACKAGES = ["poppler-utils", "fonts-dejavu-core", "fonts-droid-fallback"]


def _missing() -> bool:
    tools = [shutil.which(t) for t in ("pdftoppm", "pdftotext")]
    return None in tools or dejavu_fonts() is None or fallback_font() is None


@pytest.fixture(scope="module", autouse=True)
def _poppler_and_fonts() -> None:
    ensure_packages(PACKAGES, missing=_missing())


def _pdf(statement: Statement, tmp_path: Path) -> Path:
    path = tmp_path / "statement.pdf"
    path.write_bytes(render(statement, "pdf"))
    return path


def _text(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, check=True
    )
    return done.stdout.decode("utf-8")


def _page_image(pdf: Path, tmp_path: Path) -> Image.Image:
    subprocess.run(
        ["pdftoppm", "-png", "-r", "100", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
        capture_output=True,
    )
    (png,) = tmp_path.glob("page*.png")
    return Image.open(png).convert("RGB")


def _inked(image: Image.Image) -> tuple[float, int]:
    """Return the share of non-white pixels and the number of blue (chart line) pixels."""
    raw = image.tobytes()
    pixels = list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    ink = sum(1 for r, g, b in pixels if min(r, g, b) < 200) / len(pixels)
    blue = sum(1 for r, g, b in pixels if b > 120 and b - r > 50 and b - g > 20)
    return ink, blue


@pytest.mark.parametrize("name", list(ALL))
def test_pdf_text_shows_the_balances_as_printed(name: str, tmp_path: Path) -> None:
    statement = ALL[name]()
    text = _text(_pdf(statement, tmp_path))
    d, unit = statement.decimals, statement.unit
    for label, amount in [
        ("Opening balance", statement.opening_balance),
        ("Charges", statement.total_charges),
        ("Closing balance", statement.closing_balance),
    ]:
        line = next(row for row in text.splitlines() if row.startswith(label))
        assert line.split()[-2:] == [money_display(amount, d), unit], line
    assert f"Charge-back statement {statement.grant_id} {statement.period}" in text


def test_pdf_of_the_small_site_prints_names_adjustments_and_page_numbers(tmp_path: Path) -> None:
    text = _text(_pdf(small_statement(), tmp_path))
    assert "8,765.44 EUR" in text and "8,664.76 EUR" in text and "13.35 %" in text
    assert LI in text and ZOE in text
    assert 'goodwill credit, ticket "4411"' in text and "-12.50" in text
    assert "page 1 of 2" in text and "page 2 of 2" in text
    assert "6 charge lines" in text


@pytest.mark.parametrize(
    ("name", "note"),
    [("zero_budget", "budget already used up"), ("empty", "not at this burn rate")],
)
def test_pdf_says_why_there_is_no_run_out_date(name: str, note: str, tmp_path: Path) -> None:
    text = _text(_pdf(ALL[name](), tmp_path))
    line = next(row for row in text.splitlines() if row.startswith("Run-out date"))
    assert line.split(maxsplit=2)[-1].strip() == note


@pytest.mark.slow
def test_pdf_page_image_is_not_blank_and_draws_the_burndown(tmp_path: Path) -> None:
    ink, blue = _inked(_page_image(_pdf(small_statement(), tmp_path), tmp_path))
    assert ink > 0.02
    assert blue > 200  # the chart's line

    no_chart = tmp_path / "zero"
    no_chart.mkdir()
    ink, blue = _inked(_page_image(_pdf(ALL["zero_budget"](), no_chart), no_chart))
    assert ink > 0.01
    assert blue == 0  # no burn-down days: no chart


def test_without_dejavu_the_pdf_uses_helvetica_and_marks_what_it_cannot_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdf_form, "FONT_DIRS", (tmp_path / "no-fonts",))
    text = _text(_pdf(small_statement(), tmp_path))
    assert "8,664.76 EUR" in text
    assert ZOE in text  # Latin-1
    assert "??" in text and LI not in text
