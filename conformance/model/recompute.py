"""Recompute a verdict from what was measured: the audit side of the plugin's verdict rules.

The pytest plugin (pytest_plugin._verdict) decides a requirement's status while the check runs.
Whatever the measurement decided can be decided again later, from results.json alone: the measured
values, the profile's expectation, the waivers and the level. `decide` mirrors the plugin's rules for
that path (and builds the same messages); `check_entry` compares one results.json entry with them and
says, in one line each, what does not hold:

    BASE-FUN-01@store-1: results say pass, measured status = 503 gives fail

Some statuses are not decided by measured values but by what happened while the check ran (an
exception: error; an invalid measurement: inconclusive; not applicable: skip; the run ended: not-run).
They are taken as recorded, except where the measured values contradict them (a skip whose recorded
values fail the expectation). Pure: no I/O, no pytest.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from . import expect as E
from . import results as R
from .units import UnitError

# Statuses that only the running check can decide (an exception, a skip, the run's end).
NOT_FROM_MEASUREMENT = ("error", "inconclusive", "skip", "not-run")


@dataclass
class Decision:
    """What the rules give for a requirement from its measured values (plugin: Verdict)."""

    status: str  # pass | fail | waived | error (a metric missing or not comparable)
    message: str
    advisory: bool = False
    waiver: dict | None = None
    detail: str = ""  # the measured values that decided it, e.g. "status = 503"
    outcomes: list[E.Outcome] = field(default_factory=list)


def measured_of(entry: dict) -> dict[str, tuple[float, str]]:
    """results.json `measured` ({metric: {value, unit}}) as E.evaluate wants it."""
    out = {}
    for metric, m in (entry.get("measured") or {}).items():
        if isinstance(m, dict) and isinstance(m.get("value"), (int, float)) and not isinstance(m.get("value"), bool):
            out[metric] = (float(m["value"]), str(m.get("unit") or ""))
    return out


def notes_suffix(notes: list[str] | None) -> str:
    return f" ({'; '.join(notes)})" if notes else ""


def decide(requirement: Any, site: str, measured: dict[str, tuple[float, str]], notes: list[str] | None = None,
           waivers: list | None = None) -> Decision:
    """The plugin's rules for a check that ran to the end and recorded `measured`.

    `requirement` is a model.profile.Requirement (id, level, expect, metric_dimensions); `waivers`
    the active waivers (model.waivers.Waiver or dicts with id, site, reason, who, expires).
    """
    prefix = f"{requirement.id} {site}"
    suffix = notes_suffix(notes)
    advisory = requirement.level != "must"
    try:
        outcomes = E.evaluate(requirement.expect, measured, requirement.metric_dimensions)
    except (ValueError, E.ExpectError, UnitError) as exc:
        return Decision("error", f"{prefix}: cannot compare with the expectation: {exc}", advisory=advisory,
                        detail=f"cannot compare: {exc}")
    missing = [o for o in outcomes if o.ok is None]
    if missing:
        text = "; ".join(o.describe() for o in missing)
        return Decision("error", f"{prefix}: {text}{suffix}", advisory=advisory, detail=text, outcomes=outcomes)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        detail = "; ".join(_value_text(o) for o in failed)
        message = f"{prefix}: {'; '.join(o.describe() for o in failed)}{suffix}"
        for w in waivers or []:
            w = _waiver_dict(w)
            if w["id"] == requirement.id and w["site"] in ("all", site):
                return Decision("waived", waived_message(message, w), waiver=w, detail=detail, outcomes=outcomes)
        return Decision("fail", message, advisory=advisory, detail=detail, outcomes=outcomes)
    shown = "; ".join(o.describe().replace(", expected ", " (expected ") + ")" for o in outcomes)
    return Decision("pass", f"{prefix}: {shown}", detail="; ".join(_value_text(o) for o in outcomes),
                    outcomes=outcomes)


def waived_message(fail_message: str, waiver: dict) -> str:
    return f"{fail_message} [waived until {waiver['expires']}: {waiver['reason']} ({waiver['who']})]"


def _value_text(o: E.Outcome) -> str:
    return f"{o.comparison.metric} = {o.comparison.show(o.measured)}" if o.measured is not None else \
        f"{o.comparison.metric} not measured"


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
    `compare_messages`: also require a pass's message to be the one the rules write (off across
    harness versions, whose wording may differ).
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
    measured = measured_of(entry)
    d = decide(requirement, site, measured, entry.get("notes") or [], active)
    gives = f"measured {d.detail} gives {d.status}" if d.detail else f"the measured values give {d.status}"

    if status == "pass":
        if d.status != "pass":
            problem(f"results say pass, {gives}")
        elif compare_messages and entry.get("message") != d.message:
            problem(f'results say "{entry.get("message")}", measured values give "{d.message}"')
    elif status == "fail":
        if d.status == "waived":
            problem(f"results say fail, but waiver of {d.waiver.get('who')} until {d.waiver.get('expires')} "
                    f"covers it: {gives}")
        elif d.status == "pass" and entry.get("message") == d.message:
            problem(f"results say fail, {gives}")
        # otherwise: failed on the expectation, or by the check's own assertion
    elif status == "waived":
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
            suffix = waived_message("", w)
            if not str(entry.get("message", "")).endswith(suffix):
                problem("results say waived, but the message does not name the waiver")
        base = str(entry.get("message", "")).removesuffix(waived_message("", w) if isinstance(w, dict) else "")
        if d.status == "pass" and base == d.message:
            problem(f"results say waived, {gives}")
    elif status in ("skip", "not-run"):
        if d.status == "fail" or (d.status == "waived" and measured):
            problem(f"results say {status}, {gives}")
    elif status in ("error", "inconclusive"):
        pass  # an exception or an invalid measurement; recorded values cannot overrule it
    else:
        problem(f'unknown status "{status}"')

    if compare_messages and status in ("fail", "waived", "error", "inconclusive", "skip"):
        for text in _contradicted_values(str(entry.get("message") or ""), d.outcomes):
            problem(text)

    expected_advisory = status in ("fail", "error", "inconclusive") and requirement.level != "must"
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
            "advisory": status in ("fail", "error", "inconclusive") and fleet.get("level") != "must"}


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
        problems.append(f'{key}: results say expect "{entry.get("expect")}", the profile gives "{fleet_expect(requirement)}"')
    want = fleet_fields({**entry, "quorum": requirement.quorum, "level": requirement.level}, requirements)
    if entry.get("status") != want["status"]:
        problems.append(f"{key}: results say {entry.get('status')}, its sites give {want['status']} ({want['message']})")
    elif entry.get("measured") != want["measured"] or entry.get("message") != want["message"]:
        problems.append(f'{key}: results say "{entry.get("message")}", its sites give "{want["message"]}"')
    if bool(entry.get("advisory")) != want["advisory"]:
        problems.append(f"{key}: results say advisory = {str(bool(entry.get('advisory'))).lower()}, "
                        f"expected {str(want['advisory']).lower()}")
    return problems

