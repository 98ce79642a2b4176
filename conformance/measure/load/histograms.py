"""Microsecond HDR histograms: one layout for the child (recording) and the driver (merging).

Processes exchange histograms as `encode()`d base64 text; percentiles are computed only after merging
(never average percentiles across processes or seconds).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..hdr import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: nothing a run records is out of range (hdrh drops those silently)
FINE = 3  # significant digits for whole-run histograms (0.1 % error)
COARSE = 2  # per-second histograms: 1 % error, 7x smaller, enough for a p95 per second


def new_histogram(digits: int = FINE) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


class Tally:
    """Counts values at exactly the precision an HdrHistogram stores them, in a plain dict.

    Why: `HdrHistogram.record_value` is pure Python (~2.5 us a call); the generator records two or three
    values per request, which cost ~10 % of its throughput. Counting here costs ~0.4 us, and the
    HdrHistogram is built once per second / at the end with one `record_value(v, count)` per distinct
    value. Values below 2**bits are kept exactly; above, the low bits are cut, as HDR's sub-buckets do.
    """

    __slots__ = ("counts", "digits", "_bits")

    def __init__(self, digits: int = FINE):
        self.counts: dict[int, int] = {}
        self.digits = digits
        self._bits = (2 * 10**digits - 1).bit_length()  # HDR sub-bucket count: 2048 for 3 digits, 256 for 2

    def record(self, value_us: float) -> None:
        value = int(value_us + 0.5)
        if value < LOWEST_US:
            value = LOWEST_US
        shift = value.bit_length() - self._bits
        if shift > 0:
            value = (value >> shift) << shift
        self.counts[value] = self.counts.get(value, 0) + 1

    def histogram(self) -> HdrHistogram:
        histogram = new_histogram(self.digits)
        for value, count in self.counts.items():
            histogram.record_value(min(HIGHEST_US, value), count)
        return histogram

    def encode(self) -> str:
        return encode(self.histogram())


def record(histogram: HdrHistogram, value_us: float) -> None:
    histogram.record_value(min(HIGHEST_US, max(LOWEST_US, int(round(value_us)))))


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def merge(encoded: Iterable[str], digits: int = FINE) -> HdrHistogram:
    total = new_histogram(digits)
    for text in encoded:
        if text:
            part = HdrHistogram.decode(text)
            if part.get_total_count():  # adding an empty histogram would set min to 0
                total.add(part)
    return total


def summary(histogram: HdrHistogram) -> dict[str, float | int]:
    """count, min, mean, p50, p90, p95, p99, p99.9, max; all in microseconds (0 when empty)."""
    count = histogram.get_total_count()
    if not count:
        return {"count": 0, "min": 0, "mean": 0.0, "p50": 0, "p90": 0, "p95": 0, "p99": 0, "p999": 0, "max": 0}
    pct = histogram.get_percentile_to_value_dict([50, 90, 95, 99, 99.9])
    return {
        "count": count,
        "min": histogram.get_min_value(),
        "mean": round(histogram.get_mean_value(), 1),
        "p50": pct[50],
        "p90": pct[90],
        "p95": pct[95],
        "p99": pct[99],
        "p999": pct[99.9],
        "max": histogram.get_max_value(),
    }
