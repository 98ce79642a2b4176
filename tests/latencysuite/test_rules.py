"""The latency suite's verdict rules, without a network: failed requests rank last, enough samples per
percentile, the threshold drawn in reports. The suite module is loaded from the shipped suites dir."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from conformance.measure.latency import encode, new_histogram, summarize
from conformance.model import catalog
from conformance.model import expect as E
from conformance.model.errors import Inconclusive
from conformance.model.paths import suites_dir


@pytest.fixture(scope="module")
def suite():
    path = suites_dir() / "latency" / "test_latency.py"
    spec = importlib.util.spec_from_file_location("latency_suite_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_result(values_us: list[int], timeouts: int = 0, errors: int = 0, timeout_s: float = 2.0):
    hist = new_histogram()
    for v in values_us:
        hist.record_value(v)
    return SimpleNamespace(samples=len(values_us), timeouts=timeouts, errors={"http_503": errors} if errors else {},
                           timeout_s=timeout_s, histograms={"latency": encode(hist), "service": encode(hist)},
                           latency=summarize(hist), sent=len(values_us) + timeouts + errors)


class FakeEdge:
    def __init__(self, expect: str):
        self.requirement = SimpleNamespace(expect=E.parse(expect),
                                           metric_dimensions=dict(catalog.get("latency.request").metrics))
        self.measured, self.notes = {}, []

    def record(self, metric, value, unit=""):
        self.measured[metric] = SimpleNamespace(value=float(value), unit=unit)

    def note(self, text):
        self.notes.append(text)

    def inconclusive(self, reason):
        raise Inconclusive(reason)


def test_without_failures_the_figures_are_the_probers(suite):
    result = fake_result(list(range(1, 1001)))
    s = suite._Stats(result)
    for metric, key in suite._PROBER_KEYS.items():
        assert s.percentile_us(metric) == result.latency[key]
    assert s.max_us() == result.latency["max_us"] and not s.in_failures


def test_failed_requests_rank_last_at_the_timeout(suite):
    s = suite._Stats(fake_result([1000] * 95, timeouts=3, errors=2))  # 5 % failed
    assert s.total == 100
    assert s.percentile_us("p50") == pytest.approx(1000, rel=0.001)
    assert s.percentile_us("p90") == pytest.approx(1000, rel=0.001)
    assert s.percentile_us("p99") == 2_000_000 and s.percentile_us("p999") == 2_000_000
    assert s.in_failures == ["p99", "p999"]
    assert s.max_us() == 2_000_000
    nothing = suite._Stats(fake_result([], timeouts=10))
    assert nothing.percentile_us("p50") == 2_000_000


def test_a_failure_shifts_the_rank_among_the_answers(suite):
    # 90 answers of 1..90 ms and 10 failures: the p50 is the 50th of 100, i.e. the 50th answer (50 ms)
    s = suite._Stats(fake_result([i * 1000 for i in range(1, 91)], errors=10))
    assert s.percentile_us("p50") == pytest.approx(50_000, rel=0.001)
    assert s.percentile_us("p90") == pytest.approx(90_000, rel=0.001)
    assert s.percentile_us("p99") == 2_000_000


@pytest.mark.parametrize("expect, need", [
    ("p50 <= 1 ms", 20), ("p90 <= 1 ms", 100), ("p99 <= 1 ms", 1000), ("p999 <= 1 ms", 10_000),
    ("spread <= 1 ms", 1000), ("jitter <= 1 ms", 100), ("mean <= 1 ms", 20), ("max <= 1 ms", 0),
    ("error_ratio < 1 %", 100), ("timeout_ratio <= 0.1 %", 1000), ("error_ratio == 0", 0),
    ("samples >= 10", 0),
])
def test_samples_a_comparison_needs(suite, expect, need):
    assert suite._min_samples(E.parse(expect).comparisons[0]) == need


def _judge_samples(suite, expect: str, values_us: list[int]):
    edge = FakeEdge(expect)
    s = suite._Stats(fake_result(values_us))
    suite._record(edge, s)
    suite._require_samples(edge, s)
    return edge


def test_too_few_samples_is_inconclusive(suite):
    with pytest.raises(Inconclusive, match="^p99 needs at least 1000 samples, got 400$"):
        _judge_samples(suite, "p99 <= 20 ms", [1000] * 400)
    with pytest.raises(Inconclusive, match="^p999 needs at least 10000 samples, got 1000$"):
        _judge_samples(suite, "p50 <= 20 ms and p999 <= 1 s", [1000] * 1000)
    _judge_samples(suite, "p99 <= 20 ms", [1000] * 1000)  # enough: judged by the plugin


def test_a_judged_comparison_that_fails_decides_despite_too_few_samples(suite):
    edge = _judge_samples(suite, "p50 <= 20 ms and p999 <= 1 s", [30_000] * 1000)  # no Inconclusive
    assert any("p999 not judged: it needs at least 10000 samples, got 1000" in n for n in edge.notes)


@pytest.mark.parametrize("expect, threshold", [
    ("p99 <= 50 ms", ("p99", 50_000)), ("p90 <= 20 ms and p99 < 0.05 s", ("p99", 50_000)),
    ("p999 <= 1 s and p90 <= 5 ms", ("p999", 1_000_000)), ("p90 < 10 ms", ("p90", 10_000)),
    ("p50 <= 10 ms", None), ("p99 >= 1 ms", None),
])
def test_threshold_for_reports(suite, expect, threshold):
    assert suite._threshold(FakeEdge(expect)) == threshold
