"""Inline SVG charts (pygal) for the HTML report: latency spectrum, load over time, parameter sweeps.

report.html must be one self-contained file that opens offline, so every chart is post-processed:
pygal's <script> elements (an external tooltip script by default, plus a config blob) and XML comments
are removed, and its stylesheet (whose licence comments hold URLs) is applied as SVG presentation
attributes and dropped (_as_presentation_attributes). Text from the target reaches pygal only as
titles and legends, which pygal writes through ElementTree and so escapes.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import sys
from typing import Any

import pygal
from pygal.style import Style

from . import latency as L
from .view import as_dict, as_list, clean, label

# pygal installs a legacy meta-path importer (PluginImportFixer, for pygal.maps plugins we do not
# use) that has find_module but no find_spec; pytest's importlib import mode calls find_spec on every
# meta-path entry and breaks on it. Remove it once pygal is loaded.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

WIDTH, HEIGHT = 760, 320
MAX_POINTS = 300  # timeseries are thinned to this many points to keep the SVG small

_BLUE, _ORANGE, _RED, _GREEN = "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"
_FLOOR_MS = 1e-3  # a log axis cannot show 0; a 1 us floor is below anything a network can do
_STYLE = dict(
    background="transparent",
    plot_background="#ffffff",
    foreground="#333333",
    foreground_strong="#111111",
    foreground_subtle="#999999",
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",  # local fonts only
    title_font_size=14,
    legend_font_size=12,
    label_font_size=11,
    major_label_font_size=11,
)


def _style(colors=(_BLUE, _ORANGE, _RED, _GREEN)) -> Style:
    """Pygal colours series by position; passing them per chart keeps the threshold always red."""
    return Style(colors=tuple(colors), **_STYLE)


_THRESHOLD_STROKE = {"width": 2, "dasharray": "6, 4"}
_SERVICE_STROKE = {"width": 2, "dasharray": "2, 3"}


def _strip_scripts_and_comments(root):
    """xml filter: drop every <script> and XML comment from pygal's tree (the <style> goes later, applied)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if not isinstance(child.tag, str):  # a comment or processing instruction
                parent.remove(child)
                continue
            if child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _chart(kind, title: str, **config: Any):
    options = dict(show_dots=False, legend_at_bottom=True, truncate_legend=-1, truncate_label=-1,
                   style=_style())
    options.update(config)
    # js=[]: pygal would otherwise link its tooltip script from a CDN.
    chart = kind(title=title, width=WIDTH, height=HEIGHT, js=[],
                 disable_xml_declaration=True, **options)
    chart.add_xml_filter(_strip_scripts_and_comments)
    return chart


# The CSS properties pygal's stylesheet sets that SVG also takes as presentation attributes; the rest
# (transitions, user-select, font smoothing) only animate or tune, and are dropped.
PRESENTATION = ("fill", "fill-opacity", "font-family", "font-size", "font-weight", "opacity", "stroke",
                "stroke-dasharray", "stroke-linecap", "stroke-linejoin", "stroke-opacity", "stroke-width",
                "text-anchor", "dominant-baseline", "visibility", "display")
_STYLE_ELEMENT = re.compile(r"<style[^>]*>(.*?)</style>", re.S)
_STYLE_ATTRIBUTE = re.compile(r' style="([^"]*)"')


def _as_presentation_attributes(svg: str) -> str:
    """pygal styles its SVG with a <style> element; a Content-Security-Policy without 'unsafe-inline'
    for styles (Jenkins' default for archived HTML: style-src 'self') blocks it, and every shape turns
    black. So the stylesheet is applied here (css-inline resolves the selectors and their precedence)
    and each declaration becomes an attribute (fill="#1f77b4"), which no policy blocks."""
    import css_inline

    css = "\n".join(_STYLE_ELEMENT.findall(svg))
    inlined = css_inline.inline_fragment(_STYLE_ELEMENT.sub("", svg), css)

    def attributes(m: re.Match) -> str:
        out = []
        for declaration in html.unescape(m[1]).split(";"):
            name, _, value = declaration.partition(":")
            name, value = name.strip().lower(), value.replace("!important", "").strip()
            if name in PRESENTATION and value:
                out.append(f' {name}="{html.escape(value, quote=True)}"')
        return "".join(out)
    return _STYLE_ATTRIBUTE.sub(attributes, inlined)


