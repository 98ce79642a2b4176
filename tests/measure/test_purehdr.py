"""purehdr (the plain-Python HdrHistogram for platforms without hdrhistogram's wheels) gives hdrh's own
figures and reads and writes the same V2 encoding, both ways."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from hdrh.histogram import HdrHistogram as Hdrh

from conformance.measure.latency.histogram import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES
from conformance.measure.purehdr import HdrHistogram as Pure

PERCENTILES = [0.0, 1.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 99.999, 100.0]


def _values(seed: int) -> list[tuple[int, int]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(3000):
        kind = rnd.random()
        if kind < 0.6:
            v = int(rnd.lognormvariate(7.5, 0.6))           # around 2 ms, in µs
        elif kind < 0.9:
            v = rnd.randint(0, 2048)                         # the exact-resolution range, 0 included
        else:
            v = rnd.randint(10_000, HIGHEST_US)              # seconds to an hour: wide buckets
        out.append((v, rnd.choice((1, 1, 1, 3, 250))))
    return out


def _both(seed: int) -> tuple[Hdrh, Pure]:
    a, b = Hdrh(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES), Pure(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    for v, n in _values(seed):
        assert a.record_value(v, n) == b.record_value(v, n)
    return a, b


def _same(a, b) -> None:
    assert list(a.counts[:]) == list(b.counts[:])
    assert (a.get_total_count(), a.get_min_value(), a.get_max_value()) == \
        (b.get_total_count(), b.get_min_value(), b.get_max_value())
    assert a.get_percentile_to_value_dict(PERCENTILES) == b.get_percentile_to_value_dict(PERCENTILES)
    assert [a.get_value_at_percentile(p) for p in PERCENTILES] == [b.get_value_at_percentile(p) for p in PERCENTILES]
    assert a.get_mean_value() == pytest.approx(b.get_mean_value(), rel=1e-12)
    assert a.get_stddev() == pytest.approx(b.get_stddev(), rel=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recording_gives_hdrh_figures(seed):
    a, b = _both(seed)
    _same(a, b)
    for v in (0, 1, 2047, 2048, 2049, 123_456, HIGHEST_US):
        assert (a.get_lowest_equivalent_value(v), a.get_highest_equivalent_value(v), a.get_counts_array_index(v)) == \
            (b.get_lowest_equivalent_value(v), b.get_highest_equivalent_value(v), b.get_counts_array_index(v))
    assert a.record_value(-1) == b.record_value(-1) and a.record_value(HIGHEST_US * 4) == b.record_value(HIGHEST_US * 4)


@pytest.mark.parametrize("seed", [4, 5])
def test_the_encoding_reads_both_ways(seed):
    a, b = _both(seed)
    _same(Hdrh.decode(b.encode()), a)   # written here, read by hdrh
    _same(Pure.decode(a.encode()), b)   # written by hdrh, read here
    _same(Hdrh.decode(b.encode()), Pure.decode(a.encode()))
    empty = Pure(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    _same(Hdrh.decode(empty.encode()), Pure.decode(Hdrh(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES).encode()))


def test_adding_keeps_hdrh_rules_including_the_minimum_after_an_empty_start():
    (a1, b1), (a2, b2) = _both(6), _both(7)
    ha, pa = Hdrh(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES), Pure(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    ha.decode_and_add(a1.encode())
    pa.decode_and_add(b1.encode())
    ha.add(a2)
    pa.add(b2)
    _same(ha, pa)


def test_without_hdrhistogram_the_harness_uses_the_port_and_reads_hdrh_encodings():
    a, _ = _both(8)
    code = f"""
import sys
sys.modules["hdrh"] = None            # as on a platform where hdrhistogram is not installed
sys.modules["hdrh.histogram"] = None
from conformance.measure import hdr
from conformance.measure.latency.histogram import summarize
from conformance.report.latency import decode
assert hdr.IMPLEMENTATION == "purehdr", hdr.IMPLEMENTATION
h = decode({a.encode().decode()!r})
s = summarize(h)
print(s["count"], s["p99_us"], s["max_us"])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    from conformance.measure.latency.histogram import summarize
    s = summarize(a)
    assert proc.stdout.split() == [str(s["count"]), str(s["p99_us"]), str(s["max_us"])]


def test_hdrhistogram_is_required_only_where_it_has_wheels():
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    deps = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if d.startswith("hdrhistogram"))
    env = {"sys_platform": "linux", "platform_machine": "x86_64"}
    assert req.marker.evaluate(env)
    assert not req.marker.evaluate({**env, "platform_machine": "aarch64"})  # an ARM gateway: purehdr
    assert req.marker.evaluate({"sys_platform": "darwin", "platform_machine": "arm64"})
