"""Fleet quorum rules (`sites: 95%`): the aggregate decides, the per-site results feed it."""

from __future__ import annotations

import pytest

from conformance.model import results as R


def members(*statuses: str) -> list[dict]:
    return [{"status": s, "level": "must", "fleet_member": True} for s in statuses]


@pytest.mark.parametrize("statuses,quorum,expected", [
    (("pass",) * 19 + ("fail",), 0.95, "pass"),
    (("pass",) * 18 + ("fail",) * 2, 0.95, "fail"),
    (("pass", "pass", "not-applicable"), 1.0, "pass"),  # sites it does not apply to do not count
    (("pass", "pass", "skip"), 1.0, "pass"),            # nor do v1 skips
    (("pass", "not-run", "not-run"), 0.6, "not-run"),   # could still go either way
    (("pass", "error", "pass"), 1.0, "inconclusive"),
    (("fail", "error", "pass"), 0.6, "inconclusive"),   # the error could still tip it
    (("fail", "fail", "error"), 0.6, "fail"),           # two of three can no longer pass
    (("not-applicable", "not-applicable"), 0.5, "not-applicable"),
    (("pass", "not-measured", "not-measured"), 1.0, "not-measured"),  # say what to add, not "inconclusive"
    (("pass", "not-measured", "error"), 1.0, "inconclusive"),
    (("pass", "pass", "not-measured"), 0.6, "pass"),    # enough measured sites pass
])
def test_fleet_outcome(statuses, quorum, expected):
    assert R.fleet_outcome(members(*statuses), quorum)[0] == expected


def test_members_do_not_decide_the_run_verdict_the_fleet_entry_does():
    reqs = members("pass", "fail", "pass")
    fleet = {"status": "pass", "level": "must", "site": R.FLEET_SITE}
    assert R.run_verdict(reqs + [fleet]) == R.CONFORMANT
    fleet["status"] = "fail"
    assert R.run_verdict(reqs + [fleet]) == R.NON_CONFORMANT


def test_fleet_entry_in_a_real_run(tmp_path):
    """A quorum requirement over a fleet where one site fails: per-site fail, fleet pass at 60 %."""
    from conformance.engine.record import RunRecord

    rec = RunRecord(tmp_path / "results.json", "run", [], None, {"strict": False})
    for site in ("a", "b", "c"):
        rec.plan({"id": "Q-1", "profile": "p", "site": site, "level": "must", "status": "not-run",
                  "fleet_member": True})
    rec.plan({"id": "Q-1", "profile": "p", "site": R.FLEET_SITE, "level": "must", "status": "not-run",
              "quorum": 0.6})
    rec.update("p", "Q-1", "a", status="pass")
    rec.update("p", "Q-1", "b", status="fail")
    assert rec.data["requirements"][-1]["status"] == "not-run"
    rec.update("p", "Q-1", "c", status="pass")
    fleet = rec.data["requirements"][-1]
    assert fleet["status"] == "pass" and fleet["measured"]["sites_passing"]["value"] == pytest.approx(66.6667)
    assert "2 of 3 sites pass" in fleet["message"] and rec.data["verdict"] == R.CONFORMANT
