"""Load driver, pure parts (no processes): config, safety, the saturation guard, merging, recorder."""

from __future__ import annotations


import pytest

from conformance.measure.load import GuardConfig, LoadConfig, UnsafeTargetError, check_targets_allowed
from conformance.measure.load import guard, histograms
from conformance.measure.load.recorder import Recorder, error_kind
from conformance.measure.load.result import build_result
from conformance.model.errors import ConfigError


def _config(**overrides):
    data = {"url": "http://127.0.0.1:8080", "rate": 100, "duration_s": 2, "scenario": "content"}
    data.update(overrides)
    return LoadConfig.from_dict(data)


# ---- config ----------------------------------------------------------------------------------------


def test_config_round_trips_through_json_shape():
    config = _config(endpoints=[{"name": "a", "url": "/a", "method": "post", "weight": 2, "body": {"x": 1}}],
                     scenario="endpoints", guard={"rate_tolerance": 0.2})
    again = LoadConfig.from_dict(config.to_dict())
    assert again == config
    assert again.endpoints[0].method == "POST" and again.guard.rate_tolerance == 0.2


@pytest.mark.parametrize("overrides, field", [
    ({"scenario": "contnet"}, "load.scenario"),
    ({"rate": 0}, "load.rate"),
    ({"rate": "fast"}, "load.rate"),
    ({"workers": 0}, "load.workers"),
    ({"users": 1, "workers": 2}, "load.users"),
    ({"scenario": "tcp_echo"}, "load.url"),  # tcp_echo needs tcp://host:port
    ({"scenario": "endpoints"}, "load.endpoints"),
    ({"endpoints": [{"name": "a", "url": "/a"}, {"name": "a", "url": "/b"}], "scenario": "endpoints"},
     "load.endpoints"),
    ({"endpoints": [{"url": "/a", "method": "FETCH"}], "scenario": "endpoints"}, "load.endpoints[0].method"),
    ({"rat": 5}, "load.rat"),
    ({"guard": {"cpu": 80}}, "load.guard.cpu"),
])
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        _config(**overrides)
    assert info.value.field == field


def test_unknown_scenario_suggests_the_close_one():
    with pytest.raises(ConfigError, match='did you mean "content"'):
        _config(scenario="contnet")


def test_derived_values():
    assert _config(rate=100).total_users == 10  # at least 10
    assert _config(rate=2000).total_users == 200  # 100 ms of latency at the rate
    assert _config(users=7).total_users == 7
    pos = _config(scenario="pos", rate=100)
    assert pos.requests_per_iteration == 2 and pos.iteration_rate == 50
    assert not _config().distributed and _config(workers=2).distributed
    assert _config(remote_workers=1).distributed and _config(remote_workers=1).total_workers == 2
    assert _config(duration_s=10).hard_timeout_s > 10


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://127.8.9.10/", "http://localhost:80",
                                 "http://[::1]:8080/", "tcp://127.0.0.1:7"])
def test_loopback_targets_allowed(url):
    scenario = "tcp_echo" if url.startswith("tcp") else "content"
    check_targets_allowed(_config(url=url, scenario=scenario))


def test_non_loopback_needs_the_allow_list():
    config = _config(url="http://192.0.2.7:8080/")
    with pytest.raises(UnsafeTargetError, match="192.0.2.7"):
        check_targets_allowed(config)
    with pytest.raises(UnsafeTargetError):
        check_targets_allowed(config, ["192.0.2.8"])
    check_targets_allowed(config, ["192.0.2.7"])
    check_targets_allowed(_config(url="http://192.0.2.7:8080/", allow_hosts=["192.0.2.7"]))
    with pytest.raises(UnsafeTargetError, match="localhost.example"):  # names resolving anywhere: not trusted
        check_targets_allowed(_config(url="http://localhost.example/"))


# ---- guard -----------------------------------------------------------------------------------------


def _signals(**overrides):
    data = dict(offered_rps=1000, achieved_rps=995, requests=3000, failures=0, arrivals=3000, dropped=0,
                processes=[guard.ProcessSignals("local", [40.0] * 10, 2000)])
    data.update(overrides)
    return guard.GuardInput(**data)


