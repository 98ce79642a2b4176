"""compare and the OpenMetrics export know the v2 statuses, and still read v1's skip."""

from __future__ import annotations

import copy

import pytest

from conformance.certify import compare as C
from conformance.report.openmetrics import render_openmetrics

from tests.report.samples import not_measured, req, results


def _status_rows(base: dict, new: dict) -> dict[str, tuple[str, str]]:
    return {r.label: (r.kind, r.change) for r in C.compare_runs(base, new).rows if r.metric is None}


@pytest.mark.parametrize("before,after,kind", [
    ("pass", "not-measured", "worse"),  # measured before, not now: it cannot show it still holds
    ("not-applicable", "not-measured", "worse"),
    ("not-measured", "pass", "better"),
    ("not-measured", "fail", "worse"),
    ("pass", "not-applicable", "better"),  # not a regression: it no longer applies to the site
    ("skip", "not-measured", "changed"),  # v1's skip split in two: words, not a result, changed
    ("skip", "not-applicable", "changed"),
    ("not-measured", "skip", "changed"),
    ("skip", "fail", "worse"),
])
def test_status_moves(before, after, kind):
    base = results([req("A", status=before)], "conformant")
    new = results([req("A", status=after)], "conformant")
    got = _status_rows(base, new)["A@store-1"]
    assert got[0] == kind
    assert (kind == "worse") == any(r.regression for r in C.compare_runs(base, new).rows)


def test_a_partial_run_is_noted(partial, conformant):
    c = C.compare_runs(conformant, partial)
    assert "the new run was partial (narrowed by --suite functional security): what it left out was not measured" \
        in c.notes
    assert "the new run was changed by --defect store-1:slow-path, --waivers waivers.yaml" in c.notes
    assert not [n for n in c.notes if n.startswith("the base run")]
    assert "- the new run was partial" in C.render_markdown(c)


def test_old_results_compare_without_scope_notes(legacy_v1):
    c = C.compare_runs(legacy_v1, copy.deepcopy(legacy_v1))
    assert not c.regressions and not [n for n in c.notes if "partial" in n]


def _metric(text: str, name: str) -> dict[str, int]:
    return {line.split('"')[1]: int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(name + "{")}


def test_openmetrics_counts_every_status(non_conformant):
    text = render_openmetrics(non_conformant)
    assert _metric(text, "edge_conformance_results") == non_conformant["counts"]
    assert "edge_conformance_partial_run 0\n" in text and text.endswith("# EOF\n")


def test_openmetrics_partial_run(partial):
    text = render_openmetrics(partial)
    assert "edge_conformance_partial_run 1\n" in text
    assert _metric(text, "edge_conformance_results")["not-measured"] == 15


def test_openmetrics_old_file_keeps_its_skip(legacy_v1):
    text = render_openmetrics(legacy_v1)
    counts = _metric(text, "edge_conformance_results")
    assert counts["skip"] == 1 and counts["pass"] == 1 and counts["not-measured"] == 0
    assert "edge_conformance_partial_run" not in text  # scope not recorded: not claimed either way


def test_openmetrics_not_measured_is_not_passed():
    text = render_openmetrics(results([not_measured("A"), req("B")], "incomplete"))
    passed = [line for line in text.splitlines() if line.startswith("edge_conformance_requirement_passed")]
    assert passed == ['edge_conformance_requirement_passed{id="A",site="store-1",level="must"} 0',
                      'edge_conformance_requirement_passed{id="B",site="store-1",level="must"} 1']
