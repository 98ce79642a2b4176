"""junit.xml: schema-valid for CI servers, and every status mapped as docs/reports.md says."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from conformance.report.junit import render_junit

XSD_COPY = Path(__file__).parent / "data" / "junit-10.xsd"
XSD_SHARED = Path(__file__).parents[2] / ".." / "shared" / "reference" / "junit" / "junit-10.xsd"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD_COPY))


def _cases(xml: str) -> dict[str, ET.Element]:
    return {c.get("name").split(" ")[0]: c for c in ET.fromstring(xml).iter("testcase")}


def test_copy_of_xsd_matches_shared_reference_and_keeps_licence():
    text = XSD_COPY.read_text(encoding="utf-8")
    assert "The MIT License (MIT)" in text and "Gregory Boissinot" in text
    if not XSD_SHARED.is_file():
        pytest.skip(f"shared reference not present at {XSD_SHARED}")
    assert XSD_SHARED.read_text(encoding="utf-8") == text


def test_every_sample_validates_against_xsd(any_results, schema):
    schema.validate(render_junit(any_results))  # raises XMLSchemaValidationError with the reason


def test_hostile_text_validates_and_control_chars_are_gone(hostile, injection, schema):
    xml = render_junit(hostile)
    schema.validate(xml)
    assert "\x1b" not in xml and "\x00" not in xml and "\x07" not in xml
    # the injected markup survives only as text
    messages = [f.text for f in ET.fromstring(xml).iter("failure")]
    assert any(injection in m for m in messages)


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
    assert props["profile_version"] == "1.2"
    assert props["harness_version"] == "0.1.0"
    assert "disabled" not in root.attrib and all("disabled" not in s.attrib for s in suites.values())


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


@pytest.mark.parametrize("rid,kind", [("BASE-LAT-01@store-1", "error"), ("BASE-LAT-02@store-1", "inconclusive")])
def test_error_and_inconclusive_are_errors_with_their_type(non_conformant, rid, kind):
    case = _cases(render_junit(non_conformant))[rid]
    error = case.find("error")
    assert error is not None and error.get("type") == kind
    assert case.find("failure") is None


def test_skip_and_not_run_are_skipped_with_a_reason(non_conformant):
    cases = _cases(render_junit(non_conformant))
    assert cases["BASE-SEC-01@store-1"].find("skipped").get("message") == "no TLS endpoint declared for this site"
    not_run = cases["BASE-FOO-01@store-1"].find("skipped")
    assert not_run is not None and "not run" in not_run.get("message")


def test_waived_passes_and_names_the_waiver(non_conformant):
    case = _cases(render_junit(non_conformant))["BASE-FUN-04@store-1"]
    assert case.find("failure") is None and case.find("error") is None and case.find("skipped") is None
    out = case.find("system-out").text
    assert "WAIVED" in out and "jane.doe@example.com" in out and "vendor fix due in 4.2" in out


def test_advisory_fail_passes_with_advisory_output_when_not_strict(non_conformant):
    case = _cases(render_junit(non_conformant))["BASE-FUN-03@store-1"]
    assert case.find("failure") is None
    assert case.find("system-out").text.startswith("ADVISORY: BASE-FUN-03 store-1: latency = 812 ms")


def test_advisory_fail_is_a_failure_when_strict(non_conformant):
    non_conformant["options"]["strict"] = True
    root = ET.fromstring(render_junit(non_conformant))
    case = _cases(render_junit(non_conformant))["BASE-FUN-03@store-1"]
    assert case.find("failure") is not None
    assert root.get("failures") == "2"


def test_counts_on_the_suite(non_conformant):
    suite = next(ET.fromstring(render_junit(non_conformant)).iter("testsuite"))
    counts = tuple(suite.get(k) for k in ("tests", "failures", "errors", "skipped"))
    assert counts == ("8", "1", "2", "2")


def test_tiny_durations_keep_schema_time_format(conformant, schema):
    for r in conformant["requirements"]:
        r["duration"] = 1e-05  # str(float) would write "1e-05", which SUREFIRE_TIME rejects
    xml = render_junit(conformant)
    schema.validate(xml)
    assert "e-05" not in xml


def test_tolerates_missing_optional_keys(schema):
    minimal = {"schema": "edge-conformance/results/v1", "verdict": "incomplete",
               "requirements": [{"id": "X-1", "site": "s", "level": "must", "status": "error",
                                 "expect": "p99 <= 1 ms", "message": "boom", "measured": {}}]}
    xml = render_junit(minimal)
    schema.validate(xml)
    assert _cases(xml)["X-1@s"].find("error") is not None


@pytest.mark.parametrize("status", ["error", "inconclusive"])
def test_undecided_should_is_advisory_unless_strict(status, schema):
    from .conftest import req, results

    r = req("BASE-X-01", status=status, level="should", message=f"BASE-X-01 store-1: {status} here")
    lenient = render_junit(results([r], "conformant"))
    schema.validate(lenient)
    case = _cases(lenient)["BASE-X-01@store-1"]
    assert case.find("error") is None and case.find("failure") is None
    assert case.find("system-out").text.startswith(f"ADVISORY ({status}): BASE-X-01 store-1")
    strict = render_junit(results([r], "incomplete", options={"strict": True}))
    assert _cases(strict)["BASE-X-01@store-1"].find("error").get("type") == status
