"""The resilience suite's evidence, without a deployment: a steady probe that fell behind its own schedule
("prober fell behind 30 %" on a busy runner) is an invalid measurement of what it measured, never a fail
of the site, and leaves the other requirements that share the partition judged as measured; the probe's
timings reach the one verdict rule with their median and the pressure."""

from __future__ import annotations

import importlib.util
import sys
from types import SimpleNamespace

import pytest

from conformance.model import catalog
from conformance.model import expect as E
from conformance.model import verdict as V
from conformance.model.errors import Inconclusive
from conformance.model.paths import suites_dir

PROBE_METRICS = ("availability", "p99", "probes")  # conformance/measure/steady: what the steady probe measures


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("resilience_suite_under_test",
                                                  suites_dir() / "resilience" / "test_resilience.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


class FakeEdge:
    """An edge whose shared experiment replays what a partition recorded."""

    def __init__(self, expect: str, recorded: dict):
        self.requirement = SimpleNamespace(id="RTL-RES-0x", level="must", expect=E.parse(expect),
                                           metric_dimensions=dict(catalog.get("resilience.partition").metrics))
        self.recorded = recorded
        self.raw, self.validity, self.measured = {}, [], {}

    def shared(self, experiment):
        self.raw["partition"] = dict(self.recorded["partition"])
        self.validity.extend(self.recorded["validity"])
        self.measured.update(self.recorded["measured"])

    def inconclusive(self, reason):
        raise Inconclusive(reason)


def recorded(valid: bool, p50: float = 7.0, p99: float = 25.0, cpu: float = 2.0) -> dict:
    """What the shared partition experiment records (_partition): an invalid steady probe is evidence
    naming the metrics the probe measured."""
    reason = "prober fell behind: 30.0% of sends started > 50 ms late (limit 5%)"
    invalid = [] if valid else [{"kind": "invalid", "reason": f"steady probe self-check: {reason}",
                                 "metrics": sorted(PROBE_METRICS)}]
    return {"partition": {"probe_valid": valid, "probe_invalid_reason": None if valid else reason},
            "validity": [{"kind": "pressure", "cpu": cpu, "io": 0.5, "memory": 0.0, "window_s": 3.2,
                          "target_cores": 0.02}, *invalid],
            "measured": {"availability": (1.0, "ratio"), "probes": (60.0, ""), "p50": (p50, "ms"),
                         "p99": (p99, "ms"), "pos_accepted": (1.0, "ratio"), "cache_served": (1.0, ""),
                         "auth_ok": (1.0, "")}}


def judge(suite, expect: str, rec: dict) -> V.Decision:
    """test_partition with the experiment faked, then the rule, as the plugin runs them."""
    edge = FakeEdge(expect, rec)
    try:
        suite.test_partition(edge, None)
    except Inconclusive as exc:
        edge.validity.append({"kind": "invalid", "reason": str(exc)})
    return V.decide(edge.requirement, "store-1", measured=edge.measured, validity=edge.validity)


def test_a_probe_that_fell_behind_leaves_what_it_measured_inconclusive(suite):
    d = judge(suite, "availability >= 99 % and p99 <= 200 ms", recorded(valid=False, p99=900.0))
    assert d.status == "inconclusive", d.message
    assert "steady probe self-check: prober fell behind: 30.0%" in d.message


def test_the_other_requirements_of_the_same_partition_are_judged_as_measured(suite):
    for expect in ("pos_accepted >= 100 %", "cache_served == true", "auth_ok == true"):
        assert judge(suite, expect, recorded(valid=False)).status == "pass", expect


def test_a_valid_probe_is_judged_by_the_rule_with_its_median_and_pressure(suite):
    assert judge(suite, "availability >= 99 % and p99 <= 200 ms", recorded(valid=True)).status == "pass"
    # a stretched tail on a starved machine with the median in budget: the machine's
    d = judge(suite, "availability >= 99 % and p99 <= 200 ms", recorded(valid=True, p99=400.0, cpu=60.0))
    assert d.status == "inconclusive" and "starved" in d.message
    # the same tail on a quiet machine, or with the median itself over: the site's
    assert judge(suite, "p99 <= 200 ms", recorded(valid=True, p99=400.0)).status == "fail"
    assert judge(suite, "p99 <= 200 ms", recorded(valid=True, p50=300.0, p99=400.0, cpu=60.0)).status == "fail"


def test_the_steady_probe_runs_under_sched_fifo_where_permitted(suite):
    probe = suite.SteadyProbe(SimpleNamespace(allowed_hosts={"127.0.0.1"}), "http://127.0.0.1:1/health",
                              rate=20, duration=3, timeout=1)
    assert probe.config.realtime is True


def test_the_probe_metrics_are_the_suites():
    from conformance.measure.steady import PROBE_METRICS as measured

    assert set(measured) == set(PROBE_METRICS)
