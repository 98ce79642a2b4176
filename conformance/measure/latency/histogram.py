"""HDR histograms of microseconds: creation, summaries, encoding and merging.

Percentiles are never averaged: to combine probers, merge their encoded histograms and read the
percentiles of the merge (merge_encoded). Every histogram has the same range (1 us .. 1 hour, 3
significant figures, about 0.1 % value error), so merges are exact counter additions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..hdr import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: no timeout or stall we allow comes near it
SIGNIFICANT_FIGURES = 3

PERCENTILES = (("p50_us", 50.0), ("p90_us", 90.0), ("p99_us", 99.0), ("p99_9_us", 99.9))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def ns_to_us(ns: int) -> int:
    """Round nanoseconds to whole microseconds (the histogram's unit)."""
    return (ns + 500) // 1000


class UsRecorder:
    """One histogram plus a count of values it rejected (hdrh drops out-of-range values silently)."""

    __slots__ = ("histogram", "rejected")

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.rejected = 0

    def record_ns(self, ns: int) -> None:
        if not self.histogram.record_value(max(0, ns_to_us(ns))):
            self.rejected += 1


def summarize(histogram: HdrHistogram) -> dict[str, float | int | None]:
    """count, min, p50, p90, p99, p99.9, max, mean, stdev and jitter (p99 - p50), all in us.

    Values are None when nothing was recorded, so an empty run can never look fast.
    """
    count = histogram.get_total_count()
    keys = ["count", "min_us", *(k for k, _ in PERCENTILES), "max_us", "mean_us", "stdev_us", "jitter_us"]
    if count == 0:
        return {k: (0 if k == "count" else None) for k in keys}
    values = histogram.get_percentile_to_value_dict([p for _, p in PERCENTILES])
    out: dict[str, float | int | None] = {"count": count, "min_us": histogram.get_min_value()}
    for key, pct in PERCENTILES:
        out[key] = values[pct]
    out["max_us"] = histogram.get_max_value()
    mean, stdev = moments(histogram)
    out["mean_us"] = round(mean, 1)
    out["stdev_us"] = round(stdev, 1)
    out["jitter_us"] = values[99.0] - values[50.0]
    return out


def moments(histogram: HdrHistogram) -> tuple[float, float]:
    """Mean and standard deviation, as hdrh computes them (bucket median values), but only visiting
    non-empty buckets: hdrh's own get_mean_value/get_stddev walk every bucket in Python (~0.15 s each)."""
    total = histogram.get_total_count()
    if not total:
        return 0.0, 0.0
    buckets = [(median_equivalent_value(histogram, histogram.get_value_from_index(i)), c)
               for i, c in enumerate(histogram.counts[:]) if c]
    mean = sum(v * c for v, c in buckets) / total
    variance = sum((v - mean) ** 2 * c for v, c in buckets) / total
    return mean, math.sqrt(variance)


def median_equivalent_value(histogram: HdrHistogram, value: int) -> int:
    """The middle of the bucket `value` falls in: the value hdrh's own mean stands each count for
    (its private `_hdr_median_equiv_value`), from the public bucket bounds."""
    low = histogram.get_lowest_equivalent_value(value)
    return low + ((histogram.get_highest_equivalent_value(value) - low + 1) >> 1)


def encode(histogram: HdrHistogram) -> str:
    """Compressed base64 text (HdrHistogram V2 format, readable by every HdrHistogram port)."""
    return histogram.encode().decode("ascii")


def decode(encoded: str | bytes) -> HdrHistogram:
    histogram = new_histogram()
    histogram.decode_and_add(encoded)
    return histogram


def merge_encoded(encoded: Iterable[str | bytes]) -> HdrHistogram:
    """Add several encoded histograms into one (for probers on several cores or machines)."""
    merged = new_histogram()
    for item in encoded:
        merged.decode_and_add(item)
    return merged
