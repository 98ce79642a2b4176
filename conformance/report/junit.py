"""junit.xml: one <testsuite> per profile, one <testcase> per requirement x site.

Built with the junit-xml package, then adjusted to the Jenkins xunit schema (junit-10.xsd) that CI
servers validate against: junit-xml 1.9 writes a `disabled` attribute that schema rejects, and writes
suite times with str(float), which can come out as `1e-05` where the schema wants plain decimals.

Status mapping (docs/reports.md explains it to users):
  pass -> passed; fail (must) -> <failure>; error/inconclusive -> <error type=...>;
  skip/not-run -> <skipped>; waived -> passed, with the waiver in <system-out>;
  fail (should/may, "advisory") -> <failure> with --strict, else passed with "ADVISORY: ..." output.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from junit_xml import TestCase, TestSuite, to_xml_report_string

from . import view as V


def render_junit(results: dict) -> str:
    strict = V.strict(results)
    suites = [TestSuite(pid, [_case(r, strict) for r in reqs], properties=_properties(results, pid),
                        hostname=V.clean(V.as_dict(results.get("host")).get("hostname")) or None,
                        timestamp=V.clean(results.get("started")) or None)
              for pid, reqs in _by_profile(results).items()]
    return _fit_schema(to_xml_report_string(suites, prettyprint=False))


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


def _properties(results: dict, pid: str) -> dict[str, str]:
    profile = next((V.as_dict(p) for p in V.as_list(results.get("profiles"))
                    if V.clean(V.as_dict(p).get("id")) == pid), {})
    props = {
        "run_id": V.clean(results.get("run_id")),
        "verdict": V.clean(results.get("verdict")),
        "state": V.clean(results.get("state")),
        "strict": "true" if V.strict(results) else "false",
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
    status, message, details = V.status(r), V.message(r), _details(r)
    # Only a must (or anything under --strict) may turn a CI job red: an undecided should/may is an
    # advisory, like a failed one, so the JUnit view agrees with the run's verdict.
    if status in ("error", "inconclusive") and not strict and V.level(r) != "must":
        case.stdout = (f"ADVISORY ({status}): {message} (a {V.level(r)} requirement: reported, not blocking "
                       f"without --strict)\n{details}")
        return case
    if status == "fail" and (strict or not V.is_advisory(r)):
        case.add_failure_info(message=_one_line(message), output=f"{message}\n{details}", failure_type="failure")
    elif status == "fail":
        case.stdout = (f"ADVISORY: {message} (a {V.level(r)} requirement: reported, not blocking without --strict)"
                       f"\n{details}")
    elif status in ("error", "inconclusive"):
        case.add_error_info(message=_one_line(message), output=f"{message}\n{details}", error_type=status)
    elif status == "skip":
        case.add_skipped_info(message=_one_line(message) or "skipped")
    elif status == "not-run":
        case.add_skipped_info(message=_one_line(V.clean(r.get("message")))
                              or "not run: the run ended before this check ran")
    elif status == "waived":
        case.stdout = f"WAIVED: {V.waiver_text(r.get('waiver'))}\n{message}\n{details}"
    else:
        case.stdout = details if V.as_dict(r.get("measured")) else None
    return case


def _details(r: dict) -> str:
    lines = [f"measured: {V.fmt_measured(r) or 'nothing'}", f"expected: {V.expected(r) or '?'}",
             f"level: {V.level(r)}"]
    if r.get("source"):
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


def _fit_schema(xml: str) -> str:
    root = ET.fromstring(xml)
    for el in root.iter():
        el.attrib.pop("disabled", None)
        if el.tag in ("testsuites", "testsuite"):
            el.set("time", f"{float(el.get('time') or 0):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