def _render(chart) -> str:
    # One legend row: pygal sizes the bottom margin wrongly when there are fewer series than columns.
    chart.legend_at_bottom_columns = max(1, len(chart.raw_series))
    svg = _as_presentation_attributes(chart.render(is_unicode=True))
    # pygal names each chart with a random uuid; derive it from the content instead, so the same
    # results render the same report (bundles compare re-rendered reports byte for byte).
    uuids = sorted(set(_UUID.findall(svg)))
    blank = _UUID.sub("", svg)
    digest = hashlib.sha256(blank.encode("utf-8")).hexdigest()
    for i, u in enumerate(uuids):
        svg = svg.replace(u, f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{i:012d}")
    return svg


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _number(value: Any) -> float | None:
    """A finite number, or None: pygal cannot place NaN or infinity, and results.json may hold them."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def latency_chart(r: dict) -> str | None:
    """Latency by percentile, HdrHistogram style: x = 1/(1-p) on a log axis, y = ms on a log axis."""
    raw = as_dict(as_dict(r.get("raw")).get("latency"))
    hist = L.decode(raw.get("histogram"))
    if hist is None:
        return None
    latency = L.spectrum(hist, raw.get("unit"))
    series = [("latency", latency, _BLUE, None)]
    service = L.decode(raw.get("service_histogram"))
    if service is not None:
        service_points = L.spectrum(service, raw.get("unit"))
        if service_points == latency:  # nothing was corrected: one line, named for both
            series = [("latency (= service time: no request waited)", latency, _BLUE, None)]
        else:  # dashed, so that where the two meet the corrected latency still shows
            series.append(("service time (uncorrected)", service_points, _ORANGE, _SERVICE_STROKE))
    threshold = _number(raw.get("threshold_us"))
    threshold_ms = threshold / 1000.0 if threshold and threshold > 0 else None
    values = [max(ms, _FLOOR_MS) for _, points, _, _ in series for _, ms in points] + [threshold_ms or _FLOOR_MS]
    colors = [color for _, _, color, _ in series] + [_RED]
    # The x axis ends at the data (the sample count decides how many nines it resolves), not at 99.999 %.
    nines = max(x for _, points, _, _ in series for x, _ in points)
    chart = _chart(
        pygal.XY, f"{label(r)}: latency by percentile", logarithmic=True, style=_style(colors),
        x_title="percentile", y_title="latency (ms)", xrange=(1.0, 10.0 ** nines),
        x_labels=[10.0 ** n for n in range(int(math.floor(nines + 1e-9)) + 1)],
        y_labels=_log_labels(min(values), max(values)),
        x_value_formatter=_percentile_label, value_formatter=lambda v: f"{v:.3g} ms",
    )
    for name, points, _, stroke in series:
        extra = {"stroke_style": stroke} if stroke else {}
        chart.add(name, [(10.0 ** x, max(ms, _FLOOR_MS)) for x, ms in points], **extra)
    if threshold_ms:
        right = 10.0 ** nines
        chart.add(f"threshold {threshold_ms:g} ms", [(1.0, threshold_ms), (right, threshold_ms)],
                  stroke_style=_THRESHOLD_STROKE)
    return _render(chart)


def _log_labels(low: float, high: float) -> list[float]:
    """1-2-5 steps covering [low, high]: pygal's own log labels leave whole decades unlabelled."""
    labels, decade = [], 10.0 ** math.floor(math.log10(low))
    while decade <= high * 10:
        labels += [m * decade for m in (1, 2, 5) if low / 2 <= m * decade <= high * 2]
        decade *= 10
    return labels


def _percentile_label(x: float) -> str:
    p = 100.0 - 100.0 / x if x else 0.0
    return f"{p:.3f}".rstrip("0").rstrip(".") + "%"


def _thin(rows: list, limit: int = MAX_POINTS) -> list:
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)] + [rows[-1]]


