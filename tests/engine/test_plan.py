"""engine/plan.py without pytest's machinery: which cases a run measures, which its options leave out,
requirements no site can take, quorum entries, the scope, and what a check nobody collected ends as."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from conformance.engine import plan as P
from conformance.model.errors import ConfigError
from conformance.model.profile import load_profile
from conformance.model.target import load_target
from conformance.model.waivers import Waiver

SITES = [
    {"name": "central", "role": "central", "endpoints": {"api": "http://127.0.0.1:9"}},
    {"name": "store-1", "role": "edge", "uplink": "central", "endpoints": {"api": "http://127.0.0.1:9"}},
    {"name": "store-2", "role": "edge", "uplink": "central", "endpoints": {"api": "http://127.0.0.1:9"}},
]


def _req(rid, applies_to=("edge",), check="custom.thing", **extra):
    r = {"id": rid, "title": f"{rid} title", "level": "must", "check": check, "expect": "value <= 3"}
    if applies_to:  # none: every site
        r["applies_to"] = list(applies_to)
    r.update(extra)
    return r


@pytest.fixture
def inputs(tmp_path):
    def make(*requirements, sites=SITES):
        (tmp_path / "p.yaml").write_text(yaml.safe_dump({"id": "mine", "version": "1", "title": "Mine",
                                                         "requirements": list(requirements)}))
        (tmp_path / "t.yaml").write_text(yaml.safe_dump({"name": "lab", "sites": sites}))
        return [load_profile(str(tmp_path / "p.yaml"))], load_target(tmp_path / "t.yaml")

    return make


def _scope(target, **selection):
    return P.run_scope(P.Selection(**selection), target, str(target.path))


def _statuses(plan):
    return {f"{e['id']}@{e['site']}": e["status"] for e in plan.entries}


def test_every_case_is_planned_not_run_in_profile_order(inputs):
    profiles, target = inputs(_req("R-1"), _req("R-2", applies_to=("central",)))
    plan = P.make_plan(profiles, target, _scope(target))
    assert list(_statuses(plan).items()) == [("R-1@store-1", "not-run"), ("R-1@store-2", "not-run"),
                                              ("R-2@central", "not-run")]
    assert [c.id for c in plan.cases_for("custom.thing")] == ["R-1@store-1", "R-1@store-2", "R-2@central"]
    assert plan.cases_for("custom.other") == []


def test_cases_the_options_leave_out_are_not_measured_and_not_run(inputs):
    profiles, target = inputs(_req("R-1"), _req("R-2"))
    scope = _scope(target, sites=["store-1"], requirements=["R-1"])
    plan = P.make_plan(profiles, target, scope)
    assert _statuses(plan) == {"R-1@store-1": "not-run", "R-1@store-2": "not-measured",
                               "R-2@store-1": "not-measured", "R-2@store-2": "not-measured"}
    assert [c.id for c in plan.cases_for("custom.thing")] == ["R-1@store-1"]
    left = {f"{e['id']}@{e['site']}": e["ended"] for e in plan.entries if e["status"] == "not-measured"}
    assert left["R-2@store-1"] == {"how": "not-measured", "reason": "left out of this run (--edge-requirement R-1)",
                                   "remedy": "run it without --edge-requirement"}
    assert left["R-1@store-2"]["reason"] == "left out of this run (--edge-site store-1)"
    assert scope["narrowed_by"] == ["--edge-requirement R-1", "--edge-site store-1"] and scope["full"] is False


def test_option_names_follow_the_command_that_started_the_run(inputs):
    profiles, target = inputs(_req("R-1"))
    plan = P.make_plan(profiles, target, _scope(target, sites=["store-2"], cli=True))
    assert plan.entries[0]["ended"]["reason"] == "left out of this run (--site store-2)"


def test_only_runs_the_named_cases(inputs):
    profiles, target = inputs(_req("R-1"))
    plan = P.make_plan(profiles, target, _scope(target, only=["R-1@store-2"]))
    assert _statuses(plan) == {"R-1@store-1": "not-measured", "R-1@store-2": "not-run"}
    with pytest.raises(ConfigError, match="--edge-only: no requirement@site R-1@central"):
        P.make_plan(profiles, target, _scope(target, only=["R-1@central"]))


def test_an_unknown_requirement_filter_is_refused(inputs):
    profiles, target = inputs(_req("R-1"))
    with pytest.raises(ConfigError, match='--edge-requirement: no requirement "R-2" in mine'):
        P.make_plan(profiles, target, _scope(target, requirements=["R-2"]))


def test_a_requirement_no_site_can_take_is_not_measured_at_no_site(inputs):
    profiles, target = inputs(_req("R-1", applies_to=("gateway",)))
    plan = P.make_plan(profiles, target, _scope(target))
    (e,) = plan.entries
    assert (e["site"], e["role"], e["status"]) == (P.NO_SITE, "gateway", "not-measured")
    assert e["ended"]["remedy"] == "add a gateway site to the target"
    assert plan.cases == {}


def test_a_quorum_requirement_has_members_and_a_fleet_entry(inputs):
    profiles, target = inputs(_req("R-1", sites="50%"))
    plan = P.make_plan(profiles, target, _scope(target))
    assert [(e["site"], e.get("fleet_member", False)) for e in plan.entries] == \
        [("store-1", True), ("store-2", True), ("fleet", False)]
    assert plan.entries[-1]["quorum"] == 0.5
    assert plan.entries[-1]["expect"] == "sites_passing >= 50 % (each site: value <= 3)"


def test_scope_records_what_changed_the_run(inputs):
    _, target = inputs(_req("R-1"))
    scope = _scope(target, strict=True, waivers="w.yaml", allow_faults=True, defects=["store-1:slow-path"])
    assert scope["changed_by"] == ["--defect store-1:slow-path", "--strict", "--waivers w.yaml", "--allow-faults"]
    assert scope["full"] is True and scope["narrowed_by"] == [] and scope["emulated"] is False
    assert P.record_options(scope, "t.yaml")["target"] == "t.yaml"


def test_narrowing_by_pytest_is_said_once(inputs):
    _, target = inputs(_req("R-1"))
    scope = _scope(target, keyword="http", deselect=["x.py::t"])
    why = P.narrowed_by_pytest(scope)
    assert why == "-k http, --deselect x.py::t"
    assert P.narrow(scope, why) is True and P.narrow(scope, why) is False
    assert scope["narrowed_by"] == [why] and scope["full"] is False
    assert P.narrowed_by_pytest(_scope(target)) == "deselected by a pytest plugin"


def test_a_check_nobody_collected(inputs):
    _, target = inputs(_req("R-1"))
    ended, why = P.not_collected("custom.thing", _scope(target), [], set())
    assert (ended.how, why) == ("not-measured", None) and "no collected test implements" in ended.reason
    ended, why = P.not_collected("functional.http", _scope(target, suites=["latency"]), [], set())
    assert ended.reason == "suite functional left out of this run (--edge-suite latency)"
    assert why == "--edge-suite latency"
    ended, _ = P.not_collected("functional.http", _scope(target), [("/x/functional/test_a.py", "ImportError: y")],
                               set())
    assert ended.how == "error" and "could not be collected: ImportError: y" in ended.reason


def test_unmatched_waivers_are_named(inputs):
    profiles, target = inputs(_req("R-1"))
    day = dt.date(2099, 1, 1)
    good = Waiver("R-1", "store-1", "r", "me", day, "w.yaml:2")
    typo = Waiver("R-9", "all", "r", "me", day, "w.yaml:8")
    nowhere = Waiver("R-1", "store-9", "r", "me", day, "w.yaml:14")
    found = P.unmatched_waivers(profiles, target, [good, typo, nowhere])
    assert [(w.id, w.site) for w, _ in found] == [("R-9", "all"), ("R-1", "store-9")]
    assert found[0][1].startswith('no requirement "R-9" in mine')
    assert found[1][1].startswith('no site "store-9" in target lab')


def test_planned_keys_are_what_make_plan_plans(inputs):
    """verify checks a run's results against planned_keys: the same entries, whatever the options."""
    profiles, target = inputs(_req("R-1", sites="50%"), _req("R-2", applies_to=("gateway",)),
                              _req("R-3", applies_to=()))
    plan = P.make_plan(profiles, target, _scope(target, sites=["store-1"]))
    assert P.planned_keys(profiles, target.sites) == [(e["profile"], e["id"], e["site"]) for e in plan.entries]
    assert ("mine", "R-2", P.NO_SITE) in P.planned_keys(profiles, target.sites)
