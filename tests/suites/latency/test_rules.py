"""The latency suite's figures and evidence, without a network: failed requests rank last, the sample
count and the pressure go to the one verdict rule (model/verdict.py) which judges them, the threshold
drawn in reports. The suite module is loaded from the shipped suites dir."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from conformance.measure.latency import encode, new_histogram, summarize
from conformance.model import catalog
from conformance.model import expect as E
from conformance.model import verdict as V
from conformance.model.errors import Inconclusive
from conformance.model.paths import suites_dir
from tests.helpers.edge import RecordingEdge


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
    result = SimpleNamespace(samples=len(values_us), timeouts=timeouts, errors={"http_503": errors} if errors else {},
                             timeout_s=timeout_s, histograms={"latency": encode(hist), "service": encode(hist)},
                             latency=summarize(hist), sent=len(values_us) + timeouts + errors, valid=True,
                             invalid_reason=None, target="http://127.0.0.1:1/health", protocol="http", rate=200.0,
                             arrivals="fixed", error_examples={}, send_lag={}, loop_lag={}, realtime=False)
    result.to_dict = lambda: {"valid": result.valid, "histograms": result.histograms}
    return result


class FakeEdge(RecordingEdge):
    def __init__(self, expect: str):
        super().__init__()
        self.requirement = SimpleNamespace(id="T-1", level="must", expect=E.parse(expect),
                                           metric_dimensions=dict(catalog.get("latency.request").metrics))
        self.params = {}
        self.measured = {}
        self.allowed_hosts = frozenset()

    def record(self, metric, value, unit=""):
        self.measured[metric] = SimpleNamespace(value=float(value), unit=unit)


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


class FakeFloors:
    """The edge_calibration fixture's interface with a fixed floor (None: calibration failed)."""

    def __init__(self, floor: dict | None = None):
        self.floor = floor or {"valid": False, "invalid_reason": "not calibrated in this test"}
        self.asked: list[tuple[str, float]] = []

    def for_probe(self, probe):
        self.asked.append((probe.protocol, probe.rate))
        return self.floor


def judged(suite, monkeypatch, expect: str, values_us: list[int], *, valid: bool = True,
           pressure=None, site_cores=None, floors: FakeFloors | None = None):
    """What the suite hands the plugin for one probe (`_judge` with the probe faked), and the verdict
    the one rule (model/verdict.py) gives it."""
    result = fake_result(values_us)
    result.valid, result.invalid_reason = valid, None if valid else "prober fell behind: 30.0% of sends late"
    monkeypatch.setattr(suite, "_probe", lambda edge, request, config, url: (result, pressure, site_cores))
    edge = FakeEdge(expect)
    try:
        suite._judge(edge, None, floors or FakeFloors(), "http://127.0.0.1:1/health", threshold=True)
    except Inconclusive as exc:
        edge.validity.append({"kind": "invalid", "reason": str(exc)})  # as the plugin records it
    d = V.decide(edge.requirement, "s1", measured={k: (m.value, m.unit) for k, m in edge.measured.items()},
                 validity=edge.validity)
    return edge, d


def test_the_sample_count_goes_to_the_rule_which_wants_enough_per_percentile(suite, monkeypatch):
    edge, d = judged(suite, monkeypatch, "p99 <= 20 ms", [1000] * 400)
    assert {"kind": "samples", "count": 400} in edge.validity
    assert d.status == "inconclusive" and "p99 needs at least 1000 samples, got 400" in d.message
    _, d = judged(suite, monkeypatch, "p99 <= 20 ms", [1000] * 1000)
    assert d.status == "pass", d.message
    _, d = judged(suite, monkeypatch, "p50 <= 20 ms and p999 <= 1 s", [30_000] * 1000)
    assert d.status == "fail"  # a comparison that could be judged already fails


def test_pressure_and_the_sites_own_cpu_go_to_the_rule(suite, monkeypatch):
    from conformance.measure.pressure import Pressure

    values = [2000] * 985 + [80_000] * 15  # p50 2 ms, p99 80 ms: a stretched tail
    edge, d = judged(suite, monkeypatch, "p99 <= 50 ms", values, pressure=Pressure(6.5, cpu=0.4, io=0.0),
                     site_cores=0.1)
    assert [v for v in edge.validity if v["kind"] == "pressure"] == [
        {"kind": "pressure", "cpu": 40.0, "io": 0.0, "memory": None, "window_s": 6.5, "target_cores": 0.1}]
    assert d.status == "inconclusive", d.message
    _, d = judged(suite, monkeypatch, "p99 <= 50 ms", values, pressure=Pressure(6.5, cpu=0.4), site_cores=0.9)
    assert d.status == "fail"  # the site's own load: judged as measured
    _, d = judged(suite, monkeypatch, "p99 <= 50 ms", values, pressure=None)
    assert d.status == "fail"  # no PSI: nothing excuses it


