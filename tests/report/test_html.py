"""report.html: self-contained, escaped, filterable, with charts when raw measurements exist."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from conformance.report.html import render_html

# An attribute or CSS value that loads or links something outside the file.
EXTERNAL_ATTR = re.compile(
    r"""\b(?:src|href|action|srcset|poster|data|formaction)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)""", re.I)
CSS_URL = re.compile(r"url\(\s*['\"]?(?!data:|#)", re.I)


class Tags(HTMLParser):
    """Every element and attribute as a browser's tokenizer sees them."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def named(self, name: str) -> list[dict]:
        return [attrs for tag, attrs in self.tags if tag == name]


@pytest.fixture
def page(non_conformant) -> str:
    return render_html(non_conformant)


def test_self_contained_no_external_references(any_results):
    html = render_html(any_results)
    assert not EXTERNAL_ATTR.search(html), EXTERNAL_ATTR.search(html).group(0)
    assert not CSS_URL.search(html) and "@import" not in html
    tags = Tags(html)
    # One link only: report.css beside it, the same rules as the inline <style> (for strict CSPs)
    assert tags.named("link") == [{"rel": "stylesheet", "href": "report.css"}]
    assert not tags.named("iframe") and not tags.named("img")
    for tag, attrs in tags.tags:  # belt and braces: no attribute value points to another place
        for name, value in attrs.items():
            if name in ("href", "src", "xlink:href") and tag != "link":
                assert (value or "").startswith("#"), (name, value)
    from conformance.report.html import render_css
    assert render_css(any_results).rstrip("\n") in html  # the file alone is the whole report


def test_charts_carry_no_pygal_script_or_cdn(with_raw):
    html = render_html(with_raw)
    assert "kozea.github.io" not in html and "pygal-tooltips" not in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 4
    for svg in svgs:  # only the SVG namespace name may look like a URL (pygal's comments hold others)
        assert "<script" not in svg and "<!--" not in svg
        assert not re.search(r"https?://", svg.replace('xmlns="http://www.w3.org/2000/svg"', ""))


def test_only_the_nonced_filter_script_runs(any_results):
    html = render_html(any_results)
    tags = Tags(html)
    scripts = tags.named("script")
    assert len(scripts) == 1
    nonce = scripts[0]["nonce"]
    csp = next(m["content"] for m in tags.named("meta") if m.get("http-equiv") == "Content-Security-Policy")
    assert f"script-src 'nonce-{nonce}'" in csp and "default-src 'none'" in csp
    assert not [name for _, attrs in tags.tags for name in attrs if name.startswith("on")]


def test_target_text_is_escaped_everywhere(hostile, injection):
    html = render_html(hostile)
    assert "<script>alert(1)</script>" not in html
    assert '"><img src=x onerror=' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text
    tags = Tags(html)
    assert len(tags.named("script")) == 1 and not tags.named("img")
    assert not [name for _, attrs in tags.tags for name in attrs if name.startswith("on")]
    assert "\x1b" not in html and "\x00" not in html
    # the scope and the not-measured reasons and remedies too
    assert '<p class="scope partial" id="scope">PARTIAL RUN: narrowed by --site &lt;script&gt;' in html
    section = re.search(r'<h2 id="problems-not-measured">.*?</section>', html, re.S).group(0)
    assert "no host &lt;script&gt;alert(1)&lt;/script&gt;" in section and "add &lt;script&gt;" in section


def test_hostile_text_inside_svg_stays_text(hostile):
    html = render_html(hostile)
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 4
    assert all("<script" not in svg and "<img" not in svg for svg in svgs)
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in svg for svg in svgs)  # the title, escaped


def test_verdict_banner_and_counts(page):
    assert re.search(r'<header class="banner non-conformant" id="verdict">\s*'
                     r'<h1>Edge conformance: NON-CONFORMANT', page)
    counts = re.findall(r"<li class=\"[a-z]*\"><b>(\d+)</b><span class=\"status s-([a-z-]+)\">", page)
    assert counts == [("1", "pass"), ("2", "fail"), ("2", "error"), ("1", "inconclusive"), ("1", "not-applicable"),
                      ("1", "not-measured"), ("1", "waived"), ("1", "not-run")]
    assert ('<p id="verdict-reason"><strong>NON-CONFORMANT: 1 must failed, 1 must not measured, 1 must in error, '
            '1 must inconclusive</strong></p>') in page


