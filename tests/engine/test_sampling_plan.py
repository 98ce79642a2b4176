"""A sampled quorum requirement in the plan (engine/plan.py), shards, merge and --rerun-failed: only the
deterministic sample gets a case; the other sites are planned not-run, `sampled: false`, with the reason,
the same in every shard."""

from __future__ import annotations

import copy

import pytest
import yaml

from conformance.engine import plan as P
from conformance.engine import rerun
from conformance.engine.record import RunRecord
from conformance.engine.shard import merge_shards
from conformance.model import results as R
from conformance.model import sampling as S
from conformance.model.profile import load_profile
from conformance.model.target import load_target

STORES = [f"store-{i:02d}" for i in range(1, 13)]
SITES = [{"name": "central", "role": "central", "endpoints": {"api": "http://127.0.0.1:9"}}] + [
    {"name": name, "role": "edge", "uplink": "central", "endpoints": {"api": "http://127.0.0.1:9"}}
    for name in STORES]
SAMPLED = {"id": "SMP-01", "title": "stores up", "level": "must", "check": "custom.thing", "expect": "value <= 3",
           "applies_to": ["edge"], "sites": "50%", "sample": "50%"}


@pytest.fixture
def inputs(tmp_path):
    def make(*requirements, sites=SITES):
        (tmp_path / "p.yaml").write_text(yaml.safe_dump({"id": "mine", "version": "1", "title": "Mine",
                                                         "requirements": list(requirements)}))
        (tmp_path / "t.yaml").write_text(yaml.safe_dump({"name": "lab", "sites": sites}))
        return [load_profile(str(tmp_path / "p.yaml"))], load_target(tmp_path / "t.yaml")

    return make


def _plan(profiles, target, **selection):
    return P.make_plan(profiles, target, P.run_scope(P.Selection(**selection), target, str(target.path)))


def test_only_the_sample_is_measured(inputs):
    profiles, target = inputs(SAMPLED)
    plan = _plan(profiles, target)
    chosen = set(S.sample_of("SMP-01", S.Sampling(share=0.5), STORES))
    assert len(chosen) == 6
    assert {c.site.name for c in plan.cases_for("custom.thing")} == chosen
    members = [e for e in plan.entries if e["site"] != R.FLEET_SITE]
    assert [e["site"] for e in members] == STORES  # every site planned, in the target's order
    for e in members:
        assert e["fleet_member"] is True and e["sampled"] is (e["site"] in chosen)
        assert e["status"] == "not-run"
        if e["site"] not in chosen:
            assert e["ended"] == {"how": "not-run", "reason": "not in the sample: 6 of 12 sites (sample: 50 %)"}
            assert e["message"] == f"SMP-01@{e['site']}: not in the sample: 6 of 12 sites (sample: 50 %)"
            assert R.is_unsampled(e)
    fleet = plan.entries[-1]
    assert fleet["site"] == R.FLEET_SITE and fleet["sampling"]["population"] == 12
    assert fleet["sampling"]["sample"] == 6 and fleet["sampling"]["size"] == "50%"
    assert fleet["expect"] == ("sites_passing >= 50 % (each site: value <= 3; sampled: 50 % of the sites, judged at "
                               "95 % confidence)")


def test_options_do_not_move_the_sample(inputs):
    profiles, target = inputs(SAMPLED)
    chosen = S.sample_of("SMP-01", S.Sampling(share=0.5), STORES)
    outside = next(s for s in STORES if s not in chosen)
    plan = _plan(profiles, target, sites=[chosen[0], outside])
    by_site = {e["site"]: e for e in plan.entries}
    assert [c.site.name for c in plan.cases_for("custom.thing")] == [chosen[0]]
    assert by_site[outside]["status"] == "not-run" and by_site[outside]["sampled"] is False
    assert by_site[chosen[1]]["status"] == "not-measured" and by_site[chosen[1]]["sampled"] is True
    assert "left out of this run" in by_site[chosen[1]]["ended"]["reason"]


def test_an_unsampled_requirement_is_planned_as_before(inputs):
    profiles, target = inputs({**{k: v for k, v in SAMPLED.items() if k != "sample"}})
    plan = _plan(profiles, target)
    assert len(plan.cases_for("custom.thing")) == 12
    assert not any("sampled" in e for e in plan.entries) and "sampling" not in plan.entries[-1]
    assert plan.entries[-1]["expect"] == "sites_passing >= 50 % (each site: value <= 3)"


def _run(tmp_path, name, plan, statuses: dict[str, str], scope=None) -> dict:
    rec = RunRecord(tmp_path / f"{name}.json", name, [{"id": "mine"}], {"sites": SITES}, {"strict": False})
    rec.data["scope"] = scope or {}
    for e in plan.entries:
        rec.plan(copy.deepcopy(e))
    for case in [c for cases in plan.cases.values() for c in cases]:
        status = statuses.get(case.site.name, "pass")
        rec.update("mine", case.requirement.id, case.site.name, status=status,
                   ended={"how": "measured"}, measured={"value": {"value": 1 if status == "pass" else 9, "unit": ""}})
    rec.finish("finished")
    return rec.data


def test_shards_plan_the_same_sample_and_merge_into_one_verdict(inputs, tmp_path):
    profiles, target = inputs(SAMPLED)
    chosen = S.sample_of("SMP-01", S.Sampling(share=0.5), STORES)
    failing = {chosen[0]: "fail", chosen[1]: "fail"}
    shards = []
    for k in (1, 2, 3):
        scope = P.run_scope(P.Selection(shard=(k, 3)), target, str(target.path))
        plan = P.make_plan(profiles, target, scope)
        flags = {e["site"]: e.get("sampled") for e in plan.entries if e["site"] in STORES}
        assert flags == {s: s in chosen for s in STORES}
        shards.append((f"shard-{k}", _run(tmp_path, f"shard-{k}", plan, failing, scope)))
    merged = merge_shards(shards, "merged")
    serial = _run(tmp_path, "serial", _plan(profiles, target), failing)
    fleet = next(e for e in merged["requirements"] if e["site"] == R.FLEET_SITE)
    want = next(e for e in serial["requirements"] if e["site"] == R.FLEET_SITE)
    assert fleet["sampling"] == want["sampling"] and fleet["status"] == want["status"] == "inconclusive"
    assert fleet["sampling"]["passed"] == 4 and fleet["sampling"]["failed"] == 2
    assert [e["status"] for e in merged["requirements"]] == [e["status"] for e in serial["requirements"]]


def test_rerun_failed_leaves_the_sites_outside_the_sample_alone(inputs, tmp_path):
    profiles, target = inputs(SAMPLED)
    chosen = S.sample_of("SMP-01", S.Sampling(share=0.5), STORES)
    results = _run(tmp_path, "first", _plan(profiles, target), {chosen[2]: "fail"})
    assert rerun.select(results) == [f"SMP-01@{chosen[2]}"]
