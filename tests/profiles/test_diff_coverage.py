"""`profiles diff A B` and `profiles coverage [REF...]` (conformance/model/profile_diff.py, coverage.py)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from conformance.cli import main
from conformance.model.coverage import coverage, scan_file, shipped_implementations
from conformance.model.profile import list_profiles, load_profile
from conformance.model.profile_diff import diff_profiles, render

V1 = """\
id: shop
version: "1"
title: Shop
extends: edge-baseline
requirements:
  - id: S-1
    title: stays up
    level: must
    check: functional.http
    params: {path: /health, timeout: 5 s}
    expect: status == 200
    source: "assumed: test"
  - id: S-2
    title: fast
    level: should
    check: latency.request
    applies_to: edge
    params: {duration: 3 s}
    expect: p99 <= 50 ms
  - id: S-3
    title: goes away
    level: may
    check: functional.tcp
    expect: connected == true
"""

V2 = """\
id: shop
version: "2"
title: Shop
extends: edge-baseline
requirements:
  - {id: BASE-FUN-03, disabled: true}
  - id: S-1
    title: stays up
    level: must
    check: functional.api
    params: {path: /health, timeout: 5 s}
    expect: status == 200
    source: "assumed: test"
  - id: S-2
    title: fast
    level: must
    check: latency.request
    applies_to: [edge, regional]
    params: {duration: 3000 ms, rate: 100}
    expect: p99 <= 20 ms
    sites: "95%"
  - id: S-4
    title: new
    level: must
    check: fleet.registry
    applies_to: central
    expect: registered_ratio >= 100 %
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_diff_two_versions_lists_added_removed_and_changed(tmp_path):
    a, b = _write(tmp_path, "v1.yaml", V1), _write(tmp_path, "v2.yaml", V2)
    result = CliRunner().invoke(main, ["profiles", "diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "version: 1 -> 2" in out
    assert "+ S-4 [must] fleet.registry: registered_ratio >= 100 %  (central)  new" in out
    assert "- S-3 [may] functional.tcp" in out
    assert "- BASE-FUN-03 [should]" in out  # a disabled inherited requirement is removed
    assert "~ S-1 stays up" in out and "check: functional.http -> functional.api" in out
    s2 = out[out.index("~ S-2"):]
    assert "level: should -> must" in s2
    assert "expect: p99 <= 50 ms -> p99 <= 20 ms" in s2
    assert "params.rate: 200 (default) -> 100" in s2
    assert "params.duration" not in s2  # 3 s and 3000 ms are the same
    assert "applies_to: [edge] -> [edge, regional]" in s2
    assert "sites: - -> 95%" in s2
    assert "1 added, 2 removed, 2 changed, 17 unchanged" in out


def test_diff_of_a_profile_with_itself_and_two_shipped_profiles():
    p = load_profile("retail")
    d = diff_profiles(p, p)
    assert d.identical and "no differences" in render(d)
    result = CliRunner().invoke(main, ["profiles", "diff", "retail", "ucpe"])
    assert result.exit_code == 0
    assert "~ BASE-FTP-01" in result.output and "level: should -> must" in result.output
    assert "+ UCPE-RES-01" in result.output and "- RTL-RES-01" in result.output


def test_diff_of_a_bad_profile_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["profiles", "diff", "retail", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2


def test_every_shipped_requirement_is_covered_by_a_suite_test():
    impls = shipped_implementations()
    profiles = [load_profile(str(p)) for p in list_profiles()]
    rows = coverage(profiles, impls)
    missing = [f"{r.profile} {r.requirement.id} ({r.requirement.check})" for r in rows if not r.covered]
    assert not missing, missing
    assert len(rows) == sum(len(p.requirements) for p in profiles)
    result = CliRunner().invoke(main, ["profiles", "coverage"])
    assert result.exit_code == 0, result.output
    assert "0 not covered" in result.output
    assert "suites/data/test_data.py::test_privacy" in result.output
    assert "suites/fleet/test_fleet.py::test_config_push" in result.output


def test_coverage_fails_on_a_check_no_suite_implements(tmp_path):
    profile = _write(tmp_path, "custom.yaml", """\
id: custom
version: "1"
title: Custom
requirements:
  - {id: C-1, title: up, level: must, check: functional.tcp, expect: connected == true}
  - {id: C-2, title: queue, level: must, check: custom.queue_depth, expect: depth <= 10}
""")
    result = CliRunner().invoke(main, ["profiles", "coverage", str(profile)])
    assert result.exit_code == 1
    assert "NOT COVERED: no suite test implements custom.queue_depth" in result.output
    assert "1 requirements are not covered by any suite test: custom C-2 (custom.queue_depth)" in result.output
    tests = _write(tmp_path, "test_mine.py", """\
import pytest

@pytest.mark.edge_check("custom.queue_depth")
def test_queue_depth(edge):
    edge.record("depth", 3)
""")
    result = CliRunner().invoke(main, ["profiles", "coverage", str(profile), "--tests", str(tests)])
    assert result.exit_code == 0, result.output
    assert "test_mine.py::test_queue_depth" in result.output


def test_scan_finds_methods_module_marks_and_ignores_helpers(tmp_path):
    path = _write(tmp_path, "test_x.py", """\
import pytest
from pytest import mark

pytestmark = [pytest.mark.slow, pytest.mark.edge_check("custom.everywhere")]

@mark.edge_check("custom.a")
def test_a(edge):
    pass

@pytest.mark.edge_check("custom.helper")
def helper(edge):  # not collected by pytest: not an implementation
    pass

class TestGroup:
    @pytest.mark.edge_check("custom.b")
    def test_b(self, edge):
        pass
""")
    found = {(i.check, i.function) for i in scan_file(path, "test_x.py")}
    assert ("custom.a", "test_a") in found
    assert ("custom.b", "TestGroup::test_b") in found
    assert ("custom.everywhere", "test_a") in found
    assert not any(c == "custom.helper" for c, _ in found)


def test_a_broken_suite_module_is_a_located_error(tmp_path):
    bad = _write(tmp_path, "test_bad.py", "def test_x(:\n")
    result = CliRunner().invoke(main, ["profiles", "coverage", "edge-baseline", "--tests", str(bad)])
    assert result.exit_code == 2
    assert "test_bad.py:1: cannot read suite module" in result.output


def test_diff_shows_changed_citations_and_basis():
    full = CliRunner().invoke(main, ["profiles", "diff", "retail", "retail-full"])
    assert full.exit_code == 0, full.output
    s1 = full.output[full.output.index("~ RTL-RES-01"):]
    s1 = s1[:s1.index("~ RTL-RES-02")]
    assert "basis: changed" in s1 and "rationale: changed" in s1 and "params.duration: 3 s -> 2 h" in s1
    assert "cites:" not in s1  # the same citations