def _css_classes(html: str) -> set[str]:
    return set(re.findall(r"\.s-([a-z-]+)", re.search(r"<style>.*?</style>", html, re.S).group(0)))


def test_every_status_has_a_colour(page, legacy_v1):
    from conformance.model import results as R

    assert set(R.STATUSES) | {"skip", "advisory"} <= _css_classes(page)
    assert "s-skip" in render_html(legacy_v1)  # v1's skip still renders with its colour


def test_scope_is_in_the_banner_first(page, partial):
    banner = re.search(r'<header class="banner.*?</header>', page, re.S).group(0)
    scope = re.search(r'<p class="scope (\w+)" id="scope">(.*?)</p>', banner)
    assert scope.groups() == ("full", "Full run: every requirement of the profiles on every site it applies to")
    assert "Changed by" not in banner and "defects" not in banner
    banner = re.search(r'<header class="banner.*?</header>', render_html(partial), re.S).group(0)
    assert banner.index('id="scope"') < banner.index("<dl>")
    assert '<p class="scope partial" id="scope">PARTIAL RUN: narrowed by --suite functional security</p>' in banner
    assert '<p class="scope changed">Changed by: --defect store-1:slow-path, --waivers waivers.yaml</p>' in banner
    assert ('<p id="remedies">To measure them: add --suite latency; add a host to store-1, store-2; '
            'pass --allow-faults</p>') in banner


def test_old_results_render(legacy_v1):
    html = render_html(legacy_v1)
    assert '<p class="scope unknown" id="scope">Scope not recorded' in html
    assert 'data-status="skip"' in html and '<option value="skip">skip</option>' in html


def test_not_measured_section_with_reason_and_remedy(page, partial):
    section = re.search(r'<h2 id="problems-not-measured">.*?</ul>\s*(?=<h2|</section>)', page, re.S).group(0)
    assert "Not measured (1)" in section and 'href="#req-5"' in section
    assert "site store-2 has no host to check. <strong>To measure it:</strong> add a host to store-2" in section
    section = re.search(r'<h2 id="problems-not-measured">.*?</section>', render_html(partial), re.S).group(0)
    assert "<strong>12 results</strong>" in section
    assert "<strong>To measure them:</strong> add --suite latency" in section
    assert section.count('href="#req-') == 15  # every one linked to its row


def test_row_details_show_how_it_ended_and_the_validity_evidence(page):
    row = re.search(r'<tr id="req-5".*?</details>', page, re.S).group(0)
    assert ("<th>ended</th><td>not-measured: site store-2 has no host to check; to measure it: add a host to "
            "store-2</td>") in row
    row = re.search(r'<tr id="req-3".*?</details>', page, re.S).group(0)
    assert "<th>validity</th><td>invalid: reason = generator saturated</td>" in row


def test_filter_controls_and_filterable_rows(page, non_conformant):
    tags = Tags(page)
    ids = {attrs.get("id") for _, attrs in tags.tags}
    assert {"filters", "f-status", "f-site", "f-level", "f-text", "results"} <= ids
    rows = [attrs for attrs in tags.named("tr") if "data-status" in attrs]
    assert len(rows) == len(non_conformant["requirements"])
    assert {r["data-status"] for r in rows} == {"pass", "fail", "error", "inconclusive", "not-applicable",
                                               "not-measured", "waived", "not-run"}
    site_options = {a["value"] for a in tags.named("option")}
    assert {"store-1", "store-2", "must", "should", "may", "fail", "problem"} <= site_options


def test_table_is_there_without_javascript(page):
    without_js = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert without_js.count('data-status="') == 10
    assert "BASE-FUN-02 store-2: status = 503, expected == 200" in without_js


def test_measured_expected_source_and_rationale(page):
    row = re.search(r'<tr id="req-1".*?</details>', page, re.S).group(0)
    assert "status = 503" in row and "status == 200" in row
    assert "<details>" in row and "OSF-2018 §Operational requirements" in row
    assert "Remote sites must be observable." in row


def test_problems_listed_before_table(page):
    assert page.index("Must failures (1)") < page.index("Errors and inconclusive results (3)") \
        < page.index("Not measured (1)") < page.index("Advisory failures") < page.index('<table id="results">')


