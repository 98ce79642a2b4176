"""model.recompute: the plugin's verdict rules, applied again to recorded results."""

from __future__ import annotations

import datetime as dt
import json

from conformance.model import recompute as RC
from conformance.model import verdict as V
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
    assert {"pass", "fail", "not-measured"} <= statuses and fleets == 1


def test_decide_builds_the_plugins_messages(run_dir):
    results, reqs = _run(run_dir)
    for e in results["requirements"]:
        if not RC.is_fleet_entry(e):
            d = RC.decide_entry(e, reqs[e["id"]], [])
            assert (d.status, d.message, d.advisory) == (e["status"], e["message"], e["advisory"]), e["id"]


def test_waived_message(run_dir):
    _, reqs = _run(run_dir)
    w = Waiver(**{**WAIVER, "expires": dt.date(2030, 1, 31)}, origin="w.yaml:2")
    d = V.decide(reqs["CERT-BAD"], "store-1", measured={"status": (404.0, "")}, waivers=[w])
    assert d.status == "waived" and d.waiver == w.to_dict()
    assert d.message == "CERT-BAD store-1: status = 404, expected == 200 [waived until 2030-01-31: fix in 4.2 (jane@example.com)]"


def _entry(run_dir, rid, **changes):
    results, reqs = _run(run_dir)
    e = next(r for r in results["requirements"] if r["id"] == rid)
    e.update(changes)
    return e, reqs[rid]


def test_waivers_are_checked(run_dir):
    e, req = _entry(run_dir, "CERT-BAD")
    d = RC.decide_entry(e, req, [WAIVER])
    waived = dict(e, status="waived", message=d.message, waiver=WAIVER, advisory=False)
    assert RC.check_entry(waived, req, waivers=[WAIVER], on=RUN_DAY) == []
    assert RC.check_entry(waived, req, waivers=None, on=RUN_DAY) == []  # the waivers file is not known
    late = dt.date(2030, 2, 2)
    assert any("expired on 2030-01-31" in p for p in RC.check_entry(waived, req, waivers=[WAIVER], on=late))
    # within a day of the expiry the plugin may have used another local date: accepted
    assert RC.check_entry(waived, req, waivers=[WAIVER], on=(dt.date(2030, 1, 30), dt.date(2030, 2, 1))) == []
    # a failure an active waiver covers should have been waived
    assert any("covers it" in p for p in RC.check_entry(e, req, waivers=[WAIVER], on=RUN_DAY))


def test_advisory_flag_and_every_status_is_recomputed(run_dir):
    e, req = _entry(run_dir, "CERT-SHOULD")
    assert e["status"] == "fail" and e["advisory"] is True
    assert any("advisory = false" in p for p in RC.check_entry(dict(e, advisory=False), req, on=RUN_DAY))
    # an error is an error because the check recorded that it could not measure, not because it says so
    assert any("results say error, measured status = 404 gives fail" in p for p in
               RC.check_entry(dict(e, status="error", message="CERT-SHOULD store-1: could not measure: boom"),
                              req, on=RUN_DAY))
    error = dict(e, status="error", ended={"how": "error", "reason": "could not measure: boom"},
                 message=f"CERT-SHOULD store-1: could not measure: boom ({'; '.join(e['notes'])})")
    assert RC.check_entry(error, req, on=RUN_DAY) == []
    # a fail by the check's own assertion is recorded as such
    ok, req_ok = _entry(run_dir, "BASE-FUN-01")
    asserted = dict(ok, status="fail", ended={"how": "assertion", "reason": "custom assertion"}, notes=[],
                    message="BASE-FUN-01 store-1: custom assertion")
    assert RC.check_entry(asserted, req_ok, on=RUN_DAY) == []
    # ... but a pass turned into a fail is caught
    assert any("results say fail" in p for p in RC.check_entry(dict(ok, status="fail"), req_ok, on=RUN_DAY))


def test_inconclusive_and_not_measured_are_recomputed(run_dir):
    ok, req = _entry(run_dir, "BASE-FUN-01")
    # evidence that the measurement was invalid: a pass there is caught
    invalid = dict(ok, validity=[{"kind": "invalid", "reason": "prober fell behind"}])
    assert any("results say pass, what it recorded gives inconclusive" in p
               for p in RC.check_entry(invalid, req, on=RUN_DAY))
    d = RC.decide_entry(invalid, req)
    assert RC.check_entry(dict(invalid, status="inconclusive", message=d.message), req, on=RUN_DAY) == []
    # an inconclusive with no evidence for it is caught
    assert any("results say inconclusive" in p for p in
               RC.check_entry(dict(ok, status="inconclusive", message=d.message), req, on=RUN_DAY))
    # a not-measured result turned into a pass is caught
    unmeasured = dict(ok, measured={}, ended={"how": "not-measured", "reason": "site has no hosts"})
    assert any("results say pass, what it recorded gives not-measured" in p
               for p in RC.check_entry(unmeasured, req, on=RUN_DAY))


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
