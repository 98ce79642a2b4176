"""`verify` on a sampled quorum requirement (model/recompute.py check_sample and check_fleet_entry, through
certify/verify.py check_results): a consistent record holds; a site claimed sampled that the rule does
not sample, a site hidden from the sample, a measurement outside it, an edited bound or status are each
named."""

from __future__ import annotations

import copy

import pytest
import yaml

from conformance.certify.verify import Verification, check_results
from conformance.engine import plan as P
from conformance.engine.record import RunRecord
from conformance.model import results as R
from conformance.model import sampling as S
from conformance.model.profile import load_profile
from conformance.model.target import load_target

STORES = [f"store-{i:02d}" for i in range(1, 13)]
SITES = [{"name": "central", "role": "central", "endpoints": {"api": "http://127.0.0.1:9"}}] + [
    {"name": name, "role": "edge", "uplink": "central", "endpoints": {"api": "http://127.0.0.1:9"}}
    for name in STORES]
REQUIREMENT = {"id": "SMP-01", "title": "stores up", "level": "must", "check": "custom.thing",
               "expect": "value <= 3", "applies_to": ["edge"], "sites": "50%", "sample": "50%"}
CHOSEN = S.sample_of("SMP-01", S.Sampling(share=0.5), STORES)
OUTSIDE = [s for s in STORES if s not in CHOSEN]


@pytest.fixture
def run(tmp_path):
    """A consistent record of a sampled run: two sampled stores fail (inconclusive fleet), and the
    profile it was run with."""
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"id": "mine", "version": "1", "title": "Mine",
                                                     "requirements": [REQUIREMENT]}))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"name": "lab", "sites": SITES}))
    profiles, target = [load_profile(str(tmp_path / "p.yaml"))], load_target(tmp_path / "t.yaml")
    scope = P.run_scope(P.Selection(), target, str(target.path))
    plan = P.make_plan(profiles, target, scope)
    rec = RunRecord(tmp_path / "results.json", "run", [p.summary() for p in profiles],
                    {"sites": [{"name": s["name"], "role": s["role"]} for s in SITES]}, {"strict": False})
    rec.data["scope"] = scope
    for e in plan.entries:
        rec.plan(e)
    for case in plan.cases_for("custom.thing"):
        value = 9 if case.site.name in CHOSEN[:2] else 1
        rec.update("mine", "SMP-01", case.site.name, status="fail" if value == 9 else "pass",
                   message=f"SMP-01 {case.site.name}: value = {value}" + (", expected <= 3" if value == 9 else
                                                                          " (expected <= 3)"),
                   ended={"how": "measured"}, measured={"value": {"value": value, "unit": ""}})
    rec.finish("finished")
    return rec.data, profiles


def _problems(results, profiles) -> list[str]:
    v = Verification(bundle="b")
    check_results(results, profiles, [], v, compare_messages=True)
    return v.problems


def _entry(results, site) -> dict:
    return next(e for e in results["requirements"] if e["site"] == site)


def test_a_consistent_sampled_record_holds(run):
    results, profiles = run
    fleet = _entry(results, R.FLEET_SITE)
    assert fleet["status"] == "inconclusive" and fleet["sampling"]["passed"] == 4
    assert _problems(results, profiles) == []


def test_a_site_claimed_sampled_that_the_rule_does_not_sample(run):
    results, profiles = run
    e = _entry(results, OUTSIDE[0])
    e.update(sampled=True)
    problems = _problems(results, profiles)
    assert f"SMP-01@{OUTSIDE[0]}: results say it was in the sample, but the sample is not that site (6 of 12 " \
           "sites, ranked by sha256 of requirement id and site name)" in problems


def test_a_failing_site_hidden_from_the_sample(run):
    """Taking a failing store out of the sample (and its failure with it) would make the fleet pass: the
    sample is the rule's, so it is named, and the fleet's status no longer follows from its sites."""
    results, profiles = run
    hidden = _entry(results, CHOSEN[0])
    hidden.update(sampled=False, status="not-run", measured={}, ended={"how": "not-run", "reason": "not in the "
                  "sample: 6 of 12 sites (sample: 50 %)"}, message=f"SMP-01@{CHOSEN[0]}: not in the sample: 6 of 12 "
                  "sites (sample: 50 %)")
    problems = _problems(results, profiles)
    assert f"SMP-01@{CHOSEN[0]}: results say it was not in the sample, but the sample takes it (6 of 12 sites, " \
           "ranked by sha256 of requirement id and site name)" in problems


def test_a_measurement_outside_the_sample(run):
    results, profiles = run
    e = _entry(results, OUTSIDE[1])
    e.update(status="pass", ended={"how": "measured"}, measured={"value": {"value": 1, "unit": ""}},
             message=f"SMP-01 {OUTSIDE[1]}: value = 1 (expected <= 3)")
    assert f"SMP-01@{OUTSIDE[1]}: results say it was not in the sample, yet record a result (status pass)" \
        in _problems(results, profiles)


@pytest.mark.parametrize("edit,expected", [
    (lambda f: f["sampling"].update(lower=0.95), "SMP-01@fleet: results say the lower bound is 0.95, its sites "
                                                 "give 0.271338 at 95 % confidence"),
    (lambda f: f["sampling"].update(upper=0.4), "SMP-01@fleet: results say the upper bound is 0.4, its sites give "
                                                "0.93715 at 95 % confidence"),
    (lambda f: f["sampling"].update(passed=6, failed=0), "SMP-01@fleet: results say sampling passed = 6, its "
                                                         "sites give 4"),
    (lambda f: f.update(status="pass"), "SMP-01@fleet: results say pass, its sites give inconclusive"),
    (lambda f: f["sampling"].update(confidence=0.8), "SMP-01@fleet: results say confidence 0.8, the profile "
                                                     "says 0.95"),
    (lambda f: f["sampling"].update(size=3), "SMP-01@fleet: results say sample 3, the profile says '50%'"),
    (lambda f: f.pop("sampling"), "SMP-01@fleet: the profile samples SMP-01 (sample: 50 %), but results have no "
                                  "sampling record"),
])
def test_an_edited_fleet_entry(run, edit, expected):
    results, profiles = run
    edit(_entry(results, R.FLEET_SITE))
    problems = _problems(results, profiles)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_sample_the_profile_does_not_take(run, tmp_path):
    """A record of a sampled run checked against a profile without the sample (or the reverse)."""
    results, _ = run
    unsampled = {k: v for k, v in REQUIREMENT.items() if k != "sample"}
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"id": "mine", "version": "1", "title": "Mine",
                                                     "requirements": [unsampled]}))
    problems = _problems(copy.deepcopy(results), [load_profile(str(tmp_path / "q.yaml"))])
    assert "SMP-01@fleet: results say it was judged on a sample, but the profile gives SMP-01 no sample" in problems
    assert f"SMP-01@{OUTSIDE[0]}: results say sampled = false, but the profile gives SMP-01 no sample" in problems