def test_guard_accepts_a_run_that_kept_up():
    assert guard.assess(_signals()) == (True, None)


def test_guard_cpu_saturation_and_shortfall_reason():
    valid, reason = guard.assess(_signals(achieved_rps=610,
                                          processes=[guard.ProcessSignals("local", [97.0] * 8 + [50.0] * 2, 2000)]))
    assert not valid
    assert reason == "load generator saturated: CPU 97% of one core (local); achieved 610/s of 1000/s offered"


def test_guard_short_bursts_of_cpu_are_fine():
    procs = [guard.ProcessSignals("local", [95.0] * 2 + [30.0] * 8, 2000)]
    assert guard.assess(_signals(processes=procs))[0]


def test_guard_blames_the_target_when_it_errors():
    assert guard.assess(_signals(achieved_rps=500, failures=900))[0]  # 30 % failures: target's problem
    assert not guard.assess(_signals(achieved_rps=500, failures=30))[0]  # 1 %: the generator's


def test_guard_dropped_iterations_loop_lag_and_missing_workers():
    valid, reason = guard.assess(_signals(dropped=300))
    assert not valid and "dropped 300 of 3000" in reason
    valid, reason = guard.assess(_signals(processes=[guard.ProcessSignals("w", [50.0], 250_000)]))
    assert not valid and "loop lag p99 250 ms" in reason
    valid, reason = guard.assess(_signals(missing_workers=1, expected_workers=2))
    assert not valid and "missing from 1 of 2" in reason
    assert guard.assess(_signals(dropped=300), GuardConfig(dropped_tolerance=0.2))[0]


# ---- merging ---------------------------------------------------------------------------------------


def _report(index, latency_us, count, sec0=1_700_000_000, failures=0):
    hist = histograms.new_histogram()
    per_second = histograms.new_histogram(histograms.COARSE)
    for _ in range(count):
        histograms.record(hist, latency_us)
        histograms.record(per_second, latency_us)
    return {
        "role": "worker", "index": index, "host": "h", "pid": 100 + index,
        "window_start": sec0 + 0.5, "window_end": sec0 + 1.5, "iteration_rate": count,
        "requests_per_iteration": 1, "arrivals": count, "dropped": 0, "unfinished": 0, "users": 5,
        "endpoints": {"ok": {"method": "GET", "requests": count + failures, "failures": failures,
                             "errors": {"http_500": failures} if failures else {},
                             "histogram": histograms.encode(hist)}},
        "series": [{"sec": sec0 + 1, "requests": count + failures, "failures": failures, "arrivals": count,
                    "dropped": 0, "users": 5, "active": 2, "histogram": histograms.encode(per_second)}],
        "monitor": {"cpu_samples": [20.0, 30.0],
                    "loop_lag_histogram": histograms.encode(histograms.new_histogram(histograms.COARSE))},
    }


def test_histograms_are_merged_not_averaged():
    # worker A: 60 requests at 1.5 ms, worker B: 40 at 50.5 ms. True p50 is 1.5 ms; averaging p50s gives 26 ms.
    raw = {"reports": [_report(0, 1500, 60), _report(1, 50_500, 40, failures=3)], "expected_workers": 2}
    result = build_result(raw, _config(workers=2))
    assert result.requests == 103 and result.failures == 3 and result.errors == {"http_500": 3}
    assert 1490 <= result.latency_us["p50"] <= 1510
    assert 50_000 <= result.latency_us["p99"] <= 51_000
    assert result.achieved_rps == pytest.approx(103, rel=0.01)
    assert len(result.series) == 1
    row = result.series[0]
    assert row["rps"] == 103 and row["users"] == 10 and row["active"] == 4 and row["errors_per_s"] == 3
    assert 50_000 <= row["p95_us"] <= 51_000
    assert [p["name"] for p in result.generator["processes"]] == ["worker-0@h", "worker-1@h"]


def test_a_missing_worker_report_makes_the_result_invalid():
    raw = {"reports": [_report(0, 1500, 100)], "expected_workers": 2,
           "errors": ["worker report missing from 1 of 2 workers"]}
    result = build_result(raw, _config(workers=2, rate=100))
    assert not result.valid and "missing from 1 of 2" in result.invalid_reason


# ---- recorder --------------------------------------------------------------------------------------


