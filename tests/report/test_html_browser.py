"""report.html in a real browser (Chromium through Playwright): the page fits a phone and a desktop, the
charts' text stays legible, and nothing logs an error. Skipped, with the reason, where Playwright or a
Chromium is not installed."""

from __future__ import annotations

import shutil

import pytest

from conformance.report.writer import write_reports
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
    page_file = write_reports(results, tmp_path, formats=["html", "css"])["html"]
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


# Jenkins' default Content-Security-Policy for archived and published HTML
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"


@pytest.fixture
def served_with_jenkins_csp(tmp_path):
    """The run's report directory served over HTTP with Jenkins' header, as Jenkins serves artifacts."""
    import functools
    import http.server
    import threading

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self):
            self.send_header("Content-Security-Policy", JENKINS_CSP)
            super().end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()
        server.server_close()


def test_under_jenkins_csp_the_page_is_styled_and_the_charts_keep_their_colours(browser, served_with_jenkins_csp):
    out, url = served_with_jenkins_csp
    write_reports(sample_with_raw(), out)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    # report.css applies (the inline <style> is refused): the non-conformant banner is red
    assert page.evaluate("getComputedStyle(document.getElementById('verdict')).backgroundColor") == "rgb(207, 34, 46)"
    # the charts' colours are attributes, which no policy blocks: the latency line is blue, not black
    stroke = page.evaluate("getComputedStyle(document.querySelector('.chart g.series.serie-0 path')).stroke")
    fill = page.evaluate("getComputedStyle(document.querySelector('.chart g.series.serie-0 path')).fill")
    assert stroke == "rgb(31, 119, 180)" and fill == "none", (stroke, fill)
    assert not page.locator("#filters").is_visible()  # scripts are sandboxed off: no dead filter form
    page.close()


def test_printed_to_a4_nothing_is_cut_and_the_details_are_on_paper(browser, tmp_path):
    page_file = write_reports(sample_with_raw(), tmp_path, formats=["html", "css"])["html"]
    page = browser.new_page(viewport={"width": 794, "height": 1123})  # A4 at 96 dpi
    page.goto(page_file.as_uri())
    page.emulate_media(media="print")
    assert page.evaluate("document.documentElement.scrollWidth") <= 794  # digests and URLs wrap
    assert not page.locator("#filters").is_visible()
    assert page.locator("details table.facts").first.is_visible()  # source and rationale, not a closed toggle
    assert page.pdf(format="A4").startswith(b"%PDF")
    page.close()
