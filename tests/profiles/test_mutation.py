"""Mutation coverage of the shipped profiles, end to end.

Every shipped profile runs on its reference emulated topology (`edge-conformance run --profile P --target
emulated:T`) and each of its must requirements passes there; then every must runs against a deployment
with the defect that should break it (tests/profiles/mutations.py) and fails, on the metric the defect
breaks. Runs are grouped (tests/profiles/campaign.py): one healthy run per topology with the musts of
every profile that uses it, and a few defect runs per topology, each requirement narrowed to the site that
carries its defect. They are started together, a few at a time, when the first test needs them.

The table requirement -> healthy -> defect -> caught is printed by test_mutation_table and written to the
file named by EDGE_MUTATION_TABLE (docs/profiles.md holds a copy):

    EDGE_MUTATION_TABLE=mutation-table.md python -m pytest -m mutation tests/profiles/test_mutation.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .campaign import Campaign, judge_healthy, judge_placement, plan_campaign, table

# Minutes of emulated runs: run by hand (see the docstring), not in the default test run.
pytestmark = [pytest.mark.slow, pytest.mark.mutation]

PLAN = plan_campaign()
PROFILES = {p.id: p for p in PLAN.profiles}
HEALTHY = [n for n, r in PLAN.runs.items() if r.healthy]
DEFECTS = [n for n, r in PLAN.runs.items() if not r.healthy]


@pytest.fixture(scope="module")
def campaign(request, tmp_path_factory):
    mine = [i for i in request.session.items if i.module is request.module]
    wanted: set[str] | None = {i.callspec.params["name"] for i in mine if hasattr(i, "callspec")}
    if any(i.name == "test_mutation_table" for i in mine):
        wanted = None  # the table needs every run
    c = Campaign(PLAN, tmp_path_factory.mktemp("mutation"), wanted)
    yield c
    c.close()


def _requirement(profile: str, rid: str):
    return PROFILES[profile].requirement(rid)


@pytest.mark.parametrize("name", HEALTHY)
def test_every_must_passes_on_its_reference_topology(campaign, name):
    run = campaign.get(name)
    assert run.results, f"{name}: no results.json (exit {run.code}):\n{run.output[-3000:]}"
    verdicts = judge_healthy(run, PROFILES)
    bad = [f"{v.profile} {v.requirement}: {v.text}" for v in verdicts if not v.ok]
    assert not bad, f"{name} ({run.seconds:.0f} s):\n" + "\n".join(bad)
    # a run narrowed with --site is partial: at best incomplete (3), and a full one conformant (0)
    narrowed = bool((run.results.get("scope") or {}).get("narrowed_by"))
    assert run.code == (3 if narrowed else 0), run.output[-3000:]


@pytest.mark.parametrize("name", DEFECTS)
def test_every_must_fails_on_its_defect(campaign, name):
    run = campaign.get(name)
    assert run.results, f"{name}: no results.json (exit {run.code}):\n{run.output[-3000:]}"
    placements = [pl for pl in PLAN.placements if pl.run == name]
    assert placements
    verdicts = [judge_placement(run, pl, _requirement(pl.profile, pl.requirement)) for pl in placements]
    bad = [f"{pl.profile} {pl.requirement} on {pl.site} with {pl.mutation.defect}: {v.text}"
           for pl, v in zip(placements, verdicts) if not v.ok]
    assert not bad, f"{name} ({run.seconds:.0f} s, defects {run.spec.defects}):\n" + "\n".join(bad)
    assert run.code == 1, run.output[-3000:]


def test_mutation_table(campaign, capsys):
    healthy, caught, seconds = {}, {}, {}
    for name, spec in PLAN.runs.items():
        run = campaign.get(name)
        seconds[name] = run.seconds
        if spec.healthy:
            for v in judge_healthy(run, PROFILES):
                healthy[f"{v.profile}/{v.requirement}"] = v
    for pl in PLAN.placements:
        run = campaign.get(pl.run)
        caught[(pl.profile, pl.requirement, pl.mutation.defect)] = judge_placement(
            run, pl, _requirement(pl.profile, pl.requirement))
    text = table(PLAN, healthy, caught, seconds)
    target = os.environ.get("EDGE_MUTATION_TABLE")
    if target:
        Path(target).write_text(text, encoding="utf-8")
    with capsys.disabled():
        print("\n" + text)
    missed = [k for k, v in caught.items() if not v.ok]
    failed = [k for k, v in healthy.items() if not v.ok]
    assert not missed and not failed, f"not caught: {missed}; failing when healthy: {failed}"
