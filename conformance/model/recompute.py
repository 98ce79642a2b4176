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
from . import sampling as S
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
    text = f"sites_passing >= {(requirement.quorum or 0) * 100:g} % (each site: {requirement.expect.text}"
    sample = getattr(requirement, "sample", None)
    if sample is not None:
        text += f"; sampled: {sample.text} of the sites, judged at {sample.confidence_text} confidence"
    return text + ")"


def sampling_record(sample: S.Sampling, population: int) -> dict:
    """A sampled fleet entry's `sampling` before any site decided (plan), as the profile sets it."""
    k = sample.size(population)
    return {"size": sample.raw, "confidence": sample.confidence, "population": population, "sample": k,
            "census": k >= population, "passed": 0, "failed": 0, "undecided": k, "lower": 0.0, "upper": 1.0}


def fleet_members(fleet: dict, requirements: list[dict]) -> list[dict]:
    return [r for r in requirements if r.get("fleet_member") and r.get("id") == fleet.get("id")
            and r.get("profile") == fleet.get("profile")]


def fleet_fields(fleet: dict, requirements: list[dict]) -> dict:
    """status, measured, message, advisory of a fleet entry from its members (engine.record's rule);
    and `sampling` for a sampled one."""
    members = fleet_members(fleet, requirements)
    if isinstance(fleet.get("sampling"), dict):
        return _sampled_fleet_fields(fleet, members)
    status, passing, failing, n = R.fleet_outcome(members, fleet["quorum"])
    share = (passing / n * 100.0) if n else 0.0
    return {"status": status,
            "measured": {"sites_passing": {"value": round(share, 4), "unit": "%"}, "sites": {"value": n, "unit": ""}},
            "message": (f"{fleet['id']} fleet: {passing} of {n} sites pass ({share:.4g} %), "
                        f"{failing} fail; expected at least {fleet['quorum'] * 100:g} %"),
            "advisory": V.is_advisory(str(fleet.get("level")), status)}


def _sampled_fleet_fields(fleet: dict, members: list[dict]) -> dict:
    """A sampled quorum (model/sampling.py): judged on the confidence bounds of the fleet's pass share."""
    record = fleet["sampling"]
    quorum = float(fleet["quorum"])
    try:
        confidence = float(record.get("confidence"))
    except (TypeError, ValueError):
        confidence = S.DEFAULT_CONFIDENCE
    if not 0 < confidence < 1:
        confidence = S.DEFAULT_CONFIDENCE
    o = R.sampled_fleet_outcome(members, quorum, confidence)
    n = o.passed + o.failed + o.undecided
    population = len(members)
    size = record.get("size")
    sampling = {"size": size, "confidence": confidence, "population": population, "sample": o.sample,
                "census": o.sample >= population, "passed": o.passed, "failed": o.failed,
                "undecided": o.undecided, "lower": round(o.lower, S.BOUND_DIGITS),
                "upper": round(o.upper, S.BOUND_DIGITS)}
    share = (o.passed / n * 100.0) if n else 0.0
    conf, wanted = S.percent(confidence), f"{quorum * 100:g} %"
    head = (f"{fleet['id']} fleet: sampled {o.sample:,} of {population:,} sites (sample: {S.size_text(size)}), "
            f"{o.passed} pass, {o.failed} fail" + (f", {o.undecided} not decided" if o.undecided else ""))
    if o.status == "pass":
        said = f"pass share >= {S.percent_down(o.lower)} at {conf} confidence; expected at least {wanted}"
    elif o.status == "fail":
        said = f"pass share <= {S.percent_up(o.upper)} at {conf} confidence; expected at least {wanted}"
    elif o.status == R.NOT_APPLICABLE:
        said = "it applies to no site of the sample"
    else:
        said = (f"the sample cannot tell at {conf} confidence: between {S.percent_down(o.lower)} and "
                f"{S.percent_up(o.upper)} of the fleet passes, the quorum is {wanted}")
    # the sample's own figures; the bounds on the fleet's share are the `sampling` record's
    measured = {"sites_passing": {"value": round(share, 4), "unit": "%"}, "sites": {"value": n, "unit": ""}}
    return {"status": o.status, "measured": measured, "message": f"{head}; {said}",
            "advisory": V.is_advisory(str(fleet.get("level")), o.status), "sampling": sampling}


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
    sample = getattr(requirement, "sample", None)
    members = fleet_members(entry, requirements)
    problems += check_sample(entry, requirement, members)
    basis = {**entry, "quorum": requirement.quorum, "level": requirement.level}
    basis.pop("sampling", None)
    if sample is not None:  # judged as the profile samples it, whatever the entry says
        basis["sampling"] = sampling_record(sample, len(members))
    want = fleet_fields(basis, requirements)
    if sample is not None and isinstance(entry.get("sampling"), dict):
        problems += _sampling_differences(key, entry["sampling"], want["sampling"])
    if entry.get("status") != want["status"]:
        problems.append(f"{key}: results say {entry.get('status')}, "
                        f"its sites give {want['status']} ({want['message']})")
    elif entry.get("measured") != want["measured"] or entry.get("message") != want["message"]:
        problems.append(f'{key}: results say "{entry.get("message")}", its sites give "{want["message"]}"')
    if bool(entry.get("advisory")) != want["advisory"]:
        problems.append(f"{key}: results say advisory = {str(bool(entry.get('advisory'))).lower()}, "
                        f"expected {str(want['advisory']).lower()}")
    return problems



