"""Percentile spectra decoded from real HDR histograms, and the worst-site ranking."""

from __future__ import annotations

import pytest
from hdrh.histogram import HdrHistogram

from conformance.report import latency as L


def _hist(values) -> HdrHistogram:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        h.record_value(v)
    return h


def test_spectrum_follows_the_histogram():
    h = _hist(list(range(1, 10_001)))  # 1 us .. 10 ms, uniform
    points = L.spectrum(HdrHistogram.decode(h.encode()), "us")
    xs = [x for x, _ in points]
    ms = [v for _, v in points]
    assert xs[0] == 0 and xs[-1] == pytest.approx(4.0)  # 10k samples resolve up to 99.99 %
    assert ms == sorted(ms)  # latency never falls as the percentile rises
    p90 = next(v for x, v in points if abs(x - 1.0) < 1e-9)
    p99 = next(v for x, v in points if abs(x - 2.0) < 1e-9)
    assert p90 == pytest.approx(9.0, rel=0.01) and p99 == pytest.approx(9.9, rel=0.01)
    assert ms[-1] == pytest.approx(h.get_max_value() / 1000.0)


def test_spectrum_stops_at_five_nines():
    h = _hist([100] * 1_000_000 + [5000])
    points = L.spectrum(h, "us")
    assert max(x for x, _ in points) == pytest.approx(L.MAX_NINES)


@pytest.mark.parametrize("junk", [None, "", "not-a-histogram", "AAAA", 42, b"\x00\x01"])
def test_decode_rejects_junk(junk):
    assert L.decode(junk) is None


def test_decode_rejects_empty_histogram():
    assert L.decode(HdrHistogram(1, 1000, 2).encode()) is None


def test_percentile_axis():
    assert L.nines(90.0) == pytest.approx(1.0)
    assert L.percentile_at(3.0) == pytest.approx(99.9)


def test_worst_sites_one_row_per_site_worst_first(with_raw):
    extra = dict(with_raw["requirements"][0], id="RCB-LAT-02", measured={"p99": {"value": 19.0, "unit": "ms"}})
    with_raw["requirements"].append(extra)  # store-1's worst is now 95 % of its limit
    rows = L.worst_sites(with_raw)
    assert [(r.site, r.id) for r in rows] == [("store-2", "RCB-LAT-01"), ("store-1", "RCB-LAT-02")]
    assert rows[0].ratio == pytest.approx(38.2 / 20)


def test_p99_from_histogram_when_not_measured(with_raw):
    r = with_raw["requirements"][1]
    r["measured"] = {}
    row = L.latency_row(r)
    assert row.threshold_ms == 20
    assert 20 < row.p99_ms < 100  # lognormal around 15 ms


def test_rows_without_limit_rank_after_rows_with_one(conformant):
    conformant["requirements"][0].update(expect="status == 200", measured={"p99": {"value": 900, "unit": "ms"}})
    conformant["requirements"][1].update(expect="p99 <= 100 ms", measured={"p99": {"value": 50, "unit": "ms"}})
    rows = L.worst_sites(conformant)
    assert [(r.site, r.ratio) for r in rows] == [("store-2", 0.5), ("store-1", None)]
