"""The stack suite's checks without a deployment: the shipped suite module called with a fake `edge`
whose outcomes raise as the plugin's do, against loopback stand-ins (tests/measure/test_httpcache.py's
cache; a local mosquitto for the bridge, in tests/measure/test_mqtt.py)."""

from __future__ import annotations

from types import SimpleNamespace

import contextlib
import importlib.util

import pytest

from conformance.model import catalog
from conformance.model import verdict as V
from conformance.model.errors import NotMeasured
from conformance.model.target import Site, Target
from conformance.model.paths import suites_dir
from conformance.pytest_plugin import Recording

from tests.measure.test_httpcache import StandInCache


def _suite():
    path = suites_dir() / "stack" / "test_stack.py"
    spec = importlib.util.spec_from_file_location("suite_stack_test_stack", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STACK = _suite()


def defaults(check: str, **over) -> dict:
    """The check's params as the plugin hands them over: every default, durations in seconds."""
    from conformance.model.profile import parse_duration

    out = {}
    for name, p in catalog.get(check).params.items():
        value = over.get(name, p.default)
        out[name] = parse_duration(value) if p.kind == "duration" and value is not None else value
    return out


class FakeFaults:
    kind = "fake"

    def __init__(self, on_cut=None, on_heal=None):
        self.log: list[str] = []
        self.on_cut, self.on_heal = on_cut, on_heal
        self.cuts: list[str] = []
        self.durations: list[float | None] = []  # the dead-man bound each cut asked for

    def require(self, *actions):
        pass

    @contextlib.contextmanager
    def partitioned(self, mode="hold", duration=None):
        self.cuts.append(mode)
        self.durations.append(duration)
        if self.on_cut:
            self.on_cut()
        try:
            yield
        finally:
            if self.on_heal:
                self.on_heal()


class FakeEdge:
    def __init__(self, site: Site, sites: list[Site] | None = None, params: dict | None = None, faults=None):
        self.site = site
        self.target = Target("t", sites or [site])
        self.params = dict(params or {})
        self.requirement = SimpleNamespace(unscaled={})  # run without --duration-scale
        self.allowed_hosts = {"127.0.0.1", "::1", "localhost"}
        self.ca_file = None
        self.emulation = None
        self._faults = faults

    @property
    def faults(self):
        if self._faults is None:
            raise NotMeasured("fault hooks not allowed", "pass --allow-faults")
        return self._faults

    def not_measured(self, reason, remedy=None):
        raise NotMeasured(reason, remedy)


CENTRAL = Site("central", "central", endpoints={"api": "http://127.0.0.1:1"})
STORE = Site("store-1", "edge", endpoints={"api": "http://127.0.0.1:2"}, uplink="central")


def test_a_site_without_a_cache_endpoint_is_not_measured_with_the_endpoint_to_declare():
    edge = FakeEdge(STORE, [CENTRAL, STORE], defaults("stack.http_cache"), faults=FakeFaults())
    with pytest.raises(NotMeasured) as got:
        STACK._http_cache(edge, Recording())
    text = V.not_measured_text(got.value.reason, got.value.remedy)
    assert text.startswith('not measured: site store-1 declares no endpoint "cache" (endpoints: api); '
                           "to measure it: declare the site's HTTP cache as endpoint `cache` in the target file")


def test_a_site_or_central_without_a_broker_endpoint_is_not_measured_naming_it():
    edge = FakeEdge(STORE, [CENTRAL, STORE], defaults("stack.mqtt_bridge"), faults=FakeFaults())
    with pytest.raises(NotMeasured) as got:
        STACK._mqtt_bridge(edge, Recording())
    assert got.value.reason == 'site store-1 declares no endpoint "mqtt" (endpoints: api)'
    assert got.value.remedy.startswith("declare site store-1's MQTT broker as endpoint `mqtt`")
    store = Site("store-1", "edge", endpoints={"mqtt": "mqtt://127.0.0.1:1883"}, uplink="central")
    edge = FakeEdge(store, [CENTRAL, store], defaults("stack.mqtt_bridge"), faults=FakeFaults())
    with pytest.raises(NotMeasured) as got:
        STACK._mqtt_bridge(edge, Recording())
    assert got.value.reason == 'site central declares no endpoint "mqtt" (endpoints: api)'
    assert "the uplink central's MQTT broker as endpoint `mqtt`" in got.value.remedy
    assert "`central_endpoint` param" in got.value.remedy
    loose = Site("store-9", "edge", endpoints={"mqtt": "mqtt://127.0.0.1:1883"})
    with pytest.raises(NotMeasured, match="no uplink"):
        STACK._mqtt_bridge(FakeEdge(loose, [CENTRAL, loose], defaults("stack.mqtt_bridge")), Recording())


def test_an_emulated_site_without_the_stack_is_told_to_use_the_docker_backend():
    edge = FakeEdge(STORE, [CENTRAL, STORE], defaults("stack.http_cache"), faults=FakeFaults())
    edge.emulation = {"backend": "local", "topology": "edge-stack"}
    with pytest.raises(NotMeasured) as got:
        STACK._http_cache(edge, Recording())
    assert got.value.reason == 'site store-1 declares no endpoint "cache" (endpoints: api)'
    assert got.value.remedy.startswith("run a topology whose sites have `config: {stack: [nginx, mosquitto]}` "
                                       "(emulated:edge-stack) with --backend docker")


def test_without_faults_the_cut_is_not_measured_but_cut_false_measures_the_hit_ratio():
    cache = StandInCache(ttl=5)
    try:
        store = Site("store-1", "edge", endpoints={"cache": cache.base}, uplink="central")
        with pytest.raises(NotMeasured, match="fault hooks not allowed"):
            STACK._http_cache(FakeEdge(store, [CENTRAL, store], defaults("stack.http_cache")), Recording())
        rec = Recording()
        STACK._http_cache(FakeEdge(store, [CENTRAL, store], defaults("stack.http_cache", cut=False)), rec)
        got = {m: v for m, v, _ in rec.metrics}
        assert got == {"requests": 20, "hit_ratio": 1.0}
    finally:
        cache.close()


@pytest.mark.parametrize("stale", [True, False])
def test_the_cache_check_through_a_cut(stale):
    cache = StandInCache(ttl=1.0, stale=stale)
    try:
        store = Site("store-1", "edge", endpoints={"cache": cache.base}, uplink="central")
        faults = FakeFaults(on_cut=lambda: setattr(cache, "origin_up", False),
                            on_heal=lambda: setattr(cache, "origin_up", True))
        params = defaults("stack.http_cache", keys=2, repeats=2, content_ttl="1 s", duration="0.3 s")
        rec = Recording()
        STACK._http_cache(FakeEdge(store, [CENTRAL, store], params, faults=faults), rec)
        got = {m: v for m, v, _ in rec.metrics}
        assert faults.cuts == ["drop"] and cache.origin_up
        # a real site's dead-man removes the cut after at most ttl + duration + 2 op timeouts
        assert faults.durations[0] is not None and 1.3 < faults.durations[0] < 1.3 + 2 * 30
        assert got["hit_ratio"] == 1.0 and got["stale_served_ratio"] == (1.0 if stale else 0.0)
        assert got["cut_requests"] >= 2 and rec.validity == []
        assert any(n.startswith("WAN cut (drop) for ") for n in rec.notes)
    finally:
        cache.close()


def test_the_not_measured_text_of_a_cache_without_a_status_header():
    cache = StandInCache(header=None)
    try:
        store = Site("store-1", "edge", endpoints={"cache": cache.base}, uplink="central")
        with pytest.raises(NotMeasured) as got:
            STACK._http_cache(FakeEdge(store, [CENTRAL, store], defaults("stack.http_cache"), faults=FakeFaults()),
                              Recording())
        assert "no cache status header (X-Cache, X-Cache-Status, X-Proxy-Cache, Cache-Status)" in got.value.reason
        assert "add_header X-Cache $upstream_cache_status" in got.value.remedy
    finally:
        cache.close()