class _Response:
    def __init__(self, status_code):
        self.status_code = status_code


def test_error_kinds():
    assert error_kind(Exception("x"), _Response(503)) == "http_503"
    assert error_kind(ConnectionRefusedError(), _Response(0)) == "connection_refused"
    assert error_kind(TimeoutError()) == "timeout"
    assert error_kind(TimeoutError()) == "timeout"


def test_recorder_measures_from_t0_ns_and_only_inside_the_window():
    import time

    recorder = Recorder()
    recorder.on_request("GET", "a", 5.0)  # before the window: ignored
    recorder.recording = True
    t0 = time.perf_counter_ns() - 2_345_000  # "sent" 2.345 ms ago
    recorder.on_request("GET", "a", 999.0, context={"t0_ns": t0})  # event's own value is not used
    recorder.on_request("GET", "a", 1.25)  # no t0_ns: falls back to the event's float ms
    recorder.on_request("GET", "a", 1.0, response=_Response(500), exception=Exception("500"))
    recorder.stop()
    report = recorder.report()["endpoints"]["a"]
    assert report["requests"] == 3 and report["failures"] == 1 and report["errors"] == {"http_500": 1}
    values = histograms.merge([report["histogram"]])
    assert values.get_total_count() == 2
    assert 1245 <= values.get_min_value() <= 1255
    assert 2340 <= values.get_max_value() <= 2600


def test_guard_blames_a_target_that_holds_every_user():
    """An overloaded target queues without bound, so the users run out: with the generator idle and the
    target's median latency alone using up the users (offered x p50 >= users), that is the target's
    slowness (a verdict on achieved rate and latency), not a saturated generator."""
    slow = dict(offered_rps=200, achieved_rps=148, requests=888, arrivals=1200, dropped=312, users=200,
                processes=[guard.ProcessSignals("local", [11.0] * 6, 1750)])
    assert guard.assess(_signals(**slow, latency_p50_us=1_690_000)) == (True, None)
    assert guard.assess_detail(_signals(**slow, latency_p50_us=1_690_000)) == (True, None, True)  # its drops count
    # The users were sized for more than the target took: running out is still the generator's problem.
    valid, reason = guard.assess(_signals(**slow, latency_p50_us=400_000))
    assert not valid and "no free user; raise users" in reason and "achieved 148/s" in reason
    # A starved generator explains slow answers itself.
    hot = {**slow, "processes": [guard.ProcessSignals("local", [99.0] * 6, 1750)]}
    assert not guard.assess(_signals(**hot, latency_p50_us=1_690_000))[0]


def test_guard_blames_the_generator_when_a_fast_target_runs_the_users_out():
    # 5 users asked for 20,000/s of a 1.7 ms loopback server: Little's law says the users were busy, but
    # a target this fast is not what held them: too few users for the rate.
    fast = dict(offered_rps=20_000, achieved_rps=2_900, requests=5_800, arrivals=40_000, dropped=34_000, users=5,
                processes=[guard.ProcessSignals("local", [60.0] * 6, 1750)])
    valid, reason = guard.assess(_signals(**fast, latency_p50_us=1_700))
    assert not valid and "achieved 2900/s" in reason and "raise users" in reason


def test_a_second_the_user_sampler_missed_keeps_the_spawned_users():
    clock = iter([100.2, 100.5, 101.1, 102.3, 102.4, 103.0])
    recorder = Recorder(clock=lambda: next(clock))
    recorder.note_users(12, 0)  # sampled before the window opened: no row, but the users exist
    recorder.recording = True
    recorder.note_arrival()     # second 100: the sampler did not tick in it
    recorder.note_users(12, 3)  # second 100
    recorder.note_arrival()     # second 101: not sampled (a starved loop)
    recorder.note_users(11, 2)  # second 102
    recorder.note_arrival()     # second 102
    recorder.note_arrival()     # second 103: not sampled
    recorder.stop()
    rows = {row["sec"]: row for row in recorder.report()["series"]}
    assert {sec: row["users"] for sec, row in rows.items()} == {100: 12, 101: 12, 102: 11, 103: 11}
    assert rows[101]["active"] == 0  # busy users are a peak of samples: none taken, none claimed