def timeseries_chart(r: dict) -> str | None:
    """Throughput (rps, left axis) and p95 latency (ms, right axis) over the run."""
    rows = [row for row in as_list(as_dict(r.get("raw")).get("timeseries")) if isinstance(row, dict)]
    rows = [row for row in rows if _number(row.get("t")) is not None]
    if not rows:
        return None
    rows = _whole_seconds(sorted(rows, key=lambda row: row["t"]))
    if not rows:
        return None
    rows = _thin(rows)
    chart = _chart(pygal.XY, f"{label(r)}: load over time", x_title="time (s)", include_x_axis=True,
                   y_title="requests/s", value_formatter=lambda v: f"{v:.3g}")
    series = [("throughput (rps)", _points(rows, "t", "rps"), False),
              ("p95 latency (ms)", _points(rows, "t", "p95_ms"), True)]
    if any(_number(row.get("errors_per_s")) for row in rows):
        series.append(("errors/s", _points(rows, "t", "errors_per_s"), False))
    return _render_series(chart, series)


def _whole_seconds(rows: list[dict]) -> list[dict]:
    """The seconds of the run that were measured whole. The first and the last second of a run are
    partial (the load started or stopped inside them): drawn, they look like dips that never happened
    (22 and 28 rps in a steady 50 rps run). With three rows or fewer there is nothing to leave out."""
    return rows[1:-1] if len(rows) > 3 else rows


def _render_series(chart, series: list[tuple[str, list, bool]]) -> str | None:
    """Add the series that have points (pygal fails on an empty axis); None when none has any."""
    series = [s for s in series if s[1]]
    if not series:
        return None
    if not any(not secondary for _, _, secondary in series):
        series = [(name, points, False) for name, points, _ in series]  # a lone right axis has no scale
    for name, points, secondary in series:
        chart.add(name, points, secondary=secondary)
    return _render(chart)


def _points(rows: list[dict], x: str, y: str) -> list[tuple[float, float]]:
    return [(row[x], _number(row.get(y))) for row in rows if _number(row.get(y)) is not None]


def sweeps(r: dict) -> list[tuple[str, str, list[dict]]]:
    """(param, unit, rows sorted by value) of every sweep with rows: raw.sweeps (delay, loss,
    bandwidth), or the single raw.sweep of older results."""
    raw = as_dict(r.get("raw"))
    tables = as_list(raw.get("sweeps")) or [raw.get("sweep")]
    out = []
    for sweep in map(as_dict, tables):
        rows = [row for row in as_list(sweep.get("rows")) if isinstance(row, dict)]
        rows = sorted((row for row in rows if _number(row.get("value")) is not None), key=lambda row: row["value"])
        if rows:
            out.append((clean(sweep.get("param") or "value"), clean(sweep.get("unit")), rows))
    return out


def sweep_charts(r: dict) -> list[str]:
    return [svg for param, unit, rows in sweeps(r) if (svg := sweep_chart(r, param, unit, rows))]


def sweep_chart(r: dict, param: str, unit: str, rows: list[dict]) -> str | None:
    """Success ratio (left axis) and duration (right axis) against the swept parameter."""
    if not rows:
        return None
    chart = _chart(pygal.XY, f"{label(r)}: sweep of {param}", show_dots=True, dots_size=3,
                   x_title=f"{param} ({unit})" if unit else param, y_title="success ratio",
                   range=(0, 1), value_formatter=lambda v: f"{v:.3g}")
    return _render_series(chart, [("success ratio", _points(rows, "value", "success_ratio"), False),
                                  ("duration (s)", _points(rows, "value", "duration_s"), True)])