def test_an_invalid_probe_is_inconclusive_and_keeps_its_evidence(suite, monkeypatch):
    edge, d = judged(suite, monkeypatch, "p99 <= 20 ms", [1000] * 1000, valid=False)
    assert d.status == "inconclusive" and "prober self-check: prober fell behind: 30.0%" in d.message
    assert {"kind": "samples", "count": 1000} in edge.validity and "p99" in edge.measured


def test_no_sample_rule_of_its_own():
    """The sample counts live in model/verdict.py only (one rule)."""
    import ast

    from conformance.model.paths import suites_dir

    tree = ast.parse((suites_dir() / "latency" / "test_latency.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | \
        {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert not names & {"MIN_SAMPLES", "_require_samples", "_min_samples", "judge_pressure", "evaluate"}


@pytest.mark.parametrize("expect, threshold", [
    ("p99 <= 50 ms", ("p99", 50_000)), ("p90 <= 20 ms and p99 < 0.05 s", ("p99", 50_000)),
    ("p999 <= 1 s and p90 <= 5 ms", ("p999", 1_000_000)), ("p90 < 10 ms", ("p90", 10_000)),
    ("p50 <= 10 ms", None), ("p99 >= 1 ms", None),
])
def test_threshold_for_reports(suite, expect, threshold):
    assert suite._threshold(FakeEdge(expect)) == threshold


FLOOR = {"protocol": "http", "rate": 200.0, "valid": True, "samples": 400, "p50_us": 300, "p90_us": 400,
         "p99_us": 600, "p99_9_us": 900, "max_us": 1200, "mean_us": 320.5}


def test_the_floor_of_the_probes_own_protocol_and_rate_goes_to_the_rule_as_a_strict_floor(suite, monkeypatch):
    floors = FakeFloors(FLOOR)
    edge, d = judged(suite, monkeypatch, "p90 < 1 ms", [500] * 1000, floors=floors)
    assert floors.asked == [("http", 200.0)]  # the probe's own settings (suite defaults)
    floor_items = {v["metric"]: v for v in edge.validity if v["kind"] == "floor"}
    assert floor_items["p90"] == {"kind": "floor", "metric": "p90", "value": 0.4, "unit": "ms", "strict": True,
                                  "reason": "the harness's own floor: http at 200/s against a loopback server"}
    assert "p999" not in floor_items  # 400 samples: too few for a p99.9 floor
    assert floor_items["spread"] == {**floor_items["p90"], "metric": "spread", "value": 0.3, "strict": False}
    assert floor_items["max"]["strict"] is False and floor_items["p99"]["strict"] is True
    assert d.status == "inconclusive" and "under 3x the measurement floor 0.4 ms" in d.message
    _, d = judged(suite, monkeypatch, "p90 < 3 ms", [500] * 1000, floors=FakeFloors(FLOOR))
    assert d.status == "pass" and "p90 budget 3 ms is 7.5x the measurement floor 0.4 ms" in d.message
    _, d = judged(suite, monkeypatch, "p90 < 3 ms", [25_000] * 1000, floors=FakeFloors(FLOOR))
    assert d.status == "fail" and "7.5x the measurement floor" in d.message


def test_an_invalid_floor_weighs_nothing_and_the_note_says_so(suite, monkeypatch):
    edge, d = judged(suite, monkeypatch, "p90 < 1 ms", [500] * 1000,
                     floors=FakeFloors({**FLOOR, "valid": False, "invalid_reason": "prober fell behind"}))
    assert not [v for v in edge.validity if v["kind"] == "floor"]
    assert d.status == "pass"
    assert any("the calibration itself was invalid: prober fell behind" in n for n in edge.notes)


def test_a_short_calibration_gives_no_tail_floor(suite, monkeypatch):
    edge, _ = judged(suite, monkeypatch, "p99 < 1 ms", [500] * 1000,
                     floors=FakeFloors({**FLOOR, "samples": 50}))
    metrics = {v["metric"] for v in edge.validity if v["kind"] == "floor"}
    assert metrics == {"p50", "p90", "mean", "max"}  # 50 samples: no p99 (needs 200), p999 or spread