def test_advisory_results_are_marked(page):
    for anchor in ("req-7", "req-8"):  # the should fail and the should error
        row = re.search(rf'<tr id="{anchor}".*?</tr>', page, re.S).group(0)
        assert 'class="status s-advisory"' in row and ">advisory<" in row


def test_the_problem_filter_covers_every_status_not_passed(page):
    script = re.search(r"<script nonce=.*?</script>", page, re.S).group(0)
    problem = re.search(r"var problem = \{(.*?)\};", script).group(1)
    assert set(re.findall(r'"([a-z-]+)"', problem)) == {"fail", "error", "inconclusive", "not-measured", "not-run"}


def test_waivers_host_and_profiles(page):
    assert "vendor fix due in 4.2" in page and "old exemption" in page
    assert "ci-runner" in page and "24.0 GiB" in page
    assert "ab" * 32 in page
    assert "http://127.0.0.1:8081" in page  # endpoint shown as text


def test_charts_present_when_raw_present(with_raw):
    html = render_html(with_raw)
    assert html.count("<svg") == 4  # two latency spectra, one timeseries, one sweep
    assert "latency by percentile" in html and "threshold 20 ms" in html
    assert "load over time" in html and "throughput (rps)" in html and "p95 latency (ms)" in html
    assert "sweep of delay_ms" in html and "success ratio" in html
    sweep = re.search(r'<div class="measurement" id="m-req-3">.*?</div>', html, re.S).group(0)
    assert "<th>delay_ms (ms)</th>" in sweep and "<td>0.99</td>" in sweep


def test_no_charts_without_raw(conformant):
    assert "<svg" not in render_html(conformant)


def test_undecodable_histogram_is_skipped_not_fatal(with_raw):
    with_raw["requirements"][0]["raw"]["latency"]["histogram"] = "not-a-histogram"
    html = render_html(with_raw)
    assert html.count("latency by percentile</title>") == 1


def test_svg_size_stays_reasonable(with_raw):
    with_raw["requirements"][2]["raw"]["timeseries"] = [
        {"t": t / 10, "rps": 100.0, "p95_ms": 12.5, "users": 10, "errors_per_s": 0.0} for t in range(20000)]
    html = render_html(with_raw)
    assert len(html) < 400_000


def test_interrupted_and_minimal_results_render(interrupted):
    html = render_html(interrupted)
    assert "INCOMPLETE" in html and "interrupted" in html
    assert "Edge conformance: UNKNOWN" in render_html({"schema": "edge-conformance/results/v2"})


@pytest.mark.parametrize("raw,charts", [
    ({"timeseries": [{"t": 0}]}, 0),  # no values at all: no chart rather than a crash
    ({"timeseries": [{"t": 0, "rps": float("nan")}, {"t": 1, "p95_ms": 4.0}]}, 1),
    ({"timeseries": "garbage", "sweep": {"rows": [{"value": "x"}]}}, 0),
    ({"sweep": {"rows": [{"value": 1}]}}, 0),
    ({"sweep": {"rows": [{"value": 1, "duration_s": 2.0}]}}, 1),
    ({"latency": {"histogram": None}}, 0),
    ("garbage", 0),
    ({"sweeps": [{"param": "delay_ms", "rows": [{"value": 5, "success_ratio": 1.0}]},  # every sweep drawn
                 {"param": "loss", "rows": [{"value": 5, "success_ratio": 0.5}]}, "garbage"]}, 2),
])
def test_degenerate_raw_measurements(conformant, raw, charts):
    conformant["requirements"][0]["raw"] = raw
    assert render_html(conformant).count("<svg") == charts


def test_every_sweep_of_a_degraded_check_gets_its_table(conformant):
    conformant["requirements"][0]["raw"] = {"sweeps": [
        {"param": "delay_ms", "unit": "ms", "rows": [{"value": 10, "success_ratio": 1.0, "duration_s": 0.2}]},
        {"param": "loss", "unit": "%", "rows": [{"value": 8, "success_ratio": 0.75, "duration_s": 1.5}]},
        {"param": "<b>bandwidth</b>", "unit": "kbit/s", "rows": [{"value": 64, "success_ratio": 0.5}]}]}
    html = render_html(conformant)
    assert "delay_ms (ms)" in html and "loss (%)" in html and "0.75" in html
    assert "&lt;b&gt;bandwidth&lt;/b&gt; (kbit/s)" in html and "<b>bandwidth" not in html  # escaped


