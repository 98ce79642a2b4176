"""Not-measured or not-applicable, case by case, without a deployment: a gap in the target file is
not-measured with the one thing to add (never a pass, a must left so makes the run incomplete); only what
does not exist at the site as a fact of the site is not-applicable. The suite modules are loaded from the
shipped suites dir and called with a fake `edge` whose outcomes raise as the plugin's do."""

from __future__ import annotations

import importlib.util

import pytest

from conformance.measure.host.site import no_hosts
from conformance.model import verdict as V
from conformance.model.errors import NotApplicable, NotMeasured
from conformance.model.paths import suites_dir
from conformance.model.target import Site, Target


def _suite(rel: str):
    spec = importlib.util.spec_from_file_location(f"suite_{rel.replace('/', '_')[:-3]}", suites_dir() / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeEdge:
    def __init__(self, site: Site, sites: list[Site] | None = None, params: dict | None = None):
        self.site = site
        self.target = Target("t", sites or [site])
        self.params = dict(params or {})
        self.allowed_hosts = {"127.0.0.1"}
        self.emulation = None

    def not_measured(self, reason, remedy=None):
        raise NotMeasured(reason, remedy)

    def not_applicable(self, reason):
        raise NotApplicable(reason)

    def error(self, reason):  # pragma: no cover - not reached in these cases
        raise AssertionError(reason)


CENTRAL = Site("central", "central", endpoints={"api": "http://127.0.0.1:1"})
STORE = Site("store-1", "edge", endpoints={"api": "http://127.0.0.1:2"}, uplink="central")
LOOSE_STORE = Site("store-9", "edge", endpoints={"api": "http://127.0.0.1:3"})  # no uplink declared


def _message(exc: NotMeasured) -> str:
    """What the report shows: the rule's own text for the ending."""
    return V.not_measured_text(exc.reason, exc.remedy)


# ---------------------------------------------------------------------------------------------


def test_a_site_without_hosts_is_not_measured_with_what_to_add():
    reason, remedy = no_hosts(STORE, {})
    assert reason == "site has no hosts"
    assert remedy == "give site store-1 a testinfra host in the target file (hosts: [ssh://...])"
    with_hosts = Site("store-2", "edge", hosts=["ssh://ops@10.0.0.5", "local://"])
    reason, remedy = no_hosts(with_hosts, {"host": "docker"})
    assert reason == "none of the site's hosts matches host='docker'"
    assert "ssh://ops@10.0.0.5, local://" in remedy and "`host` param" in remedy


@pytest.mark.parametrize("module", ["functional/test_functional_host.py", "footprint/test_footprint.py",
                                    "security/test_security_hosts.py"])
def test_host_checks_leave_a_site_without_hosts_not_measured(module):
    checks = [f for name, f in vars(_suite(module)).items() if name.startswith("test_")]
    assert checks
    for check in checks:
        with pytest.raises(NotMeasured) as got:
            check(FakeEdge(STORE))
        assert got.value.remedy.startswith("give site store-1 a testinfra host"), check.__name__


def test_a_wan_probe_is_not_applicable_to_central_and_not_measured_elsewhere():
    latency = _suite("latency/test_latency.py")
    with pytest.raises(NotApplicable, match="central site: it has no WAN to central"):
        latency.test_wan(FakeEdge(CENTRAL), {}, None)
    with pytest.raises(NotMeasured) as got:
        latency.test_wan(FakeEdge(STORE, [CENTRAL, STORE]), {}, None)
    assert _message(got.value) == ("not measured: site declares no wan endpoint (central as the site sees it); "
                                   "to measure it: declare a `wan` endpoint for site store-1 in the target "
                                   "file: central's address as the site reaches it, through its WAN")


def test_a_management_endpoint_the_target_does_not_declare_is_not_measured():
    web = _suite("security/test_security_web.py")
    with pytest.raises(NotMeasured) as got:
        web._declared(FakeEdge(STORE), "mgmt")
    assert got.value.reason == "site declares no mgmt endpoint"
    assert got.value.remedy == "declare a `mgmt` endpoint for site store-1 in the target file"


def test_what_leaves_a_site_needs_its_uplink():
    data = _suite("data/test_data.py")
    with pytest.raises(NotApplicable, match="central site: no uplink"):
        data._central(FakeEdge(CENTRAL), 1.0)
    with pytest.raises(NotMeasured) as got:
        data._central(FakeEdge(LOOSE_STORE), 1.0)
    assert got.value.remedy == "name the central site of store-9 as its `uplink` in the target file"
    assert data._central(FakeEdge(STORE, [CENTRAL, STORE]), 1.0).base == "http://127.0.0.1:1"


def test_a_fleet_check_on_a_central_site_without_a_fleet_is_not_measured_elsewhere_not_applicable():
    fleet = _suite("fleet/test_fleet.py")
    with pytest.raises(NotMeasured) as got:  # central manages sites; the target does not say which
        fleet._no_fleet(FakeEdge(CENTRAL, [CENTRAL, LOOSE_STORE]), "fleet.registry")
    assert "`uplink` of its sites" in got.value.remedy and "`sites` param" in got.value.remedy
    with pytest.raises(NotApplicable, match="runs on a central site"):  # a store manages no fleet
        fleet._no_fleet(FakeEdge(STORE, [CENTRAL, STORE]), "fleet.config_push")
    assert [s.name for s in fleet._fleet(FakeEdge(CENTRAL, [CENTRAL, STORE]))] == ["store-1"]


def test_no_suite_skips_any_more():
    """Every way a check can end without measuring goes through not_measured or not_applicable."""
    import ast

    for path in sorted(suites_dir().rglob("*.py")):
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr == "skip"]
        assert not calls, f"{path}: line {calls[0].lineno} still skips"

