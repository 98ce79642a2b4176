"""Latency figures for reports: HDR histograms decoded into percentile spectra, and worst sites.

Percentiles are always read from the recorded histogram, never averaged (DESIGN: merge histograms,
never average percentiles). A histogram that cannot be decoded is treated as absent: a report must
render whatever the results contain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..measure.hdr import HdrHistogram

from ..model import expect as E
from ..model import units as U
from .view import as_dict, clean, requirements

_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
MAX_NINES = 5.0  # the spectrum ends at 99.999 %, as HdrHistogram's own plots do
STEP = 0.05  # in decades of 1/(1-p): about 100 points for a full spectrum


def decode(encoded: Any) -> HdrHistogram | None:
    if not encoded or not isinstance(encoded, (str, bytes)):
        return None
    try:
        hist = HdrHistogram.decode(encoded)
    except Exception:  # noqa: BLE001 - hdrh raises bare, codec and binascii errors alike
        return None
    return hist if hist.get_total_count() > 0 else None


def to_ms(value: float, unit: Any) -> float | None:
    factor = _MS.get(str(unit or "us"))
    return None if factor is None else value * factor


def nines(percentile: float) -> float:
    """The x of a percentile plot: 90 % -> 1, 99 % -> 2, 99.9 % -> 3 ..."""
    return math.log10(100.0 / (100.0 - percentile)) if percentile < 100 else MAX_NINES


def percentile_at(x: float) -> float:
    return 100.0 * (1.0 - 10.0 ** -x)


def spectrum(hist: HdrHistogram, unit: Any = "us") -> list[tuple[float, float]]:
    """[(nines, latency ms)], ending where the sample count stops resolving percentiles, then max."""
    factor = to_ms(1.0, unit) or 1e-3
    last = min(MAX_NINES, math.log10(max(hist.get_total_count(), 10)))
    xs = [i * STEP for i in range(int(last / STEP) + 1)]
    values = hist.get_percentile_to_value_dict([percentile_at(x) for x in xs])
    points = [(x, values[percentile_at(x)] * factor) for x in xs]
    points.append((last, hist.get_max_value() * factor))
    return points


@dataclass(frozen=True)
class LatencyRow:
    id: str
    site: str
    p99_ms: float
    threshold_ms: float | None

    @property
    def ratio(self) -> float | None:
        return self.p99_ms / self.threshold_ms if self.threshold_ms else None


def _p99_threshold_ms(r: dict) -> float | None:
    """The bound on p99 written in the expectation (`p99 <= 20 ms`), when there is one."""
    try:
        exp = E.parse(r.get("expect"))
    except (E.ExpectError, U.UnitError):
        return None
    for c in exp.comparisons:
        if c.metric == "p99" and c.op in ("<", "<=") and c.unit in _MS:
            return to_ms(c.value, c.unit)
    return None


def latency_row(r: dict) -> LatencyRow | None:
    """p99 and its limit for one requirement@site, from raw.latency or a measured p99."""
    raw = as_dict(as_dict(r.get("raw")).get("latency"))
    measured = as_dict(as_dict(r.get("measured")).get("p99"))
    p99 = None
    if isinstance(measured.get("value"), (int, float)):
        p99 = to_ms(measured["value"], measured.get("unit") or "ms")
    hist = decode(raw.get("histogram")) if raw else None
    if p99 is None and hist is not None:
        p99 = to_ms(hist.get_value_at_percentile(99.0), raw.get("unit"))
    if p99 is None:
        return None
    threshold = raw.get("threshold_us")
    threshold_ms = threshold / 1000.0 if isinstance(threshold, (int, float)) and threshold > 0 else None
    if threshold_ms is None:
        threshold_ms = _p99_threshold_ms(r)
    return LatencyRow(clean(r.get("id") or "?"), clean(r.get("site") or "?"), p99, threshold_ms)


def worst_sites(results: dict, limit: int = 5) -> list[LatencyRow]:
    """The worst latency row of each site, worst first.

    Sites are ranked by p99 / limit where a limit is known (how close to failing), then by raw p99.
    """
    worst: dict[str, LatencyRow] = {}
    for r in requirements(results):
        row = latency_row(r)
        if row is None:
            continue
        if row.site not in worst or _key(row) > _key(worst[row.site]):
            worst[row.site] = row
    return sorted(worst.values(), key=_key, reverse=True)[:limit]


def _key(row: LatencyRow) -> tuple[int, float]:
    return (1, row.ratio) if row.ratio is not None else (0, row.p99_ms)