def test_options_not_given_are_not_shown(non_conformant):
    non_conformant["options"].update(defects=[], suites=[], waivers=None, backend="process", sites=["store-1"])
    html = render_html(non_conformant)
    options = dict(re.findall(r"<tr><th>option ([^<]+)</th><td>([^<]*)</td></tr>", html))
    assert options == {"strict": "False", "sites": "store-1", "backend": "process"}
    assert "all" not in options.values() and "none" not in options.values()


def _chart_of(html: str, title_part: str) -> str:
    return next(svg for svg in re.findall(r"<svg.*?</svg>", html, re.S) if title_part in svg)


def test_the_service_time_line_is_dashed_or_merged_with_the_latency_line(with_raw):
    first = _chart_of(render_html(with_raw), "latency by percentile")
    assert "service time (uncorrected)" in first and re.search(r'<g class="series serie-1[^>]*stroke-dasharray="2,3"', first)
    lat = with_raw["requirements"][0]["raw"]["latency"]
    lat["service_histogram"] = lat["histogram"]  # nothing corrected: the two spectra are the same
    one = _chart_of(render_html(with_raw), "latency by percentile")
    assert "service time (uncorrected)" not in one and "latency (= service time: no request waited)" in one


def _x_axis_labels(svg: str) -> list[str]:
    axis = svg[svg.find('<g class="axis x"'):]
    axis = axis[:axis.find('<g class="axis y')]
    return re.findall(r'<text [^>]*>([^<]+)</text>', axis)


def test_the_percentile_axis_ends_where_the_data_do(with_raw):
    svg = _chart_of(render_html(with_raw), "latency by percentile")  # 20,000 samples: up to 99.995 %
    ticks = [t for t in _x_axis_labels(svg) if t.endswith("%")]
    assert ticks == ["0%", "90%", "99%", "99.9%", "99.99%"]  # not on to 99.999 %


def test_the_partial_first_and_last_seconds_of_a_load_run_are_not_drawn(with_raw):
    r = with_raw["requirements"][2]
    r["raw"]["timeseries"] = [{"t": float(t), "rps": rps, "p95_ms": 10.0} for t, rps in
                              enumerate([22.0, 50.0, 50.0, 50.0, 50.0, 28.0])]
    svg = _chart_of(render_html(with_raw), "load over time")
    lines = re.findall(r'<path class="line reactive nofill" d="M([^"]*)"', svg)
    ys = {round(float(xy.split()[1]), 3) for line in lines for xy in re.findall(r"[0-9.]+ [0-9.]+", line)}
    assert len(lines) == 2 and all(len(re.findall(r"[0-9.]+ [0-9.]+", line)) == 4 for line in lines), lines
    assert len(ys) == 1  # a flat 50 rps line (and a flat p95): no dip at either end


def test_no_encoded_data_in_the_page_and_the_filter_form_stays_hidden_without_javascript(non_conformant):
    non_conformant["calibration"] = {"p50_us": 120, "p99_us": 300, "histogram": "HISTFAAAA" + "x" * 2000}
    html = render_html(non_conformant)
    host = re.search(r"<h2>Host and options</h2>.*?</table>", html, re.S).group(0)
    assert "HISTFAAAA" not in host and "calibration p50_us" in host
    assert re.search(r'<details id="calibration-histogram">.*<pre class="encoded">HISTFAAAA', html, re.S)
    # a display rule on #filters would override the hidden attribute: the form would show and do nothing
    assert "#filters[hidden] { display: none; }" in html.replace("tr[hidden], ", "")
    assert '<div class="scroll">\n<table id="results">' in html


def test_charts_carry_their_styles_as_attributes_that_no_content_security_policy_blocks(with_raw):
    """Jenkins serves archived HTML with style-src 'self': a <style> element (pygal's) is blocked and
    every shape turns black. The charts hold no style element and no style attribute."""
    for svg in re.findall(r"<svg.*?</svg>", render_html(with_raw), re.S):
        assert "<style" not in svg and " style=" not in svg
        assert re.search(r'<g class="series serie-0 color-0" stroke="#1f77b4" fill="#1f77b4">', svg), svg[:500]
        assert 'class="line reactive nofill"' not in svg or 'fill="none"' in svg  # lines stay unfilled
