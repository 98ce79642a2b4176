"""report.html in a real browser (Chromium through Playwright): the page fits a phone and a desktop, the
charts' text stays legible, and nothing logs an error. Skipped, with the reason, where Playwright or a
Chromium is not installed."""

from __future__ import annotations

import shutil

import pytest

from conformance.report.html import render_html
from tests.report.samples import sample_with_raw

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.mark.parametrize("width", [1400, 390])
def test_the_report_fits_the_screen_with_legible_charts_and_no_errors(browser, tmp_path, width):
    results = sample_with_raw()
    results["calibration"] = {"p50_us": 120, "p99_us": 300, "histogram": "HISTFAAAA" + "x" * 3000}
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(results), encoding="utf-8")
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(page_file.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing widens the page
    smallest = page.evaluate("Math.min(...Array.from(document.querySelectorAll('.chart svg text'))"
                             ".map(t => t.getBoundingClientRect().height).filter(h => h > 0))")
    assert smallest >= 8, smallest  # chart labels readable, not scaled down to a few pixels
    assert page.locator("#filters").is_visible()  # JavaScript on: the filters work
    assert errors == []
    page.close()
