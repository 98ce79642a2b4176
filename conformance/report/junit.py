"""junit.xml: one <testsuite> per profile, one <testcase> per requirement x site.

Built with the junit-xml package, then adjusted to the Jenkins xunit schema (junit-10.xsd) that CI
servers validate against: junit-xml 1.9 writes a `disabled` attribute that schema rejects, and writes
suite times with str(float), which can come out as `1e-05` where the schema wants plain decimals.

Status mapping (docs/reports.md explains it to users). JUnit counts exactly what results.json counts:
  pass, waived -> passed (waived: the waiver in <system-out>);
  fail -> <failure>; error -> <error>; a should/may one is marked "[advisory, should] " (not blocking);
  inconclusive, not-measured, not-run -> <skipped type=STATUS> with the reason (and the remedy);
  not-applicable (and v1's skip) -> <skipped type=STATUS message="not applicable: ...">.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from junit_xml import TestCase, TestSuite, to_xml_report_string

from . import view as V

# JUnit has four outcomes; each status is exactly one of them, so the suite's counts are the record's.
OUTCOME = {"pass": "passed", "waived": "passed", "fail": "failure", "error": "error",
           "inconclusive": "skipped", "not-measured": "skipped", "not-run": "skipped",
           "not-applicable": "skipped", "skip": "skipped"}


def render_junit(results: dict) -> str:
    strict = V.strict(results)
    scope = V.Scope(results)
    groups = _by_profile(results)
    suites = [TestSuite(pid, [_case(r, strict) for r in reqs], properties=_properties(results, pid, reqs, scope),
                        hostname=V.clean(V.as_dict(results.get("host")).get("hostname")) or None,
                        timestamp=V.clean(results.get("started")) or None)
              for pid, reqs in groups.items()]
    # The skipped elements get their status as `type`, which junit-xml cannot write: in document order.
    skipped_types = [V.status(r) for reqs in groups.values() for r in reqs if OUTCOME[V.status(r)] == "skipped"]
    return _fit_schema(to_xml_report_string(suites, prettyprint=False), skipped_types)


def _by_profile(results: dict) -> dict[str, list[dict]]:
    """Profiles in the order the run declared them, including those with no requirement results."""
    out: dict[str, list[dict]] = {}
    for p in V.as_list(results.get("profiles")):
        pid = V.clean(V.as_dict(p).get("id"))
        if pid:
            out.setdefault(pid, [])
    for r in V.requirements(results):
        out.setdefault(V.clean(r.get("profile")) or "unknown-profile", []).append(r)
    return out


def _properties(results: dict, pid: str, reqs: list[dict], scope: V.Scope) -> dict[str, str]:
    """The run's facts, its scope first-class (a CI page shows a partial run as partial), and this
    suite's counts by status in results.json's words."""
    profile = next((V.as_dict(p) for p in V.as_list(results.get("profiles"))
                    if V.clean(V.as_dict(p).get("id")) == pid), {})
    counts = {s: 0 for s in V.STATUSES}
    for r in reqs:
        counts[V.status(r)] = counts.get(V.status(r), 0) + 1
    props = {
        "scope": scope.word,
        "narrowed_by": "; ".join(scope.narrowed_by),
        "changed_by": "; ".join(scope.changed_by),
        "verdict": V.clean(results.get("verdict")),
        "verdict_reason": V.verdict_reason(results),
        "run_id": V.clean(results.get("run_id")),
        "state": V.clean(results.get("state")),
        "strict": "true" if V.strict(results) else "false",
        "counts": ", ".join(f"{n} {s}" for s, n in counts.items() if n),
        "profile_version": V.clean(profile.get("version")),
        "profile_sha256": V.clean(profile.get("sha256")),
        "harness_version": V.clean(V.as_dict(results.get("harness")).get("version")),
        "target": V.clean(V.as_dict(results.get("target")).get("name")),
    }
    return {k: v for k, v in props.items() if v}


def _case(r: dict, strict: bool) -> TestCase:
    title = V.clean(r.get("title"))
    case = TestCase(
        f"{V.label(r)} {title}".strip(),
        classname=f"edge.{V.clean(r.get('profile')) or 'unknown-profile'}.{V.clean(r.get('suite')) or 'unknown'}",
        elapsed_sec=_seconds(r.get("duration")),
    )
    status, details = V.status(r), _details(r)
    message = _mark(r, strict) + V.message(r)
    outcome = OUTCOME[status]
    if outcome == "failure":
        case.add_failure_info(message=_one_line(message), output=f"{message}\n{details}", failure_type="failure")
    elif outcome == "error":
        case.add_error_info(message=_one_line(message), output=f"{message}\n{details}", error_type="error")
    elif outcome == "skipped":
        case.add_skipped_info(message=_one_line(_skip_message(r, message)), output=f"{message}\n{details}")
    elif status == "waived":
        case.stdout = f"WAIVED: {V.waiver_text(r.get('waiver'))}\n{message}\n{details}"
    else:
        case.stdout = details if V.as_dict(r.get("measured")) else None
    return case


def _mark(r: dict, strict: bool) -> str:
    """'[advisory, should] ' for a should/may that did not pass: CI shows it red or skipped like any
    other, and the mark says it does not decide the verdict. Under --strict it does: no mark."""
    return f"[advisory, {V.level(r)}] " if V.is_advisory(r, strict) else ""


def _skip_message(r: dict, message: str) -> str:
    """Why it was skipped, with what would let it be measured (the not-measured message carries the
    remedy; an entry from an older harness might not)."""
    status = V.status(r)
    reason, remedy = V.ended(r)
    if status == "not-applicable":
        return f"not applicable: {reason}" if V.as_dict(r.get("ended")).get("reason") else message
    if status == "not-run" and not V.clean(r.get("message")):
        return "not run: the run ended before this check ran"
    if status == "not-measured" and remedy and remedy not in message:
        return f"{message}; to measure it: {remedy}"
    return message


def _details(r: dict) -> str:
    lines = [f"measured: {V.fmt_measured(r) or 'nothing'}", f"expected: {V.expected(r) or '?'}",
             f"level: {V.level(r)}"]
    if V.sampling_text(r):
        lines.append(f"sampling: {V.sampling_text(r)}")
    cites = "; ".join(f"{V.clean(V.as_dict(c).get('key'))} {V.clean(V.as_dict(c).get('at'))}".strip()
                      for c in V.as_list(r.get("cites")))
    basis = V.basis_text(r) if V.as_dict(r.get("basis")).get("kind") not in (None, "unstated") else ""
    if cites or basis:
        lines += ([f"cites: {cites}"] if cites else []) + ([f"basis: {basis}"] if basis else [])
    elif r.get("source"):  # a profile without cites and basis: its free text as written
        lines.append(f"source: {V.clean(r['source'])}")
    lines.extend(f"note: {V.clean(n)}" for n in V.as_list(r.get("notes")))
    return "\n".join(lines)


def _one_line(text: str) -> str:
    """Attribute values lose their newlines in XML parsers; the full text goes in the element body."""
    return " ".join(text.split())


def _seconds(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e9:
        return round(float(value), 6)
    return None


def _fit_schema(xml: str, skipped_types: list[str]) -> str:
    root = ET.fromstring(xml)
    for el in root.iter():
        el.attrib.pop("disabled", None)
        if el.tag in ("testsuites", "testsuite"):
            el.set("time", f"{float(el.get('time') or 0):.3f}")
    for el, kind in zip(root.iter("skipped"), skipped_types, strict=True):
        el.set("type", kind)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
