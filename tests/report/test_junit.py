"""junit.xml: schema-valid for CI servers, and every status mapped as docs/reports.md says."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from conformance.report.junit import render_junit

XSD_COPY = Path(__file__).parent / "data" / "junit-10.xsd"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD_COPY))


def _cases(xml: str) -> dict[str, ET.Element]:
    return {c.get("name").split(" ")[0]: c for c in ET.fromstring(xml).iter("testcase")}


def test_the_xsd_copy_keeps_its_licence():
    text = XSD_COPY.read_text(encoding="utf-8")
    assert "The MIT License (MIT)" in text and "Gregory Boissinot" in text


def test_every_sample_validates_against_xsd(any_results, schema):
    schema.validate(render_junit(any_results))  # raises XMLSchemaValidationError with the reason


def test_citations_and_basis_go_in_the_body(schema):
    from tests.report.samples import req, results

    cited = req("R-1", status="fail", source="OSF-2018 §Challenges: x; assumed: ours",
                cites=[{"key": "OSF-2018", "at": "§Challenges: x"}], basis={"kind": "assumed", "note": "ours"})
    legacy = req("R-2", status="fail", source="our lab notes")
    xml = render_junit(results([cited, legacy], "non-conformant"))
    schema.validate(xml)
    cases = _cases(xml)
    body = cases["R-1@store-1"].find("failure").text
    assert "cites: OSF-2018 §Challenges: x" in body and "basis: assumed: ours" in body and "source:" not in body
    assert "source: our lab notes" in cases["R-2@store-1"].find("failure").text


def test_hostile_text_validates_and_control_chars_are_gone(hostile, injection, schema):
    xml = render_junit(hostile)
    schema.validate(xml)
    assert "\x1b" not in xml and "\x00" not in xml and "\x07" not in xml
    # the injected markup survives only as text
    messages = [f.text for f in ET.fromstring(xml).iter("failure")]
    assert any(injection in m for m in messages)


def _props(xml: str, suite: str = "edge-baseline") -> dict[str, str]:
    s = next(s for s in ET.fromstring(xml).iter("testsuite") if s.get("name") == suite)
    return {p.get("name"): p.get("value") for p in s.iter("property")}


def test_suite_per_profile_with_properties(non_conformant):
    non_conformant["profiles"].append({"id": "retail", "version": "1.2", "title": "Retail", "sha256": "cd" * 32})
    non_conformant["requirements"][0]["profile"] = "retail"
    root = ET.fromstring(render_junit(non_conformant))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"edge-baseline", "retail"}
    assert suites["retail"].get("tests") == "1"
    props = {p.get("name"): p.get("value") for p in suites["retail"].iter("property")}
    assert props["run_id"] == "20261126T235900Z-ab12cd"
    assert props["verdict"] == "non-conformant"
    assert props["verdict_reason"] == "1 must failed, 1 must not measured, 1 must in error, 1 must inconclusive"
    assert props["profile_version"] == "1.2"
    assert props["harness_version"] == "0.1.0"
    assert props["counts"] == "1 pass"  # this suite's own results
    assert "disabled" not in root.attrib and all("disabled" not in s.attrib for s in suites.values())


def test_scope_properties_of_a_full_run(non_conformant):
    props = _props(render_junit(non_conformant))
    assert list(props)[0] == "scope" and props["scope"] == "full"
    assert "narrowed_by" not in props and "changed_by" not in props  # nothing given: nothing said


def test_scope_properties_of_a_partial_run(partial, schema):
    xml = render_junit(partial)
    schema.validate(xml)
    props = _props(xml)
    assert props["scope"] == "partial"
    assert props["narrowed_by"] == "--suite functional security"
    assert props["changed_by"] == "--defect store-1:slow-path; --waivers waivers.yaml"
    assert props["verdict"] == "incomplete" and props["verdict_reason"] == "13 musts not measured"


def test_scope_of_an_old_file_is_unknown(legacy_v1, schema):
    xml = render_junit(legacy_v1)
    schema.validate(xml)
    assert _props(xml)["scope"] == "unknown"
    skipped = _cases(xml)["BASE-SEC-01@store-1"].find("skipped")
    assert skipped.get("type") == "skip" and skipped.get("message") == "BASE-SEC-01 store-1: skipped: no TLS"


def test_testcase_name_classname_and_time(non_conformant):
    case = _cases(render_junit(non_conformant))["BASE-FUN-02@store-2"]
    assert case.get("name") == "BASE-FUN-02@store-2 BASE-FUN-02 title"
    assert case.get("classname") == "edge.edge-baseline.functional"
    assert float(case.get("time")) == pytest.approx(0.123)


def test_fail_is_a_failure_naming_measured_and_expected(non_conformant):
    failure = _cases(render_junit(non_conformant))["BASE-FUN-02@store-2"].find("failure")
    assert failure is not None
    assert failure.get("message") == "BASE-FUN-02 store-2: status = 503, expected == 200"
    assert "measured: status = 503, latency = 12.3 ms" in failure.text
    assert "expected: status == 200" in failure.text


def test_error_is_an_error(non_conformant):
    case = _cases(render_junit(non_conformant))["BASE-LAT-01@store-1"]
    error = case.find("error")
    assert error is not None and error.get("type") == "error"
    assert error.get("message") == "BASE-LAT-01 store-1: could not measure: connection refused"
    assert case.find("failure") is None and case.find("skipped") is None


@pytest.mark.parametrize("rid,kind,message", [
    ("BASE-LAT-02@store-1", "inconclusive", "BASE-LAT-02 store-1: inconclusive: generator saturated"),
    ("BASE-HOST-01@store-2", "not-measured", "BASE-HOST-01 store-2: not measured: site store-2 has no host to "
                                             "check; to measure it: add a host to store-2"),
    ("BASE-SEC-01@store-1", "not-applicable", "not applicable: no endpoint asks for credentials"),
    ("BASE-FOO-01@store-1", "not-run", "not run: the run ended before this check ran"),
])
def test_undecided_and_not_applicable_are_skipped_with_their_reason(non_conformant, rid, kind, message):
    case = _cases(render_junit(non_conformant))[rid]
    skipped = case.find("skipped")
    assert skipped is not None and case.find("error") is None and case.find("failure") is None
    assert skipped.get("type") == kind and skipped.get("message") == message


def test_not_measured_without_the_remedy_in_its_message_gets_it(non_conformant):
    entry = next(r for r in non_conformant["requirements"] if r["status"] == "not-measured")
    entry["message"] = "BASE-HOST-01 store-2: not measured"
    skipped = _cases(render_junit(non_conformant))["BASE-HOST-01@store-2"].find("skipped")
    assert skipped.get("message") == "BASE-HOST-01 store-2: not measured; to measure it: add a host to store-2"


def test_waived_passes_and_names_the_waiver(non_conformant):
    case = _cases(render_junit(non_conformant))["BASE-FUN-04@store-1"]
    assert case.find("failure") is None and case.find("error") is None and case.find("skipped") is None
    out = case.find("system-out").text
    assert "WAIVED" in out and "jane.doe@example.com" in out and "vendor fix due in 4.2" in out


def test_advisory_fail_and_error_are_marked_not_passed(non_conformant):
    cases = _cases(render_junit(non_conformant))
    failure = cases["BASE-FUN-03@store-1"].find("failure")
    assert failure.get("message") == "[advisory, should] BASE-FUN-03 store-1: latency = 812 ms, expected <= 500 ms"
    error = cases["BASE-LAT-03@store-2"].find("error")
    assert error.get("message") == "[advisory, should] BASE-LAT-03 store-2: could not measure: timed out after 5 s"


def test_advisory_not_measured_is_marked(partial):
    skipped = _cases(render_junit(partial))["BASE-LAT-06@store-1"].find("skipped")
    assert skipped.get("message").startswith("[advisory, should] BASE-LAT-06 store-1: not measured: ")


def test_strict_drops_the_advisory_mark(non_conformant):
    non_conformant["options"]["strict"] = True
    case = _cases(render_junit(non_conformant))["BASE-FUN-03@store-1"]
    assert case.find("failure").get("message") == "BASE-FUN-03 store-1: latency = 812 ms, expected <= 500 ms"


def test_counts_on_the_suite(non_conformant):
    suite = next(ET.fromstring(render_junit(non_conformant)).iter("testsuite"))
    counts = tuple(suite.get(k) for k in ("tests", "failures", "errors", "skipped"))
    assert counts == ("10", "2", "2", "4")


def _outcome(case: ET.Element) -> str:
    for kind in ("failure", "error", "skipped"):
        if case.find(kind) is not None:
            return kind
    return "passed"


def test_junit_counts_are_the_results_counts(any_results, schema):
    """Every status is exactly one JUnit outcome: the suite totals are results.json's counts, summed."""
    xml = render_junit(any_results)
    schema.validate(xml)
    counts = any_results.get("counts") or {}
    if not counts:
        for r in any_results["requirements"]:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    want = {"tests": sum(counts.values()), "failures": counts.get("fail", 0), "errors": counts.get("error", 0),
            "skipped": sum(counts.get(s, 0) for s in ("inconclusive", "not-measured", "not-run",
                                                      "not-applicable", "skip"))}
    suites = list(ET.fromstring(xml).iter("testsuite"))
    assert {k: sum(int(s.get(k)) for s in suites) for k in want} == want
    cases = [c for s in suites for c in s.iter("testcase")]
    passed = sum(_outcome(c) == "passed" for c in cases)
    assert passed == counts.get("pass", 0) + counts.get("waived", 0)
    # and each entry's own outcome is the one its status maps to, in order
    want_each = [{"fail": "failure", "error": "error", "pass": "passed", "waived": "passed"}.get(r["status"], "skipped")
                 for r in any_results["requirements"]]
    assert [_outcome(c) for c in cases] == want_each


