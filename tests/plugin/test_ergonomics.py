"""pytest ergonomics: defaults in pytest.ini, a missing --edge-profile named, --collect-only writes nothing."""

from __future__ import annotations

import json
import textwrap

import yaml

from tests.plugin.sandbox import CHECKS, FAST, SITES, req


def _files(pytester):
    (pytester.path / "profile.yaml").write_text(yaml.safe_dump(
        {"id": "mine", "version": "1", "title": "Mine", "requirements": [req("REQ-1", "pass")]}, sort_keys=False))
    (pytester.path / "target.yaml").write_text(yaml.safe_dump({"name": "lab", "sites": SITES}, sort_keys=False))
    test_file = pytester.path / "test_mine.py"
    test_file.write_text(textwrap.dedent(CHECKS))
    return test_file


def test_defaults_come_from_pytest_ini_relative_to_it_and_the_command_line_wins(pytester, monkeypatch):
    test_file = _files(pytester)
    pytester.makeini("""
        [pytest]
        edge_profile = profile.yaml
        edge_target = target.yaml
        edge_out = out
        edge_site = site-a
        edge_strict = true
    """)
    sub = pytester.path / "deeper" / "down"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)  # relative paths are the ini file's, wherever pytest runs from
    result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, "--edge-no-reports", str(test_file))
    data = json.loads((pytester.path / "out" / "results.json").read_text())
    assert result.ret == 0, result.stdout.str()
    assert data["verdict"] == "conformant"
    assert data["options"]["strict"] is True and data["scope"]["sites"] == ["site-a"]

    other = pytester.path / "other"
    result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, "--edge-no-reports", "--edge-out", str(other),
                                          str(test_file))
    assert result.ret == 0 and (other / "results.json").exists()


def test_a_bad_ini_value_is_named_with_its_file_and_key(pytester):
    test_file = _files(pytester)
    ini = pytester.makeini("""
        [pytest]
        edge_profile = profile.yaml
        edge_load_workers = many
    """)
    result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, str(test_file))
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines([f"*{ini}: edge_load_workers: expected a whole number, got 'many'*"])


def test_a_target_without_a_profile_names_what_is_missing(pytester):
    test_file = _files(pytester)
    result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, "--edge-target", "target.yaml", str(test_file))
    assert result.ret == 4, result.stdout.str()
    result.stderr.fnmatch_lines(["*--edge-target needs --edge-profile*edge-conformance profiles list*"])


def test_collect_only_lists_the_cases_and_writes_nothing(pytester):
    test_file = _files(pytester)
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, "--edge-profile", "profile.yaml",
                                          "--edge-target", "target.yaml", "--edge-out", str(out), "--collect-only",
                                          "-q", str(test_file))
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_x[[]REQ-1@site-a[]]*",
                                 "*--collect-only: nothing measured and nothing written (1 requirement@site cases*"])
    assert not out.exists()


def test_without_an_output_directory_the_run_goes_to_edge_results_and_latest_follows(pytester):
    test_file = _files(pytester)
    seen: set = set()
    for _ in range(2):
        result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, "--edge-profile", "profile.yaml",
                                              "--edge-target", "target.yaml", "--edge-no-reports", str(test_file))
        assert result.ret == 0, result.stdout.str()
        runs = {p for p in (pytester.path / "edge-results").iterdir() if p.name != "latest"}
        (newest,) = runs - seen  # the run that just ended
        seen = runs
        latest = pytester.path / "edge-results" / "latest"
        assert latest.resolve() == newest.resolve() and (latest / "results.json").is_file()
    assert len(seen) == 2


def test_an_earlier_runs_reports_are_gone_once_the_new_run_starts(pytester):
    """results.json is the new run's from its start; a run killed before it writes its reports must not
    leave the earlier run's beside it. The check itself looks into the output directory mid-run."""
    _files(pytester)
    out = pytester.path / "out"
    out.mkdir()
    for name in ("junit.xml", "summary.md", "report.html"):
        (out / name).write_text("an earlier run's")
    (out / "mine.txt").write_text("the user's")
    check = pytester.path / "test_look.py"
    check.write_text(textwrap.dedent(f"""
        import pathlib
        import pytest

        @pytest.mark.edge_check("custom.thing")
        def test_x(edge):
            out = pathlib.Path({str(out)!r})
            edge.note("present: " + ",".join(sorted(p.name for p in out.iterdir())))
            edge.record("value", 2)
    """))
    args = ["-p", "no:locust", *FAST, "--edge-profile", "profile.yaml", "--edge-target", "target.yaml",
            "--edge-out", str(out)]
    assert pytester.runpytest_inprocess(*args, "--collect-only", str(check)).ret == 0
    assert (out / "junit.xml").read_text() == "an earlier run's"  # --collect-only touches nothing
    assert pytester.runpytest_inprocess(*args, str(check)).ret == 0
    notes = json.loads((out / "results.json").read_text())["requirements"][0]["notes"]
    assert any(n.startswith("present: ") and "junit.xml" not in n and "mine.txt" in n for n in notes), notes
