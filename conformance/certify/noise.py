"""How far a percentile moves between two runs of the same healthy site by chance alone.

A p99 from 1,300 requests rests on the 13 slowest: three healthy runs of the same store gave 10.27,
13.44 and 8.68 ms. A gate that calls the second a regression gates on noise. Each latency result keeps
its raw HDR histogram, so the uncertainty of each of its percentiles can be told from the run itself:
the distribution-free confidence interval of a quantile, whose bounds are order statistics (the
ranks n*q -/+ z*sqrt(n*q*(1-q)) of the n samples). When the 95 % intervals of the base and the new run
overlap, the two percentiles are not told apart by the data: the change is within noise.

Overlapping 95 % intervals is a deliberately cautious test (two figures whose intervals just touch
differ at well under the 5 % level): compare is a gate, and a gate that fires on chance is taken out of
the pipeline. Only results whose histogram holds every sample (no failed requests ranked at the timeout)
get a band; any other change is judged by the tolerance alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

Z_95 = 1.959964
_PERCENTILE = re.compile(r"^p(\d+)$")  # p50, p90, p99, p999 (99.9), p9999 (99.99)


@dataclass(frozen=True)
class Band:
    low: float  # in the histogram's unit
    high: float
    samples: int


def percentile_of(metric: str) -> float | None:
    """p50 -> 50.0, p99 -> 99.0, p999 -> 99.9; None for anything that is not a percentile."""
    m = _PERCENTILE.match(metric)
    if not m:
        return None
    digits = m[1]
    value = float(digits if len(digits) <= 2 else f"{digits[:2]}.{digits[2:]}")
    return value if 0 < value < 100 else None


def histogram_of(entry: dict) -> tuple[str, str] | None:
    """(encoded histogram, its unit) of a result's raw latency, or None."""
    raw = entry.get("raw")
    latency = raw.get("latency") if isinstance(raw, dict) else None
    if not isinstance(latency, dict) or not isinstance(latency.get("histogram"), str):
        return None
    return latency["histogram"], str(latency.get("unit") or "us")


def band(encoded: str, percentile: float, samples: int | None = None, z: float = Z_95) -> Band | None:
    """The confidence interval of `percentile` from the histogram; None when the histogram does not hold
    every sample the result counted (`samples`), or holds too few for an interval."""
    from ..measure.latency.histogram import decode

    try:
        hist = decode(encoded)
    except Exception:  # noqa: BLE001 - a histogram compare cannot read gives no band, not an error
        return None
    n = hist.get_total_count()
    if n < 2 or (samples is not None and samples != n):
        return None
    q = percentile / 100.0
    spread = z * math.sqrt(n * q * (1 - q))
    low_rank, high_rank = max(math.floor(n * q - spread), 1), min(math.ceil(n * q + spread) + 1, n)
    return Band(float(hist.get_value_at_percentile(100.0 * low_rank / n)),
                float(hist.get_value_at_percentile(100.0 * high_rank / n)), n)


def samples_of(entry: dict) -> int | None:
    m = (entry.get("measured") or {}).get("samples")
    value = m.get("value") if isinstance(m, dict) else None
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def bands(base: dict, new: dict, metric: str) -> tuple[Band, Band, str] | None:
    """The two runs' intervals for `metric` (and the histograms' unit), when both can be told."""
    pct = percentile_of(metric)
    hb, hn = histogram_of(base), histogram_of(new)
    if pct is None or hb is None or hn is None or hb[1] != hn[1]:
        return None
    b, n = band(hb[0], pct, samples_of(base)), band(hn[0], pct, samples_of(new))
    return (b, n, hb[1]) if b is not None and n is not None else None


def overlap(a: Band, b: Band) -> bool:
    return a.low <= b.high and b.low <= a.high
