"""The mutation plan itself, without running anything: every must requirement of every shipped profile is
either placed on a run with the defect that should catch it, or a recorded gap with its reason."""

from __future__ import annotations

from collections import defaultdict

import yaml

from edge_workloads.defects import DEFECTS
from conformance.model import catalog
from conformance.model.profile import load_profile
from conformance.model.topology import load_topology

from .campaign import own_musts, plan_campaign, reference_topology
from .mutations import CHECK_MUTATIONS, EDGE, GAPS, PLANS, mutations_for

PLAN = plan_campaign()


def test_every_must_is_placed_or_a_recorded_gap():
    assert not PLAN.unplaced, "\n".join(PLAN.unplaced)
    placed = {(pl.profile, pl.requirement) for pl in PLAN.placements}
    for p in PLAN.profiles:
        for r in own_musts(p):
            key = (p.id, r.id)
            assert key in placed or key in PLAN.gaps, f"{p.id} {r.id} is neither placed nor a gap"
            if key in PLAN.gaps:
                assert PLAN.gaps[key] and "?" not in PLAN.gaps[key]


def test_every_requirement_of_a_mutated_check_is_placed_with_each_of_its_mutations():
    by_req = defaultdict(set)
    for pl in PLAN.placements:
        by_req[(pl.profile, pl.requirement)].add(pl.mutation.defect)
    for p in PLAN.profiles:
        for r in own_musts(p):
            wanted = {m.defect for m in mutations_for(r)}
            assert by_req.get((p.id, r.id), set()) == wanted, f"{p.id} {r.id}"


def test_the_defects_and_checks_named_exist():
    for check, muts in CHECK_MUTATIONS.items():
        assert catalog.get(check) is not None, check
        for m in muts:
            assert m.defect in DEFECTS, m.defect
            spec = catalog.get(check)
            assert m.metrics & set(spec.metrics) or m.defect == "slow-path", (check, m.defect)
    for check in GAPS:
        assert catalog.get(check) is not None, check
    for topology, plan in PLANS.items():
        topo = load_topology(topology)
        names = {s.name for s in topo.sites}
        for run in plan.runs:
            for site, defects in run.defects.items():
                assert site == EDGE or site in names, (topology, run.name, site)
                assert all(d in DEFECTS for d in defects), (run.name, defects)


def test_defects_of_one_family_never_share_a_site():
    families = {m.defect: m.family for muts in CHECK_MUTATIONS.values() for m in muts}
    for plan in PLANS.values():
        for run in plan.runs:
            for site, defects in run.defects.items():
                seen = [families.get(d) for d in defects if families.get(d)]
                assert len(seen) == len(set(seen)), (run.name, site, defects)


def test_every_shipped_profile_has_a_plan_for_its_topology():
    for p in PLAN.profiles:
        assert reference_topology(p) in PLANS, p.id


def test_no_must_of_a_shipped_profile_is_a_gap():
    assert PLAN.gaps == {}, PLAN.gaps


def test_gap_reasons_name_the_missing_emulator_feature(tmp_path):
    # a must the emulator's defects cannot break still shows up, with why: a loose latency bound
    profile = tmp_path / "loose.yaml"
    profile.write_text(yaml.safe_dump({"id": "loose", "version": "1", "title": "t", "requirements": [
        {"id": "L-1", "title": "t", "level": "must", "check": "latency.request", "expect": "p99 <= 500 ms"},
        {"id": "L-2", "title": "t", "level": "must", "check": "load.capacity",
         "params": {"max_rate": 100}, "expect": "max_rps >= 10 rps"}]}))
    loose = plan_campaign([load_profile(str(profile))])
    assert loose.gaps[("loose", "L-1")] == "p99: slow-path adds 25 ms, below the bound"
    assert loose.gaps[("loose", "L-2")].startswith("max_rps: ")


def test_certification_length_profiles_are_left_to_their_own_test():
    from .mutations import FULL_LENGTH

    assert FULL_LENGTH and not {p.id for p in PLAN.profiles} & set(FULL_LENGTH)
    for pid in FULL_LENGTH:
        p = load_profile(pid)
        long = [r for r in own_musts(p) if r.check == "resilience.long_outage"]
        assert long, pid
        for r in long:  # each long-outage must has a defect that breaks what it bounds
            assert mutations_for(r), f"{pid} {r.id}"
