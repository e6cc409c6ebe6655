"""Every dashboard page in a real headless Chromium against the real server.

The browser is Debian's ``chromium`` driven by Playwright with that executable (never
``playwright install``, which downloads a browser). When ``/usr/bin/chromium`` is missing the
test installs it with apt-get, as the Slurm suite installs Slurm; it is skipped, with the
reason, only where that is impossible (not root, no apt-get). ``FAIRLEDGER_CHROMIUM`` names
another executable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_site import Site
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from tests.debian_packages import ensure_packages

CHROMIUM = Path(os.environ.get("FAIRLEDGER_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGES = ("usage", "shares", "ingest", "burndown", "compliance")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Marks each page draws at least: bars, table cells, or (burn-down) two long lines.
MIN_MARKS = {"burndown": 2}


def _ensure_chromium() -> None:
    ensure_packages(["chromium"], missing=not CHROMIUM.exists())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    _ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _watch(page: Page) -> tuple[list[str], list[str]]:
    """Return (console errors, failed requests), filled as the page runs."""
    errors: list[str] = []
    failed: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def on_finished(request: Request) -> None:
        response = request.response()
        if response is not None and response.status >= 400:
            failed.append(f"{response.status} {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    page.on("requestfinished", on_finished)
    return errors, failed


def _marks(page: Page) -> int:
    """Return how many drawn marks (paths with a shape, or texts) the chart's SVG holds."""
    count = page.evaluate(
        """() => [...document.querySelectorAll(
                    '#chart svg .role-mark path, #chart svg .role-mark text')]
              .filter((e) => e.tagName === 'text'
                             ? e.textContent : (e.getAttribute('d') || '').length > 8)
              .length"""
    )
    return int(count)


def test_every_dashboard_renders_in_chromium(site: Site, browser: Browser, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors, failed = _watch(page)
    base = site.server.base
    try:
        # a user opens a page, is asked for a token once, and pastes it
        page.goto(f"{base}/dashboards/usage")
        page.wait_for_selector("#login:not([hidden])")
        assert page.locator("#chart svg").count() == 0, "no chart before a token is given"
        page.fill("#token", site.tokens["admin"])
        page.click("#login button")
        for name in PAGES:
            if name != "usage":  # the token stays in the tab: no second prompt
                page.goto(f"{base}/dashboards/{name}")
            page.wait_for_selector("body[data-rendered='true']", timeout=30_000)
            assert page.locator("#login").is_hidden()
            marks = _marks(page)
            assert marks >= MIN_MARKS.get(name, 5), f"{name}: {marks} marks drawn"
            shot = tmp_path / f"{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            data = shot.read_bytes()
            assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000, (name, len(data))
        # the export button downloads the PNG the server draws
        with page.expect_download() as download:
            page.click("#png")
        saved = tmp_path / "export.png"
        download.value.save_as(saved)
        assert saved.read_bytes().startswith(PNG_SIGNATURE)
        assert errors == [], errors
        assert failed == [], failed
    finally:
        context.close()


def test_viewer_pages_show_only_its_accounts(site: Site, browser: Browser, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors, failed = _watch(page)
    try:
        page.goto(f"{site.server.base}/dashboards/shares?cluster=hpc")
        page.fill("#token", site.tokens["viewer"])
        page.click("#login button")
        page.wait_for_selector("body[data-rendered='true']", timeout=30_000)
        labels = set(page.locator("#chart svg .role-axis-label text").all_text_contents())
        assert {"physics-lab", "physics-hpc"} <= labels
        assert "sciences" not in labels and "ml-lab" not in labels
        # clicking an account's bar goes one level down, to its users
        page.locator("#chart svg .role-mark path").first.click()
        page.wait_for_url("**account=physics-*", timeout=10_000)
        page.wait_for_selector("body[data-rendered='true']", timeout=30_000)
        names = {
            label
            for label in page.locator("#chart svg .role-axis-label text").all_text_contents()
            if not label.replace(".", "").isdigit()  # the x axes' ticks
        }
        assert names and all(name.startswith("u") for name in names), names
        page.screenshot(path=str(tmp_path / "viewer-shares.png"), full_page=True)
        assert errors == [], errors
        assert failed == [], failed
    finally:
        context.close()