def test_tiny_durations_keep_schema_time_format(conformant, schema):
    for r in conformant["requirements"]:
        r["duration"] = 1e-05  # str(float) would write "1e-05", which SUREFIRE_TIME rejects
    xml = render_junit(conformant)
    schema.validate(xml)
    assert "e-05" not in xml


def test_tolerates_missing_optional_keys(schema):
    minimal = {"schema": "edge-conformance/results/v2", "verdict": "incomplete",
               "requirements": [{"id": "X-1", "site": "s", "level": "must", "status": "error",
                                 "expect": "p99 <= 1 ms", "message": "boom", "measured": {}}]}
    xml = render_junit(minimal)
    schema.validate(xml)
    assert _cases(xml)["X-1@s"].find("error") is not None


@pytest.mark.parametrize("status,element", [("error", "error"), ("inconclusive", "skipped"),
                                            ("not-measured", "skipped"), ("fail", "failure")])
def test_a_should_that_did_not_pass_never_passes(status, element, schema):
    """Once written as a pass, a should-level error hid from CI that nothing was measured."""
    from tests.report.samples import req, results

    r = req("BASE-X-01", status=status, level="should", message=f"BASE-X-01 store-1: {status} here")
    lenient = render_junit(results([r], "conformant"))
    schema.validate(lenient)
    found = _cases(lenient)["BASE-X-01@store-1"].find(element)
    assert found is not None and found.get("message").startswith("[advisory, should] BASE-X-01 store-1")
    strict = render_junit(results([r], "incomplete", options={"strict": True}))
    assert _cases(strict)["BASE-X-01@store-1"].find(element).get("message").startswith("BASE-X-01 store-1")
