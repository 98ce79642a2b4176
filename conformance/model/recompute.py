"""Recompute a verdict from results.json: the audit side of model/verdict.py.

Every entry of results.json carries what its status was decided from: the measured values, how the
check ended (`ended`), the validity evidence (`validity`) and the notes. `check_entry` decides the
status again with the same rule (verdict.decide) and says, in one line each, what does not hold:

    BASE-FUN-01@store-1: results say pass, measured status = 503 gives fail

Every status is recomputed, inconclusive, not-measured and not-run included. Pure: no I/O, no pytest.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from . import expect as E
from . import results as R
from . import verdict as V
from .verdict import Decision, notes_suffix, waived_message  # noqa: F401 - re-exported for callers


def measured_of(entry: dict) -> dict[str, tuple[float, str]]:
    """results.json `measured` ({metric: {value, unit}}) as E.evaluate wants it."""
    out = {}
    for metric, m in (entry.get("measured") or {}).items():
        if isinstance(m, dict) and isinstance(m.get("value"), (int, float)) and not isinstance(m.get("value"), bool):
            out[metric] = (float(m["value"]), str(m.get("unit") or ""))
    return out


def decide_entry(entry: dict, requirement: Any, waivers: list | None = None) -> Decision:
    """The status the rules give a results.json entry, from what it recorded."""
    return V.decide(requirement, str(entry.get("site")), measured=measured_of(entry), notes=entry.get("notes") or [],
                    ended=entry.get("ended"), validity=entry.get("validity") or [], waivers=waivers)


def _waiver_dict(w: Any) -> dict:
    if isinstance(w, dict):
        return w
    return w.to_dict()


def waiver_active(waiver: dict, on: dt.date) -> bool:
    try:
        expires = dt.date.fromisoformat(str(waiver.get("expires")))
    except ValueError:
        return False
    return on < expires


def check_entry(entry: dict, requirement: Any, *, waivers: list | None = None,
                on: dt.date | tuple[dt.date, dt.date] | None = None, compare_messages: bool = True) -> list[str]:
    """What does not hold between a results.json entry and the rules; [] when it is consistent.

    `waivers`: the waivers the run had (all of them; the ones active `on` the run's date are applied),
    or None when they are not known (then a waived entry's own waiver is checked). `on`: the run's
    date, or (earliest, latest) when only known within a range (a UTC timestamp, but the plugin
    compares expiry dates with the local date): a waiver is then taken as applicable if it was active on
    some day of the range, and as one that should have applied only if it was active on all of them.
    `compare_messages`: also require the message to be the one the rules write (off across harness
    versions, whose wording may differ).
    """
    key = f"{entry.get('id')}@{entry.get('site')}"
    site = str(entry.get("site"))
    status = entry.get("status")
    problems: list[str] = []

    def problem(text: str) -> None:
        problems.append(f"{key}: {text}")

    if entry.get("level") != requirement.level:
        problem(f"results say level {entry.get('level')}, the profile says {requirement.level}")
    if entry.get("expect") != requirement.expect.text:
        problem(f'results say expect "{entry.get("expect")}", the profile says "{requirement.expect.text}"')
    if entry.get("check") != requirement.check:
        problem(f"results say check {entry.get('check')}, the profile says {requirement.check}")
    if status not in V.STATUSES:
        problem(f'unknown status "{status}"')
        return problems

    first, last = (on, on) if isinstance(on, dt.date) else (on or (dt.date.today(), dt.date.today()))
    some_day = lambda w: waiver_active(w, first)  # noqa: E731 - active on the earliest day of the range
    every_day = lambda w: waiver_active(w, last)  # noqa: E731
    if waivers is None:
        own = entry.get("waiver")
        active = [own] if isinstance(own, dict) and every_day(own) else []
        possible = [own] if isinstance(own, dict) and some_day(own) else []
    else:
        active = [w for w in map(_waiver_dict, waivers) if every_day(w)]
        possible = [w for w in map(_waiver_dict, waivers) if some_day(w)]
    d = decide_entry(entry, requirement, active)
    if status == "waived" and d.status == "fail":  # a waiver active on some day of the run's date range
        d = decide_entry(entry, requirement, possible)
    gives = f"measured {d.detail} gives {d.status}" if d.detail else f"what it recorded gives {d.status}"

    contradicted = _contradicted_values(str(entry.get("message") or ""), d.outcomes) if compare_messages else []
    if status != d.status:
        if d.status == "waived":
            waiver = d.waiver or {}
            problem(f"results say {status}, but waiver of {waiver.get('who')} until {waiver.get('expires')} "
                    f"covers it: {gives}")
        else:
            problem(f"results say {status}, {gives}" + (f" ({d.message})" if not d.detail else ""))
    elif contradicted:  # an edited number: say which, rather than that the whole message differs
        for text in contradicted:
            problem(text)
    elif compare_messages and entry.get("message") != d.message:
        problem(f'results say "{entry.get("message")}", what it recorded gives "{d.message}"')

    if status == "waived":
        w = entry.get("waiver")
        if not isinstance(w, dict):
            problem("results say waived, but name no waiver")
        else:
            if w.get("id") != entry.get("id") or w.get("site") not in ("all", site):
                problem(f"results say waived, but the waiver is for {w.get('id')}@{w.get('site')}")
            if not some_day(w):
                problem(f"results say waived, but the waiver expired on {w.get('expires')} "
                        f"(the run was on {last.isoformat()})")
            elif waivers is not None and not any(_same_waiver(w, x) for x in possible):
                problem("results say waived, but the run's waivers file has no such waiver" if waivers else
                        "results say waived, but the run had no waivers")


    expected_advisory = V.is_advisory(requirement.level, status)
    if bool(entry.get("advisory")) != expected_advisory:
        problem(f"results say advisory = {str(bool(entry.get('advisory'))).lower()}, a {requirement.level} "
                f"{status} is {'advisory' if expected_advisory else 'not advisory'}")
    return problems


def _contradicted_values(message: str, outcomes: list[E.Outcome]) -> list[str]:
    """`metric = value` in a message that is not what was measured (an edited number)."""
    out = []
    for o in outcomes:
        if o.measured is None:
            continue
        c = o.comparison
        m = re.search(rf"(?:^|[:;(]\s*){re.escape(c.metric)} = (.+?)(?:, expected |; | \(|$)", message)
        if m and m[1] != c.show(o.measured):
            out.append(f"the message says {c.metric} = {m[1]}, the measured value is {c.show(o.measured)}")
    return out


def _same_waiver(a: dict, b: dict) -> bool:
    return all(str(a.get(k)) == str(b.get(k)) for k in ("id", "site", "reason", "who", "expires"))


# ------------------------------------------------------------------------------ fleet (quorum) entries


def is_fleet_entry(entry: dict) -> bool:
    """The aggregate entry of a quorum requirement (`sites: 95%`), site "fleet"."""
    return entry.get("site") == R.FLEET_SITE and "quorum" in entry


def fleet_expect(requirement: Any) -> str:
    return f"sites_passing >= {requirement.quorum * 100:g} % (each site: {requirement.expect.text})"


def fleet_fields(fleet: dict, requirements: list[dict]) -> dict:
    """status, measured, message, advisory of a fleet entry from its members (engine.record's rule)."""
    members = [r for r in requirements if r.get("fleet_member") and r.get("id") == fleet.get("id")
               and r.get("profile") == fleet.get("profile")]
    status, passing, failing, n = R.fleet_outcome(members, fleet["quorum"])
    share = (passing / n * 100.0) if n else 0.0
    return {"status": status,
            "measured": {"sites_passing": {"value": round(share, 4), "unit": "%"}, "sites": {"value": n, "unit": ""}},
            "message": (f"{fleet['id']} fleet: {passing} of {n} sites pass ({share:.4g} %), "
                        f"{failing} fail; expected at least {fleet['quorum'] * 100:g} %"),
            "advisory": V.is_advisory(str(fleet.get("level")), status)}


def refresh_fleets(requirements: list[dict]) -> None:
    """Recompute every fleet entry in place (after results were merged)."""
    for fleet in requirements:
        if is_fleet_entry(fleet):
            fleet.update(fleet_fields(fleet, requirements))


def check_fleet_entry(entry: dict, requirement: Any, requirements: list[dict]) -> list[str]:
    key = f"{entry.get('id')}@{entry.get('site')}"
    problems = []
    if requirement.quorum is None:
        return [f"{key}: results have a fleet entry, but the profile gives {entry.get('id')} no quorum"]
    if abs(float(entry.get("quorum") or 0) - requirement.quorum) > 1e-9:
        problems.append(f"{key}: results say quorum {entry.get('quorum')}, the profile says {requirement.quorum:g}")
    if entry.get("level") != requirement.level:
        problems.append(f"{key}: results say level {entry.get('level')}, the profile says {requirement.level}")
    if entry.get("expect") != fleet_expect(requirement):
        problems.append(f'{key}: results say expect "{entry.get("expect")}", '
                        f'the profile gives "{fleet_expect(requirement)}"')
    want = fleet_fields({**entry, "quorum": requirement.quorum, "level": requirement.level}, requirements)
    if entry.get("status") != want["status"]:
        problems.append(f"{key}: results say {entry.get('status')}, "
                        f"its sites give {want['status']} ({want['message']})")
    elif entry.get("measured") != want["measured"] or entry.get("message") != want["message"]:
        problems.append(f'{key}: results say "{entry.get("message")}", its sites give "{want["message"]}"')
    if bool(entry.get("advisory")) != want["advisory"]:
        problems.append(f"{key}: results say advisory = {str(bool(entry.get('advisory'))).lower()}, "
                        f"expected {str(want['advisory']).lower()}")
    return problems

