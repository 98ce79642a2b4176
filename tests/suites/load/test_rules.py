"""The load suite's rules as plain functions (no load is generated): capacity steps, the lower-bound and
pressure evidence it hands the one verdict rule (model/verdict.py), budgets, percentiles with failures
ranked last, users, endpoints, settings for the driver."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
from hdrh.histogram import HdrHistogram

from conformance.measure import once
from conformance.measure.load.figures import Stats
from conformance.measure.load.plan import MAX_USERS
from conformance.model import catalog
from conformance.model import expect as E
from conformance.model import verdict as V
from conformance.model.errors import Inconclusive, MeasurementError
from conformance.model.paths import suites_dir
from tests.helpers.edge import RecordingEdge


def _suite_module():
    spec = importlib.util.spec_from_file_location("load_suite_checks", suites_dir() / "load" / "test_load_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S = _suite_module()


class FakeEdge(RecordingEdge):
    def __init__(self, params: dict | None = None, expect: str = "achieved >= 1 rps",
                 endpoints: dict | None = None):
        super().__init__()
        self.params = dict(params or {})
        self.requirement = SimpleNamespace(id="T-1", expect=E.parse(expect))
        self.site = SimpleNamespace(name="s1")
        self._endpoints = endpoints or {"api": "http://127.0.0.1:8080/"}
        self.allowed_hosts = {"127.0.0.1"}
        self.load_spread: dict = {}  # no --load-workers: the requirement's own params decide

    def endpoint(self, name=None):
        try:
            return self._endpoints[name or "api"]
        except KeyError:
            raise MeasurementError(f"no endpoint {name}") from None

    def error(self, reason):
        raise MeasurementError(reason)


# ---------------------------------------------------------------------------------------------
# capacity


@pytest.mark.parametrize("params, rates", [
    ({"start": 100, "step": 50, "max_rate": 200}, [100, 150, 200]),
    ({"start": 25, "factor": 2, "max_rate": 400}, [25, 50, 100, 200, 400]),
    ({"start": 50, "step": 50, "max_rate": 120}, [50, 100, 120]),  # max_rate is always the last step
    ({"start": 40, "max_rate": 100}, [40, 80, 100]),  # step defaults to start
    ({"start": 500, "factor": 40, "max_rate": 20000}, [500, 20000]),
    ({"start": 10, "max_rate": 10}, [10]),
])
def test_capacity_steps(params, rates):
    assert S._rates(FakeEdge(params)) == rates


@pytest.mark.parametrize("params, message", [
    ({"start": 10, "step": 5, "factor": 2, "max_rate": 100}, "step or factor, not both"),
    ({"start": 10, "factor": 1, "max_rate": 100}, "factor must be > 1"),
    ({"start": 100, "max_rate": 50}, "0 < start <= max_rate"),
    ({"start": 1, "step": 1, "max_rate": 1000}, "more than 40 steps"),
    ({"start": 10, "step": -1, "max_rate": 100}, "step must be > 0"),
])
def test_bad_capacity_steps_are_errors(params, message):
    with pytest.raises(MeasurementError, match=message):
        S._rates(FakeEdge(params))


def _step(rate: float, p99_ms: float = 5.0, valid: bool = True, p50_ms: float | None = None):
    """A load result of one capacity step: every request answered in `p99_ms` (the median in `p50_ms`)."""
    hist = HdrHistogram(1, 3_600_000_000, 3)
    n = max(1, int(rate))
    for _ in range(n):
        hist.record_value(int(p99_ms * 1000))
    us = int(p99_ms * 1000)
    median = us if p50_ms is None else int(p50_ms * 1000)
    return SimpleNamespace(
        valid=valid, invalid_reason=None if valid else "load generator saturated: CPU 97% of one core",
        achieved_rps=rate, offered_rps=rate, target_rps=rate, duration_s=1.0, errors={}, series=[],
        histogram="", requests=n, failures=0, unfinished=0, arrivals=n, dropped=0, endpoints={},
        generator={"processes": []}, locust_version="test", config={"url": "http://127.0.0.1:8080"},
        latency_us={"p50": median, "p90": us, "p95": us, "p99": us, "max": us}, latency_histogram=lambda: hist)


class CapacityEdge(FakeEdge):
    def __init__(self, params: dict, expect: str):
        super().__init__(params, expect)
        self.requirement = SimpleNamespace(id="T-CAP", level="should", expect=E.parse(expect),
                                           metric_dimensions=dict(catalog.get("load.capacity").metrics))
        self.emulation = None
        self.measured = {}

    def record(self, metric, value, unit=""):
        self.measured[metric] = (float(value), unit)


def _sweep(monkeypatch, expect: str, steps: dict[float, dict], max_rate: float = 200, pressure=None):
    """test_capacity over faked steps (rate -> _step kwargs) with `pressure` on the machine during every
    step (None: no PSI); (edge, the rule's decision)."""
    monkeypatch.setattr(S, "_run", lambda edge, config: _step(config.rate, **steps.get(config.rate, {})))
    monkeypatch.setattr(S, "PressureWindow", lambda: SimpleNamespace(stop=lambda: pressure))
    edge = CapacityEdge({"start": 100, "step": 50, "max_rate": max_rate, "p99_budget": "50 ms"}, expect)
    edge.params["p99_budget"] = 0.05
    S.test_capacity(edge)
    return edge, V.decide(edge.requirement, "s1", measured=edge.measured, validity=edge.validity)


def test_a_sweep_that_held_up_to_max_rate_records_a_lower_bound_for_the_rule(monkeypatch):
    edge, d = _sweep(monkeypatch, "max_rps >= 1000 rps", {})
    assert edge.measured["max_rps"] == (200.0, "rps")
    assert {"kind": "lower_bound", "metric": "max_rps", "reason": "max_rate reached; raise max_rate"} in edge.validity
    assert d.status == "inconclusive" and "raise max_rate" in d.message
    _, d = _sweep(monkeypatch, "max_rps >= 150 rps", {})
    assert d.status == "pass"  # a lower bound above the bound settles it


def test_a_sweep_stopped_by_the_generator_records_a_lower_bound_too(monkeypatch):
    edge, d = _sweep(monkeypatch, "max_rps >= 200 rps", {200: {"valid": False}})
    assert {"kind": "lower_bound", "metric": "max_rps", "reason": "the last step delivered"} in edge.validity
    assert edge.measured["max_rps"] == (150.0, "rps") and d.status == "inconclusive"


def test_a_sweep_that_found_the_knee_is_a_value_not_a_bound(monkeypatch):
    edge, d = _sweep(monkeypatch, "max_rps >= 200 rps", {200: {"p99_ms": 80.0}})
    assert not [v for v in edge.validity if v["kind"] == "lower_bound"]
    assert edge.measured["max_rps"] == (150.0, "rps") and d.status == "fail"
    assert {v["kind"] for v in edge.validity} <= {"pressure"}  # recorded for the audit (where PSI exists)


def test_a_knee_found_on_a_starved_machine_with_the_median_in_budget_is_only_a_lower_bound(monkeypatch):
    from conformance.measure.pressure import Pressure

    starved = Pressure(3.0, cpu=0.52, io=0.01, memory=0.0)
    tail_only = {200: {"p99_ms": 62.7, "p50_ms": 6.0}}  # the median well within the 50 ms budget
    edge, d = _sweep(monkeypatch, "max_rps >= 200 rps", tail_only, pressure=starved)
    assert edge.measured["max_rps"] == (150.0, "rps")
    bounds = [v for v in edge.validity if v["kind"] == "lower_bound"]
    assert bounds and "200/s broke the budget on a starved machine" in bounds[0]["reason"]
    assert d.status == "inconclusive", d.message
    assert edge.raw["capacity"]["steps"][-1]["machine"]["cpu_some_percent"] == 52.0
    # the same break on a quiet machine, or with the median itself over the budget, is the site's knee
    _, d = _sweep(monkeypatch, "max_rps >= 200 rps", tail_only, pressure=Pressure(3.0, cpu=0.02))
    assert d.status == "fail"
    _, d = _sweep(monkeypatch, "max_rps >= 200 rps", {200: {"p99_ms": 80.0, "p50_ms": 60.0}}, pressure=starved)
    assert d.status == "fail"
    _, d = _sweep(monkeypatch, "max_rps >= 200 rps", tail_only, pressure=None)  # no PSI: as measured
    assert d.status == "fail"


def test_a_first_step_the_generator_could_not_deliver_is_an_invalid_measurement(monkeypatch):
    with pytest.raises(Inconclusive, match=r"the first step \(100/s\) was not delivered"):
        _sweep(monkeypatch, "max_rps >= 200 rps", {100: {"valid": False}})


def test_no_lower_bound_rule_of_its_own():
    assert not hasattr(S, "_lower_bound_undecided")


# ---------------------------------------------------------------------------------------------
# sustained: the pressure while the load ran goes to the rule


def _sustained(monkeypatch, expect: str, result, pressure) -> tuple:
    runs = []
    monkeypatch.setattr(S, "_run", lambda edge, config: runs.append(config) or result)
    monkeypatch.setattr(once, "PressureWindow", lambda: SimpleNamespace(stop=lambda: pressure))  # the shared run's
    edge = CapacityEdge({"rate": 100, "duration": 6}, expect)
    edge.requirement = SimpleNamespace(id="T-LOAD", level="must", expect=E.parse(expect),
                                       metric_dimensions=dict(catalog.get("load.sustained").metrics))
    request = SimpleNamespace(config=SimpleNamespace(stash={}))
    S.test_sustained(edge, request)
    S.test_sustained(edge, request)  # a second requirement with the same load shares the run
    assert len(runs) == 1
    return edge, V.decide(edge.requirement, "s1", measured=edge.measured, validity=edge.validity[-1:])


def _tail_result():
    result = _step(600, p99_ms=3.0)
    result.latency_us = {"p50": 3000, "p90": 4000, "p95": 5000, "p99": 80_000, "max": 90_000}
    return result


def test_a_load_tail_miss_on_a_starved_machine_is_the_rules_to_excuse(monkeypatch):
    from conformance.measure.pressure import Pressure

    edge, d = _sustained(monkeypatch, "p95 <= 20 ms and p99 <= 50 ms", _tail_result(), Pressure(6.0, cpu=0.3, io=0.0))
    assert edge.validity[-1] == {"kind": "pressure", "cpu": 30.0, "io": 0.0, "memory": None, "window_s": 6.0,
                                 "target_cores": None}
    assert edge.measured["p50"] == (3.0, "ms")  # the median is recorded: without it no miss is excused
    assert d.status == "inconclusive", d.message
    _, d = _sustained(monkeypatch, "p95 <= 20 ms and p99 <= 50 ms", _tail_result(), Pressure(6.0, cpu=0.02))
    assert d.status == "fail"
    _, d = _sustained(monkeypatch, "p95 <= 20 ms and p99 <= 50 ms", _tail_result(), None)
    assert d.status == "fail"


@pytest.mark.parametrize("value, ratio", [("1 %", 0.01), ("0.1 %", 0.001), ("1%", 0.01), (0.02, 0.02),
                                          (0, 0.0), ("500 ppm", 0.0005), (None, 0.01)])
def test_error_budget(value, ratio):
    assert S._ratio(FakeEdge({"error_budget": value}), "error_budget", "1 %") == pytest.approx(ratio)


@pytest.mark.parametrize("value", ["many", "5 ms", "150 %", True, [1]])
def test_bad_error_budget_is_an_error(value):
    with pytest.raises(MeasurementError, match="error_budget"):
        S._ratio(FakeEdge({"error_budget": value}), "error_budget", "1 %")


# ---------------------------------------------------------------------------------------------
# percentiles: failed requests rank last, at the timeout


def _result(values_ms: list[float], failures: int = 0, unfinished: int = 0):
    hist = HdrHistogram(1, 3_600_000_000, 3)
    for v in values_ms:
        hist.record_value(int(v * 1000))
    pct = hist.get_percentile_to_value_dict([50, 90, 95, 99])
    latency = {"p50": pct[50], "p90": pct[90], "p95": pct[95], "p99": pct[99], "max": hist.get_max_value()}
    return SimpleNamespace(requests=len(values_ms) + failures, failures=failures, unfinished=unfinished,
                           latency_us=latency, latency_histogram=lambda: hist)


def test_without_failures_the_drivers_percentiles_are_used():
    stats = Stats(_result([float(v) for v in range(1, 101)]), timeout_s=5)
    assert stats.error_ratio == 0 and stats.total == 100
    assert stats.latency_us("p50") == pytest.approx(50_000, rel=0.01)
    assert stats.latency_us("max") == pytest.approx(100_000, rel=0.01)
    assert stats.in_failures == []


def test_failures_rank_after_every_answer():
    stats = Stats(_result([float(v) for v in range(1, 101)], failures=5), timeout_s=5)
    assert stats.total == 105 and stats.error_ratio == pytest.approx(5 / 105)
    assert stats.latency_us("p99") == 5_000_000  # rank 104 of 105: a failed request, at the timeout
    assert stats.latency_us("p95") == pytest.approx(100_000, rel=0.01)  # rank 100: the slowest answer
    assert stats.latency_us("p50") == pytest.approx(53_000, rel=0.02)  # rank 53 of the answers
    assert stats.latency_us("max") == 5_000_000
    assert stats.in_failures == ["p99"]


def test_unfinished_requests_count_as_failed():
    stats = Stats(_result([1.0] * 98, unfinished=2), timeout_s=2)
    assert stats.total == 100 and stats.failed == 2 and stats.error_ratio == pytest.approx(0.02)
    assert stats.latency_us("p99") == 2_000_000


def test_requests_never_sent_because_the_site_held_every_user_count_as_failed():
    held = _result([1.0] * 80)
    held.held_by_target, held.dropped_requests = True, 20
    stats = Stats(held, timeout_s=2)
    assert stats.never_sent == 20 and stats.total == 100 and stats.error_ratio == pytest.approx(0.2)
    assert stats.latency_us("p99") == 2_000_000  # the unsent ones rank last, at the timeout
    # drops the guard tolerated as the generator's own hiccups are not the site's failures
    tolerated = _result([1.0] * 80)
    tolerated.held_by_target, tolerated.dropped_requests = False, 1
    assert Stats(tolerated, timeout_s=2).error_ratio == 0


def test_no_request_has_no_latency():
    stats = Stats(SimpleNamespace(requests=0, failures=0, unfinished=0, latency_us={}), timeout_s=5)
    assert stats.latency_us("p99") is None and stats.latency_us("max") is None and stats.error_ratio == 0


# ---------------------------------------------------------------------------------------------
# settings for the driver


def test_users_cover_one_second_or_five_times_the_bound():
    pos = S._config(FakeEdge({"scenario": "pos"}), 100, 6, latency_bound_s=0.05)
    assert pos.users == 50  # 50 sales/s (2 requests each) x 1 s
    slow = S._config(FakeEdge(), 100, 6, latency_bound_s=0.5)
    assert slow.users == 250  # 100/s x 5 x 0.5 s
    huge = S._config(FakeEdge(), 50_000, 6, latency_bound_s=None)
    assert huge.users == MAX_USERS
    given = S._config(FakeEdge({"users": 7}), 100, 6, latency_bound_s=None)
    assert given.users == 7


def test_the_default_load_is_get_health_relative_to_the_endpoint():
    config = S._config(FakeEdge(), 100, 6, latency_bound_s=None)
    assert config.url == "http://127.0.0.1:8080" and config.scenario == "endpoints"
    assert [(e.name, e.method, e.url) for e in config.endpoints] == [("health", "GET", "/health")]
    assert config.request_timeout_s == 5.0 and config.duration_s == 6 and config.rate == 100


def test_endpoints_are_paths_on_the_site():
    edge = FakeEdge({"endpoints": [{"name": "sale", "method": "post", "path": "pos/transactions", "weight": 2,
                                    "body": {"amount": 1}}, {"path": "/health"}]})
    config = S._config(edge, 10, 1, latency_bound_s=None)
    assert [(e.name, e.method, e.url, e.weight, e.body) for e in config.endpoints] == [
        ("sale", "POST", "/pos/transactions", 2.0, {"amount": 1}), ("/health", "GET", "/health", 1.0, None)]


@pytest.mark.parametrize("params, message", [
    ({"endpoints": [{"path": "http://10.0.0.9/x"}]}, "relative to the site endpoint"),
    ({"endpoints": [{"url": "/x"}]}, "unknown key 'url'"),
    ({"endpoints": []}, "endpoints is empty"),
    ({"endpoints": [{"path": "/x", "method": "BREW"}]}, "unknown HTTP method"),
    ({"scenario": "pos", "endpoints": [{"path": "/x"}]}, "only used by the endpoints scenario"),
    ({"scenario": "nosuch"}, "unknown scenario"),
    ({"guard": {"cpu_pct": 50}}, "load.guard.cpu_pct"),
    ({"endpoint": "mgmt"}, "no endpoint mgmt"),
])
def test_bad_load_settings_are_errors(params, message):
    with pytest.raises(MeasurementError, match=message):
        S._config(FakeEdge(params), 10, 1, latency_bound_s=None)


def test_tcp_echo_goes_to_the_endpoints_host_and_port():
    config = S._config(FakeEdge({"scenario": "tcp_echo", "payload_bytes": 32},
                                endpoints={"api": "http://127.0.0.1:9000/"}), 10, 1, latency_bound_s=None)
    assert config.url == "tcp://127.0.0.1:9000" and config.payload_bytes == 32


@pytest.mark.parametrize("expect, bound", [
    ("achieved >= 95 rps and p95 <= 20 ms and p99 <= 50 ms", ("p99", 0.05)),
    ("p95 < 20 ms", ("p95", 0.02)),
    ("p99 >= 1 ms and p90 <= 2 s", ("p90", 2.0)),  # only upper bounds are thresholds
    ("achieved >= 95 rps and error_ratio <= 1 %", None),
])
def test_the_latency_threshold_is_the_expectations_upper_bound(expect, bound):
    got = S._latency_bound(FakeEdge(expect=expect))
    assert got == (bound if bound is None else (bound[0], pytest.approx(bound[1])))


def test_timeseries_rows_are_in_the_reports_shape():
    rows = S.timeseries([{"t": 0, "epoch": 10, "rps": 5, "errors_per_s": 1, "p95_us": 1500, "users": 3, "active": 2,
                          "offered": 6, "dropped": 0},
                         {"t": 1, "epoch": 11, "rps": 0, "errors_per_s": 0, "p95_us": None, "users": 3,
                          "active": 0, "offered": 0, "dropped": 0}])
    assert rows[0] == {"t": 0, "epoch": 10, "rps": 5, "p95_ms": 1.5, "users": 3, "active": 2, "errors_per_s": 1,
                       "offered": 6, "dropped": 0}
    assert rows[1]["p95_ms"] is None


def test_the_run_s_load_spread_overrides_the_requirement_s_workers():
    edge = FakeEdge({"rate": 100, "workers": 1})
    edge.load_spread = {"workers": 3, "remote_workers": 2, "master_bind_host": "0.0.0.0", "master_port": 5557}
    config = S._config(edge, 100.0, 2.0, latency_bound_s=None)
    assert (config.workers, config.remote_workers, config.master_bind_host, config.master_port) == \
        (3, 2, "0.0.0.0", 5557)
    assert config.total_users >= 5  # at least one user per worker
