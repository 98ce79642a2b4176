"""The shipped profiles: one per white-paper scenario and use case, each requirement traceable to its
source, fleet checks on central, a quorum in use; `profiles explain` for the new profiles."""

from __future__ import annotations


import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.model import catalog
from conformance.model.profile import list_profiles, load_profile
from conformance.model.topology import list_topologies, load_topology

SHIPPED = {p.stem: load_profile(str(p)) for p in list_profiles()}

# OSF-2018's scenarios and use cases, and the OpenStack wiki's regional tier -> the profile for each.
SCENARIOS = {
    "scenario 1: retail/finance cloud in a box": "retail",
    "scenario 2: mobile connectivity": "mec",
    "scenario 3: network-as-a-service": "naas",
    "scenario 4: universal CPE": "ucpe",
    "scenario 5: satellite-enabled communication": "satcom",
    "use case 1: data collection and analytics": "iot",
    "use case 3: compliance requirements": "privacy",
    "use case 5: real-time (URLLC, industrial control)": "urllc",
    "use case 5: real-time (connected vehicles)": "v2x",
    "use case 6: immersive": "arvr",
    "use case 7: network efficiency": "video-analytics",
    "use case 8: self-contained and autonomous sites": "retail",
    "use case 9: privacy": "privacy",
    "scenario 1 and use case 6: content caching / CDN": "content-caching",
    "wiki reference architectures: regional control host": "regional",
}
NEW = ("naas", "urllc", "arvr", "v2x", "video-analytics", "content-caching", "regional", "privacy")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_white_paper_scenario_has_a_profile(scenario):
    assert SCENARIOS[scenario] in SHIPPED


@pytest.mark.parametrize("pid", NEW)
def test_new_profiles_extend_the_baseline_and_name_a_topology(pid):
    p = SHIPPED[pid]
    assert [c.id for c in p.chain[1:]] == ["edge-baseline"]
    assert p.topology in list_topologies(), p.topology
    topo = load_topology(p.topology)
    assert any(s.role == "central" for s in topo.sites) and any(s.role == "edge" for s in topo.sites)
    assert any(r.profile == pid and r.level == "must" for r in p.requirements)


@pytest.mark.parametrize("pid", sorted(SHIPPED))
def test_every_requirement_is_traceable(pid):
    for r in SHIPPED[pid].requirements:
        assert r.rationale, f"{pid} {r.id}: no rationale"
        assert r.cites, f"{pid} {r.id}: cites no source"
        assert r.basis.kind in ("source", "derived", "assumed"), f"{pid} {r.id}: basis {r.basis.kind}"
        assert r.basis.kind == "source" or r.basis.note, f"{pid} {r.id}: a {r.basis.kind} basis says nothing"


def test_fleet_checks_run_on_central_and_a_quorum_is_used():
    fleet = [(pid, r) for pid, p in SHIPPED.items() for r in p.requirements if catalog.suite_of(r.check) == "fleet"]
    assert fleet
    assert all(r.applies_to == ["central"] for _, r in fleet), [(pid, r.id) for pid, r in fleet]
    quorum = SHIPPED["naas"].requirement("NAAS-NODE-01")
    assert quorum.quorum == pytest.approx(0.95) and quorum.level == "must"


def test_new_checks_are_used_in_the_profiles_that_need_them():
    used = {(pid, r.check) for pid, p in SHIPPED.items() for r in p.requirements}
    assert ("video-analytics", "data.network_efficiency") in used and ("iot", "data.network_efficiency") in used
    assert ("privacy", "data.privacy") in used
    assert ("naas", "fleet.registry") in used and ("regional", "fleet.config_push") in used


@pytest.mark.parametrize("pid", NEW)
def test_explain_works_for_the_new_profiles(pid):
    runner = CliRunner()
    own = [r for r in SHIPPED[pid].requirements if r.profile == pid]
    result = runner.invoke(main, ["profiles", "explain", pid, own[0].id])
    assert result.exit_code == 0, result.output
    assert f"{own[0].id} ({pid} " in result.output and "basis:" in result.output
    # by id alone: searched in every shipped profile
    result = runner.invoke(main, ["profiles", "explain", own[-1].id])
    assert result.exit_code == 0, result.output
    assert own[-1].source_text[:40] in result.output


def test_checks_lists_the_new_checks():
    result = CliRunner().invoke(main, ["profiles", "checks"])
    assert result.exit_code == 0
    for name in ("data.network_efficiency", "data.privacy", "fleet.registry", "fleet.config_push"):
        assert f"{name}: " in result.output
