"""The one verdict rule (model/verdict.py `decide`), on fake records: no deployment, no pytest plugin.

Each piece the suites rely on instead of deciding themselves: sample counts, lower bounds, pressure on
the harness's machine (explained and not), a busy target, invalid measurements, not-measured with its
remedy, not-applicable, errors, assertions and waivers. Every status here is also what `verify`
recomputes from a bundle, so these are the rules a reviewer can check by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conformance.model import catalog
from conformance.model import expect as E
from conformance.model import verdict as V


def req(expect: str, check: str = "latency.request", level: str = "must", rid: str = "T-1"):
    return SimpleNamespace(id=rid, level=level, expect=E.parse(expect),
                           metric_dimensions=dict(catalog.get(check).metrics))


TIMES = ("p50", "p90", "p99", "p999", "max", "mean", "jitter", "spread")


def ms(**values: float) -> dict[str, tuple[float, str]]:
    """Latency figures in ms; *_ratio in %; anything else as a count."""
    return {k: (v, "%" if k.endswith("_ratio") else "ms" if k in TIMES else "") for k, v in values.items()}


def pressure(cpu=None, io=None, memory=None, window_s=6.5, target_cores=None) -> dict:
    return {"kind": "pressure", "cpu": cpu, "io": io, "memory": memory, "window_s": window_s,
            "target_cores": target_cores}


def decide(requirement, measured=None, **kw) -> V.Decision:
    return V.decide(requirement, "store-1", measured=measured, **kw)


# ---------------------------------------------------------------------------------------------
# measured as expected


def test_a_measurement_within_the_expectation_passes_and_one_outside_fails():
    r = req("p90 <= 20 ms and p99 <= 50 ms")
    d = decide(r, ms(p50=3, p90=5, p99=9))
    assert d.status == "pass" and not d.advisory
    assert d.message.startswith("T-1 store-1: p90 = 5 ms (expected <= 20 ms)")
    d = decide(r, ms(p50=3, p90=25, p99=9))
    assert d.status == "fail" and d.detail == "p90 = 25 ms" and "expected <= 20 ms" in d.message


def test_a_should_that_fails_is_advisory_a_must_is_not():
    assert decide(req("p99 <= 10 ms", level="should"), ms(p50=1, p99=20)).advisory is True
    assert decide(req("p99 <= 10 ms"), ms(p50=1, p99=20)).advisory is False


def test_a_metric_the_check_did_not_record_is_an_error_never_a_pass():
    d = decide(req("p99 <= 50 ms and error_ratio == 0 %"), ms(p99=9))
    assert d.status == "error" and "error_ratio" in d.message


# ---------------------------------------------------------------------------------------------
# samples


@pytest.mark.parametrize("expect, need", [
    ("p50 <= 1 ms", 20), ("p90 <= 1 ms", 100), ("p99 <= 1 ms", 1000), ("p999 <= 1 ms", 10_000),
    ("spread <= 1 ms", 1000), ("jitter <= 1 ms", 100), ("mean <= 1 ms", 20), ("max <= 1 ms", 0),
    ("error_ratio < 1 %", 100), ("timeout_ratio <= 0.1 %", 1000), ("error_ratio == 0", 0),
    ("samples >= 10", 0),
])
def test_samples_a_comparison_needs(expect, need):
    assert V.min_samples(E.parse(expect).comparisons[0]) == need


def test_too_few_samples_for_a_percentile_is_inconclusive_whatever_it_measured():
    r = req("p99 <= 20 ms")
    for p99 in (5, 500):  # it would pass, it would fail: 400 samples decide neither
        d = decide(r, ms(p50=1, p99=p99), validity=[{"kind": "samples", "count": 400}])
        assert d.status == "inconclusive", d.message
        assert "p99 needs at least 1000 samples, got 400" in d.message
    assert decide(r, ms(p50=1, p99=5), validity=[{"kind": "samples", "count": 1000}]).status == "pass"


def test_the_largest_shortfall_is_named():
    d = decide(req("p50 <= 20 ms and p999 <= 1 s"), ms(p50=1, p999=5),
               validity=[{"kind": "samples", "count": 500}])
    assert d.status == "inconclusive" and "p999 needs at least 10000 samples, got 500" in d.message


def test_a_comparison_with_enough_samples_that_fails_decides_despite_the_rest():
    d = decide(req("p50 <= 20 ms and p999 <= 1 s"), ms(p50=30, p999=40),
               validity=[{"kind": "samples", "count": 1000}])
    assert d.status == "fail" and "p50 = 30 ms" in d.detail


def test_a_failure_ratio_bound_needs_enough_samples_to_see_one_failure():
    r = req("error_ratio < 1 %")
    assert decide(r, ms(error_ratio=0), validity=[{"kind": "samples", "count": 50}]).status == "inconclusive"
    assert decide(r, ms(error_ratio=0), validity=[{"kind": "samples", "count": 100}]).status == "pass"
    assert decide(req("error_ratio == 0 %"), ms(error_ratio=0),
                  validity=[{"kind": "samples", "count": 5}]).status == "pass"


def test_without_sample_evidence_nothing_is_counted():
    assert decide(req("p99 <= 20 ms"), ms(p50=1, p99=5)).status == "pass"


# ---------------------------------------------------------------------------------------------
# lower bounds (a capacity sweep that stopped before the knee)


def _capacity(expect: str, max_rps: float, reason: str = "max_rate reached; raise max_rate", **extra):
    measured = {"max_rps": (max_rps, "rps"), **{k: (v, "") for k, v in extra.items()}}
    return decide(req(expect, check="load.capacity"), measured,
                  validity=[{"kind": "lower_bound", "metric": "max_rps", "reason": reason}])


@pytest.mark.parametrize("expect, status", [
    ("max_rps >= 10000 rps", "inconclusive"),  # the true knee may or may not be that high
    ("max_rps >= 200 rps", "pass"),  # a lower bound above the bound settles it
    ("max_rps >= 30000 rpm", "pass"),  # units convert (500/s = 30000/min)
    ("max_rps <= 100 rps", "fail"),  # already above an upper bound: settled
    ("max_rps <= 1000 rps", "inconclusive"),
    ("max_rps < 500 rps", "fail"),
    ("steps >= 2 and max_rps > 499 rps", "pass"),
])
def test_a_lower_bound_decides_only_what_it_can(expect, status):
    d = _capacity(expect, 500, steps=3)
    assert d.status == status, d.message


def test_an_undecided_lower_bound_says_why_and_what_to_do():
    d = _capacity("max_rps >= 10000 rps", 500)
    assert ("max_rps is only a lower bound (500 rps, max_rate reached; raise max_rate): max_rps >= 10000 rps "
            "cannot be decided") in d.message
    d = _capacity("max_rps >= 10000 rps", 500, reason="the last step delivered")
    assert "(500 rps, the last step delivered)" in d.message


def test_another_comparison_that_fails_decides_a_lower_bound_run():
    d = _capacity("steps >= 5 and max_rps >= 10000 rps", 500, steps=3)
    assert d.status == "fail" and "steps" in d.detail


def test_without_lower_bound_evidence_the_value_is_the_value():
    d = decide(req("max_rps >= 10000 rps", check="load.capacity"), {"max_rps": (500, "rps")})
    assert d.status == "fail"


# ---------------------------------------------------------------------------------------------
# pressure on the harness's machine


TAIL = "p90 <= 20 ms and p99 <= 50 ms"


def test_a_tail_miss_on_a_starved_machine_with_the_median_in_budget_is_inconclusive():
    d = decide(req(TAIL), ms(p50=3, p90=8, p99=80), validity=[pressure(cpu=40.0)])
    assert d.status == "inconclusive", d.message
    assert "starved" in d.message and "CPU 40 %" in d.message and "of 6.5 s" in d.message
    assert "p99 over budget may be the machine's tail" in d.message


@pytest.mark.parametrize("resource", ["cpu", "io", "memory"])
def test_each_kind_of_pressure_counts(resource):
    d = decide(req(TAIL), ms(p50=3, p90=8, p99=80), validity=[pressure(**{resource: 25.0})])
    assert d.status == "inconclusive" and f"limit 10 % for {resource}" in d.message


def test_below_the_limit_the_miss_stands():
    d = decide(req(TAIL), ms(p50=3, p90=8, p99=80), validity=[pressure(cpu=9.9, io=2.0, memory=0.0)])
    assert d.status == "fail"


def test_a_moved_median_is_the_targets_even_on_a_starved_machine():
    # slow-path: 25 ms added to every request; p90 and the median are both over the 20 ms bound
    d = decide(req(TAIL), ms(p50=27, p90=29, p99=33), validity=[pressure(cpu=60.0)])
    assert d.status == "fail" and "p90 = 29 ms" in d.detail


def test_one_unexplained_miss_makes_every_miss_stand():
    d = decide(req("p50 <= 2 ms and p99 <= 50 ms"), ms(p50=3, p99=60), validity=[pressure(cpu=60.0)])
    assert d.status == "fail"


def test_errors_max_jitter_and_spread_are_never_excused():
    starved = [pressure(cpu=90.0)]
    assert decide(req("p99 <= 10 ms and error_ratio == 0 %"), ms(p50=3, p99=14, error_ratio=5),
                  validity=starved).status == "fail"
    assert decide(req("max <= 10 ms"), ms(p50=3, max=40), validity=starved).status == "fail"
    assert decide(req("jitter <= 1 ms"), ms(p50=3, jitter=4), validity=starved).status == "fail"
    assert decide(req("spread <= 1 ms"), ms(p50=3, spread=4), validity=starved).status == "fail"


def test_a_percentile_that_falls_among_failed_requests_is_never_excused():
    # 5 % of the requests failed (HTTP 503, ranked last at the 2 s timeout): the p99 is a failure however
    # fast the answers were and however busy the machine; starvation does not turn answers into errors.
    d = decide(req("p99 <= 50 ms"), ms(p50=1, p99=2000, error_ratio=5, timeout_ratio=0),
               validity=[pressure(cpu=86.4)])
    assert d.status == "fail", d.message


def test_without_a_recorded_median_a_miss_is_never_excused():
    d = decide(req("p99 <= 50 ms", check="resilience.partition"), {"p99": (80.0, "ms")},
               validity=[pressure(cpu=90.0)])
    assert d.status == "fail"


def test_the_median_is_compared_in_the_bounds_unit():
    d = decide(req("p99 <= 0.05 s"), {"p50": (3000.0, "us"), "p99": (80.0, "ms")}, validity=[pressure(cpu=40.0)])
    assert d.status == "inconclusive"


def test_a_busy_target_does_not_get_its_tail_excused():
    d = decide(req(TAIL), ms(p50=3, p90=8, p99=80), validity=[pressure(cpu=40.0, target_cores=0.9)])
    assert d.status == "fail"
    d = decide(req(TAIL), ms(p50=3, p90=8, p99=80), validity=[pressure(cpu=40.0, target_cores=0.1)])
    assert d.status == "inconclusive"


def test_a_pass_on_a_starved_machine_stays_a_pass():
    assert decide(req(TAIL), ms(p50=3, p90=8, p99=9), validity=[pressure(cpu=90.0)]).status == "pass"


def test_a_lower_bound_on_time_is_not_stretched():
    # starvation makes answers slower, never faster: a `>=` on a percentile is judged as measured
    d = decide(req("p50 >= 10 ms"), ms(p50=3), validity=[pressure(cpu=90.0)])
    assert d.status == "fail"


def test_pressure_on_a_metric_that_is_not_time_changes_nothing():
    d = decide(req("achieved >= 95 rps and p99 <= 50 ms", check="load.sustained"),
               {"achieved": (60.0, "rps"), "p50": (3.0, "ms"), "p99": (9.0, "ms")}, validity=[pressure(cpu=90.0)])
    assert d.status == "fail"


def test_pressure_figures_and_starved_resources():
    item = pressure(cpu=23.0, io=1.2, memory=None, window_s=6.5)
    assert V.pressure_figures(item) == "CPU 23 %, I/O 1.2 % of 6.5 s"
    assert V.starved_resources(item) == ["cpu"]
    assert V.starved_resources(pressure(cpu=None, io=None, memory=None)) == []


# ---------------------------------------------------------------------------------------------
# invalid measurements, endings


def test_an_invalid_measurement_is_inconclusive_whatever_it_measured():
    invalid = [{"kind": "invalid", "reason": "prober self-check: prober fell behind: 30% of sends late"}]
    for p99 in (5, 500):
        d = decide(req(TAIL), ms(p50=3, p90=4, p99=p99), validity=invalid)
        assert d.status == "inconclusive" and "prober fell behind: 30%" in d.message


def test_unknown_evidence_is_an_error():
    d = decide(req(TAIL), ms(p50=3, p90=4, p99=5), validity=[{"kind": "vibes"}])
    assert d.status == "error" and "vibes" in d.message


def test_not_measured_says_what_would_let_it_run_and_never_passes():
    d = decide(req("running == true", check="functional.process"),
               ended=V.Ended("not-measured", "site has no hosts",
                             "give site store-1 a testinfra host in the target file (hosts: [ssh://...])"))
    assert d.status == "not-measured" and not d.advisory
    assert d.message == ("T-1 store-1: not measured: site has no hosts; to measure it: give site store-1 a "
                         "testinfra host in the target file (hosts: [ssh://...])")
    assert "not-measured" in V.UNDECIDED  # a must left so makes the run incomplete
    d = decide(req("running == true", check="functional.process", level="should"),
               ended={"how": "not-measured", "reason": "site has no hosts"})
    assert d.status == "not-measured" and d.advisory and "to measure it" not in d.message


def test_not_applicable_is_neither_advisory_nor_undecided():
    d = decide(req("accepted_defaults == 0", check="security.default_credentials"),
               ended=V.Ended("not-applicable", "no endpoint asks for credentials"))
    assert d.status == "not-applicable" and not d.advisory and d.status not in V.UNDECIDED
    assert d.message == "T-1 store-1: not applicable: no endpoint asks for credentials"


def test_an_error_is_an_error_even_with_good_figures():
    d = decide(req(TAIL), ms(p50=3, p90=4, p99=5), ended=V.Ended("error", "could not measure: refused"))
    assert d.status == "error" and "refused" in d.message


def test_a_failed_assertion_of_the_check_is_a_fail_and_can_be_waived():
    r = req(TAIL)
    d = decide(r, ended=V.Ended("assertion", "body differs"))
    assert d.status == "fail" and "body differs" in d.message
    waiver = {"id": "T-1", "site": "all", "reason": "known", "who": "ops", "expires": "2099-01-01"}
    assert decide(r, ended=V.Ended("assertion", "body differs"), waivers=[waiver]).status == "waived"


def test_an_invalid_measurement_beats_the_checks_own_assertion():
    d = decide(req(TAIL), ended=V.Ended("assertion", "x"), validity=[{"kind": "invalid", "reason": "r"}])
    assert d.status == "inconclusive"


def test_not_run_and_an_unknown_ending():
    assert decide(req(TAIL), ended=V.Ended("not-run", "interrupted")).status == "not-run"
    assert decide(req(TAIL), ended=None).status == "error"  # measured, with nothing recorded
    d = decide(req(TAIL), ms(p50=3, p90=4, p99=5), ended={"how": "skipped"})
    assert d.status == "error" and "unknown ending 'skipped'" in d.message
    assert V.Ended.from_dict(None).how == "not-run"


# ---------------------------------------------------------------------------------------------
# waivers


def test_a_waiver_covers_a_fail_of_its_requirement_at_its_site_only():
    r = req(TAIL)
    failing = ms(p50=3, p90=25, p99=9)
    here = {"id": "T-1", "site": "store-1", "reason": "new hardware due", "who": "ops", "expires": "2099-01-01"}
    d = decide(r, failing, waivers=[here])
    assert d.status == "waived" and d.waiver == here and "[waived until 2099-01-01: new hardware due (ops)]" in d.message
    assert decide(r, failing, waivers=[{**here, "site": "store-2"}]).status == "fail"
    assert decide(r, failing, waivers=[{**here, "id": "T-2"}]).status == "fail"


def test_a_waiver_never_covers_what_was_not_decided():
    waiver = {"id": "T-1", "site": "all", "reason": "r", "who": "w", "expires": "2099-01-01"}
    r = req(TAIL)
    assert decide(r, ms(p50=3, p90=25, p99=9), validity=[{"kind": "invalid", "reason": "x"}],
                  waivers=[waiver]).status == "inconclusive"
    assert decide(r, ended=V.Ended("error", "boom"), waivers=[waiver]).status == "error"
    assert decide(r, ended=V.Ended("not-measured", "no host"), waivers=[waiver]).status == "not-measured"
    assert decide(r, ms(p50=3, p90=4, p99=5), waivers=[waiver]).status == "pass"


def test_a_percentile_above_the_failed_share_may_still_be_the_machines_tail():
    d = decide(req("p99 <= 50 ms"), ms(p50=1, p99=80, error_ratio=0.5, timeout_ratio=0), validity=[pressure(cpu=40.0)])
    assert d.status == "inconclusive", d.message


def test_invalid_evidence_naming_metrics_applies_only_to_them():
    invalid = [{"kind": "invalid", "reason": "probe fell behind", "metrics": ["availability", "p99"]}]
    assert decide(req("p99 <= 50 ms"), ms(p50=1, p99=2), validity=invalid).status == "inconclusive"
    other = req("mean <= 50 ms")
    assert decide(other, ms(p50=1, mean=2), validity=invalid).status == "pass"


# ---------------------------------------------------------------------------------------------
# a measurement floor (the growth a long outage's samples could read with nothing growing)


def floor(value: float, metric: str = "memory_projected", unit: str = "MiB") -> dict:
    return {"kind": "floor", "metric": metric, "value": value, "unit": unit, "reason": "the samples' scatter"}


@pytest.mark.parametrize("budget, measured, status", [
    ("64 MiB", 10, "pass"),          # budget 64 >= 3 x 20: decided
    ("64 MiB", 500, "fail"),
    ("50 MiB", 10, "inconclusive"),  # budget 50 < 3 x 20: the noise alone could break it
    ("50 MiB", 100, "inconclusive"),  # over the budget by less than 3 floors: noise may explain it
    ("50 MiB", 500, "fail"),          # over it by far more than any noise: decided
])
def test_an_upper_bound_near_the_measurement_floor_is_inconclusive(budget, measured, status):
    d = decide(req(f"memory_projected <= {budget}", check="resilience.long_outage"),
               {"memory_projected": (measured, "MiB")}, validity=[floor(20)])
    assert d.status == status, d.message
    if status == "inconclusive":
        assert f"the budget <= {budget} is under 3x the measurement floor 20 MiB (the samples' scatter)" in d.message


def test_a_floor_in_other_units_is_converted_and_other_metrics_are_untouched():
    d = decide(req("memory_projected <= 1 GiB and auth_ok == true", check="resilience.long_outage"),
               {"memory_projected": (10, "MiB"), "auth_ok": (0, "")}, validity=[floor(400, unit="MiB")])
    assert d.status == "fail" and "auth_ok" in d.message  # decided by the other comparison
    d = decide(req("memory_projected <= 1 GiB", check="resilience.long_outage"), {"memory_projected": (10, "MiB")},
               validity=[floor(400, unit="MiB")])
    assert d.status == "inconclusive" and "under 3x the measurement floor 0.3906 GiB" in d.message
    d = decide(req("auth_ok == true", check="resilience.long_outage"), {"auth_ok": (1, "")},
               validity=[floor(400)])
    assert d.status == "pass"


def test_a_floored_metric_that_clearly_fails_decides_beside_an_undecided_one():
    d = decide(req("memory_projected <= 64 MiB and disk_projected <= 50 MiB", check="resilience.long_outage"),
               {"memory_projected": (5000, "MiB"), "disk_projected": (10, "MiB")},
               validity=[floor(5), floor(40, metric="disk_projected")])
    assert d.status == "fail" and "memory_projected" in d.message


# ---------------------------------------------------------------------------------------------
# the latency prober's own floor: a bias every value carries (strict), and budgets close to it


def latency_floor(p50: float = 0.3, p90: float = 0.4, p99: float = 0.6) -> list[dict]:
    reason = "the harness's own floor: http at 200/s against a loopback server"
    return [{"kind": "floor", "metric": m, "value": v, "unit": "ms", "strict": True, "reason": reason}
            for m, v in (("p50", p50), ("p90", p90), ("p99", p99))]


@pytest.mark.parametrize("measured", [0.5, 1.2, 40.0])
def test_a_latency_budget_under_3x_the_prober_floor_is_never_pass_or_fail(measured):
    """1 ms against a 0.4 ms p90 floor (2.5x): whatever was measured, even 40 ms, the harness cannot
    resolve that budget; the message says why."""
    d = decide(req("p90 < 1 ms"), ms(p90=measured), validity=latency_floor())
    assert d.status == "inconclusive", d.message
    assert "the budget < 1 ms is under 3x the measurement floor 0.4 ms" in d.message
    assert "the harness's own floor: http at 200/s" in d.message


def test_a_latency_budget_within_10x_of_the_floor_is_judged_and_says_how_close():
    passed = decide(req("p90 < 3 ms"), ms(p90=1.1), validity=latency_floor(p90=0.5))
    assert passed.status == "pass"
    assert "p90 budget 3 ms is 6.0x the measurement floor 0.5 ms" in passed.message
    assert "6.0x the measurement floor" in passed.detail
    failed = decide(req("p90 < 3 ms"), ms(p90=27.8), validity=latency_floor(p90=0.5))
    assert failed.status == "fail" and "6.0x the measurement floor" in failed.message
    far = decide(req("p90 < 20 ms"), ms(p90=1.1), validity=latency_floor(p90=0.5))
    assert far.status == "pass" and "measurement floor" not in far.message  # 40x: nothing to say


def test_a_scatter_floor_still_fails_a_value_far_beyond_it_but_a_strict_one_does_not():
    scatter = [{**f, "strict": False} for f in latency_floor()]
    assert decide(req("p90 < 1 ms"), ms(p90=40.0), validity=scatter).status == "fail"
    assert decide(req("p90 < 1 ms"), ms(p90=40.0), validity=latency_floor()).status == "inconclusive"


def test_a_clear_failure_of_an_unfloored_metric_decides_beside_a_budget_under_the_floor():
    d = decide(req("p50 < 0.5 ms and error_ratio < 1 %"), ms(p50=0.4, error_ratio=30), validity=latency_floor())
    assert d.status == "fail" and "error_ratio" in d.message


def test_a_miss_by_less_than_the_strict_floor_is_inconclusive_beyond_it_a_fail():
    """The floor is the harness's own share of every value: 3.2 ms against 3 ms with a 0.5 ms floor
    may be a 2.7 ms site."""
    d = decide(req("p90 < 3 ms"), ms(p90=3.2), validity=latency_floor(p90=0.5))
    assert d.status == "inconclusive"
    assert "p90 = 3.2 ms is over the budget < 3 ms by less than the measurement floor 0.5 ms" in d.message
    assert decide(req("p90 < 3 ms"), ms(p90=3.6), validity=latency_floor(p90=0.5)).status == "fail"
    scatter = [{**f, "strict": False} for f in latency_floor(p90=0.5)]
    d = decide(req("p90 < 3 ms"), ms(p90=3.2), validity=scatter)
    assert d.status == "fail" and "measurement floor" not in d.message  # no note for a scatter floor