# ---------------------------------------------------------------------------- sampled fleet entries

_FIGURES = ("population", "sample", "census", "passed", "failed", "undecided")


def check_sample(fleet: dict, requirement: Any, members: list[dict]) -> list[str]:
    """A sampled quorum's sample as the rule takes it (model/sampling.py): every member says whether it
    is in the sample, and says it right; a site outside it measured nothing. [] when it holds."""
    key = f"{fleet.get('id')}@{fleet.get('site')}"
    sample = getattr(requirement, "sample", None)
    problems: list[str] = []
    if sample is None:
        if "sampling" in fleet:
            problems.append(f"{key}: results say it was judged on a sample, but the profile gives "
                            f"{fleet.get('id')} no sample")
        problems += [f"{m.get('id')}@{m.get('site')}: results say sampled = {str(m.get('sampled')).lower()}, but the "
                     f"profile gives {m.get('id')} no sample" for m in members if "sampled" in m]
        return problems
    if not isinstance(fleet.get("sampling"), dict):
        problems.append(f"{key}: the profile samples {fleet.get('id')} (sample: {sample.text}), "
                        "but results have no sampling record")
    record = fleet.get("sampling") if isinstance(fleet.get("sampling"), dict) else {}
    if record and record.get("size") != sample.raw:
        problems.append(f"{key}: results say sample {record.get('size')!r}, the profile says {sample.raw!r}")
    if record and not _close(record.get("confidence"), sample.confidence, 1e-9):
        problems.append(f"{key}: results say confidence {record.get('confidence')}, "
                        f"the profile says {sample.confidence:g}")
    names = [str(m.get("site")) for m in members]
    chosen = set(S.sample_of(str(fleet.get("id")), sample, names))
    rule = f"{len(chosen):,} of {len(names):,} sites, ranked by sha256 of requirement id and site name"
    for m in members:
        label, claimed = f"{m.get('id')}@{m.get('site')}", m.get("sampled")
        if claimed is True and m.get("site") not in chosen:
            problems.append(f"{label}: results say it was in the sample, but the sample is not that site ({rule})")
        elif claimed is False and m.get("site") in chosen:
            problems.append(f"{label}: results say it was not in the sample, but the sample takes it ({rule})")
        elif claimed not in (True, False):
            problems.append(f"{label}: results do not say whether it was in the sample (sampled: true or false)")
        ended: dict = m["ended"] if isinstance(m.get("ended"), dict) else {}
        if claimed is False and (m.get("status") != "not-run" or ended.get("how") != "not-run" or m.get("measured")):
            problems.append(f"{label}: results say it was not in the sample, yet record a result "
                            f"(status {m.get('status')})")
        elif claimed is False and ended.get("reason") != S.not_in_sample_reason(len(chosen), len(names), sample):
            problems.append(f'{label}: results say it was not run because "{ended.get("reason")}", the sample '
                            f'rule says "{S.not_in_sample_reason(len(chosen), len(names), sample)}"')
    return problems


def _close(a: Any, b: float, tolerance: float) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool) and abs(float(a) - b) <= tolerance


def _sampling_differences(key: str, recorded: dict, want: dict) -> list[str]:
    """The figures and bounds a sampled fleet entry records against those its sites give (bounds within
    a millionth: another machine's libm may differ in the last digit)."""
    out = []
    for name in _FIGURES:
        if recorded.get(name) != want.get(name):
            out.append(f"{key}: results say sampling {name} = {recorded.get(name)}, its sites give {want.get(name)}")
    for name in ("lower", "upper"):
        if not _close(recorded.get(name), float(want[name]), 2e-6):
            out.append(f"{key}: results say the {name} bound is {recorded.get(name)}, its sites give {want[name]} "
                       f"at {S.percent(float(want['confidence']))} confidence")
    return out
