"""model.recompute: the plugin's verdict rules, applied again to recorded results."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

from conformance import pytest_plugin as plugin
from conformance.model import recompute as RC
from conformance.model.profile import load_profile
from conformance.model.waivers import Waiver

WAIVER = {"id": "CERT-BAD", "site": "store-1", "reason": "fix in 4.2", "who": "jane@example.com",
          "expires": "2030-01-31"}
RUN_DAY = dt.date(2026, 11, 27)


def _run(run_dir):
    results = json.loads((run_dir / "out" / "results.json").read_text())
    profile = load_profile(str(run_dir / "certify.yaml"))
    return results, {r.id: r for r in profile.requirements}


def test_every_result_of_a_real_run_is_consistent(run_dir):
    results, reqs = _run(run_dir)
    statuses = set()
    fleets = 0
    for e in results["requirements"]:
        if RC.is_fleet_entry(e):
            fleets += 1
            assert RC.check_fleet_entry(e, reqs[e["id"]], results["requirements"]) == []
            continue
        assert RC.check_entry(e, reqs[e["id"]], waivers=[], on=RUN_DAY) == [], e["id"]
        statuses.add(e["status"])
    assert {"pass", "fail", "skip"} <= statuses and fleets == 1


def test_decide_builds_the_plugins_messages(run_dir):
    results, reqs = _run(run_dir)
    for e in results["requirements"]:
        if e["status"] in ("pass", "fail") and not RC.is_fleet_entry(e):
            d = RC.decide(reqs[e["id"]], e["site"], RC.measured_of(e), e["notes"])
            assert (d.status, d.message, d.advisory) == (e["status"], e["message"], e["advisory"])


def test_waived_message_is_the_plugins(run_dir):
    _, reqs = _run(run_dir)
    req = reqs["CERT-BAD"]
    w = Waiver(**{**WAIVER, "expires": dt.date(2030, 1, 31)}, origin="w.yaml:2")
    case = SimpleNamespace(requirement=req, site=SimpleNamespace(name="store-1"))
    message = "CERT-BAD store-1: status = 404, expected == 200"
    theirs = plugin._maybe_waive(plugin.Verdict("fail", message), case, SimpleNamespace(waivers=[w]))
    ours = RC.decide(req, "store-1", {"status": (404.0, "")}, [], [w])
    assert (ours.status, ours.message, ours.waiver) == (theirs.status, theirs.message, theirs.waiver)


def _entry(run_dir, rid, **changes):
    results, reqs = _run(run_dir)
    e = next(r for r in results["requirements"] if r["id"] == rid)
    e.update(changes)
    return e, reqs[rid]


def test_waivers_are_checked(run_dir):
    e, req = _entry(run_dir, "CERT-BAD")
    d = RC.decide(req, "store-1", RC.measured_of(e), e["notes"], [WAIVER])
    waived = dict(e, status="waived", message=d.message, waiver=WAIVER, advisory=False)
    assert RC.check_entry(waived, req, waivers=[WAIVER], on=RUN_DAY) == []
    assert RC.check_entry(waived, req, waivers=None, on=RUN_DAY) == []  # the waivers file is not known
    late = dt.date(2030, 2, 2)
    assert any("expired on 2030-01-31" in p for p in RC.check_entry(waived, req, waivers=[WAIVER], on=late))
    # within a day of the expiry the plugin may have used another local date: accepted
    assert RC.check_entry(waived, req, waivers=[WAIVER], on=(dt.date(2030, 1, 30), dt.date(2030, 2, 1))) == []
    # a failure an active waiver covers should have been waived
    assert any("covers it" in p for p in RC.check_entry(e, req, waivers=[WAIVER], on=RUN_DAY))


def test_advisory_flag_and_statuses_taken_as_recorded(run_dir):
    e, req = _entry(run_dir, "CERT-SHOULD")
    assert e["status"] == "fail" and e["advisory"] is True
    assert any("advisory = false" in p for p in RC.check_entry(dict(e, advisory=False), req, on=RUN_DAY))
    # an exception after recording makes an error whatever the values say
    assert RC.check_entry(dict(e, status="error", message="CERT-SHOULD store-1: could not measure: boom"),
                          req, on=RUN_DAY) == []
    # a fail by the check's own assertion, with values that pass, is accepted ...
    ok, req_ok = _entry(run_dir, "BASE-FUN-01")
    asserted = dict(ok, status="fail", message="BASE-FUN-01 store-1: custom assertion")
    assert RC.check_entry(asserted, req_ok, on=RUN_DAY) == []
    # ... but not a pass turned into a fail with the pass message left in place
    assert any("results say fail" in p for p in RC.check_entry(dict(ok, status="fail"), req_ok, on=RUN_DAY))


def test_an_edited_number_in_a_failure_message_is_caught(run_dir):
    e, req = _entry(run_dir, "CERT-BAD")
    e["measured"]["status"]["value"] = 500.0
    problems = RC.check_entry(e, req, on=RUN_DAY)
    assert problems == ["CERT-BAD@store-1: the message says status = 404, the measured value is 500"]


def test_fleet_entry_is_recomputed_from_its_sites(run_dir):
    results, reqs = _run(run_dir)
    fleet = next(e for e in results["requirements"] if RC.is_fleet_entry(e))
    member = next(e for e in results["requirements"] if e["id"] == fleet["id"] and not RC.is_fleet_entry(e))
    assert member["fleet_member"] is True and fleet["status"] == "pass"
    member["status"] = "fail"
    problems = RC.check_fleet_entry(fleet, reqs[fleet["id"]], results["requirements"])
    assert problems == ["CERT-FLEET@fleet: results say pass, its sites give fail "
                        "(CERT-FLEET fleet: 0 of 1 sites pass (0 %), 1 fail; expected at least 100 %)"]
    RC.refresh_fleets(results["requirements"])
    assert fleet["status"] == "fail" and RC.check_fleet_entry(fleet, reqs[fleet["id"]], results["requirements"]) == []
