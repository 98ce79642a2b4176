"""Every report says, on the fleet entry of a sampled quorum requirement, that it was sampled and at what
confidence; the sites outside the sample are told apart from the results that did not run."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from conformance.engine.record import RunRecord
from conformance.model import results as R
from conformance.report.html import render_html
from conformance.report.junit import render_junit
from conformance.report.markdown import render_markdown
from conformance.report.terminal import render_terminal

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
POPULATION, SAMPLE = 20, 10
SUMMARY = "sampled 10 of 20 sites; pass share >= 74.11 % at 95 % confidence"


def _results(tmp_path, fail: int = 0) -> dict:
    """A finished run of one sampled quorum (sites: 70%, sample: 50%) over 20 stores: 10 measured."""
    rec = RunRecord(tmp_path / "results.json", "run-1", [{"id": "fleet-prof", "version": "1"}], None,
                    {"strict": False})
    rec.data["scope"] = {"narrowed_by": [], "changed_by": [], "full": True}
    base = {"profile": "fleet-prof", "id": "SMP-01", "title": "stores up", "level": "must", "check": "functional.http",
            "suite": "functional", "expect": "status == 200", "measured": {}, "advisory": False}
    for i in range(POPULATION):
        site = f"store-{i:02d}"
        sampled = i < SAMPLE
        entry = {**base, "site": site, "role": "edge", "status": "not-run", "fleet_member": True, "sampled": sampled,
                 "ended": {"how": "not-run", "reason": "not run" if sampled else
                           "not in the sample: 10 of 20 sites (sample: 50 %)"},
                 "message": f"SMP-01@{site}: " + ("not run" if sampled else
                                                   "not in the sample: 10 of 20 sites (sample: 50 %)")}
        rec.plan(entry)
    rec.plan({**base, "site": R.FLEET_SITE, "role": R.FLEET_SITE, "status": "not-run", "quorum": 0.7,
              "message": "SMP-01@fleet: not run", "ended": {"how": "not-run", "reason": "not run"},
              "expect": "sites_passing >= 70 % (each site: status == 200; sampled: 50 % of the sites, judged at "
                        "95 % confidence)",
              "sampling": {"size": "50%", "confidence": 0.95}})
    for i in range(SAMPLE):
        failed = i < fail
        rec.update("fleet-prof", "SMP-01", f"store-{i:02d}", status="fail" if failed else "pass",
                   ended={"how": "measured"}, measured={"status": {"value": 503 if failed else 200, "unit": ""}},
                   message=f"SMP-01 store-{i:02d}: status = {503 if failed else 200}")
    rec.finish("finished")
    return rec.data


def test_the_fleet_entry_is_judged_on_the_sample(tmp_path):
    results = _results(tmp_path)
    fleet = results["requirements"][-1]
    assert fleet["status"] == "pass" and results["verdict"] == R.CONFORMANT
    assert fleet["sampling"]["sample"] == SAMPLE and fleet["sampling"]["population"] == POPULATION
    assert results["counts"]["not-run"] == POPULATION - SAMPLE


def test_markdown(tmp_path):
    md = render_markdown(_results(tmp_path))
    assert "## Sampled fleet requirements (1)" in md
    assert f"- **SMP-01@fleet** (must, pass): {SUMMARY}; quorum 70 %; 10 sites not in the sample" in md
    failing = render_markdown(_results(tmp_path, fail=7))
    assert re.search(r"- \*\*SMP-01@fleet\*\* \(must, fail\): .*\n  - measured: .*\n  - sampled 10 of 20 sites; "
                     r"pass share <= \d+(\.\d+)? % at 95 % confidence", failing)


def test_terminal(tmp_path):
    out = render_terminal(_results(tmp_path), color=False)
    assert f"  SMP-01@fleet pass: {SUMMARY} (10 sites not in the sample, not measured by design)" in out
    assert "not in the sample: 10 of 20" not in out  # the ten sites outside are not listed one by one
    assert out.count("(not in the sample)") == POPULATION - SAMPLE  # the table's measured column says why
    row = next(line for line in out.splitlines() if line.startswith("SMP-01@fleet"))
    assert "sampled 10 of 20 sites" in row


def test_an_interrupted_note_does_not_count_the_sites_outside_the_sample(tmp_path):
    results = _results(tmp_path)
    results["state"] = "interrupted"
    assert "interrupted: 0 requirement checks did not run" in render_terminal(results, color=False)


def test_junit(tmp_path):
    xml = render_junit(_results(tmp_path, fail=7))
    xmlschema.XMLSchema(str(XSD)).validate(xml)
    root = ET.fromstring(xml)
    fleet = next(c for c in root.iter("testcase") if c.get("name").startswith("SMP-01@fleet"))
    body = "".join(fleet.itertext())
    assert "sampling: sampled 10 of 20 sites; pass share <= " in body and "at 95 % confidence" in body
    outside = next(c for c in root.iter("testcase") if c.get("name").startswith("SMP-01@store-19"))
    assert outside.find("skipped").get("message") == "SMP-01@store-19: not in the sample: 10 of 20 sites (sample: 50 %)"


def test_html(tmp_path):
    page = render_html(_results(tmp_path))
    assert "Sampled fleet requirements (1)" in page
    assert f"<strong>{SUMMARY.replace('>', '&gt;')}</strong>" in page
    assert page.count("not in the sample</span>") == POPULATION - SAMPLE


def test_a_hostile_sampling_record_renders_nothing_of_it(tmp_path):
    results = _results(tmp_path)
    fleet = results["requirements"][-1]
    fleet["sampling"] = {**fleet["sampling"], "sample": "<script>alert(1)</script>", "lower": "|x|"}
    for render in (render_markdown, lambda r: render_terminal(r, color=False), render_junit, render_html):
        text = render(copy.deepcopy(results))
        assert "<script>alert" not in text and "sampled 10 of 20 sites;" not in text


@pytest.mark.parametrize("status,phrase", [("inconclusive", "pass share between 74.11 % and 100 %"),
                                           ("not-run", "pass share between 74.11 % and 100 %")])
def test_an_undecided_fleet_says_both_bounds(tmp_path, status, phrase):
    results = _results(tmp_path)
    results["requirements"][-1]["status"] = status
    assert phrase in render_markdown(results)
