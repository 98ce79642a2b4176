"""`edge-conformance run` end to end, against loopback servers started by the test."""

from __future__ import annotations

import importlib.util
import json
import time
import xml.etree.ElementTree as ET

import pytest

from tests.helpers.cli import run_cli, write_profile, write_target
from tests.helpers.results import validate_results

HAS_WRITER = importlib.util.find_spec("conformance.report.writer") is not None


def test_run_pass_and_fail(tmp_path, http_url):
    profile = write_profile(tmp_path / "p.yaml", [
        "{id: R-OK, title: healthy, level: must, check: functional.http, params: {path: /health, timeout: 5 s}, "
        "expect: status == 200 and latency <= 5 s}",
        "{id: R-BAD, title: missing page, level: must, check: functional.http, params: {path: /missing}, "
        "expect: status == 200}",
        "{id: R-PORT, title: port open, level: must, check: functional.tcp, expect: connected == true}",
    ])
    target = write_target(tmp_path / "t.yaml", {"api": http_url})
    out = tmp_path / "out"
    proc = run_cli("run", "--profile", profile, "--target", target, "--out", out, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    validate_results(data)
    status = {r["id"]: r for r in data["requirements"]}
    assert status["R-OK"]["status"] == "pass"
    assert status["R-PORT"]["status"] == "pass"
    bad = status["R-BAD"]
    assert bad["status"] == "fail" and bad["site"] == "store-1"
    assert bad["message"].startswith("R-BAD store-1: status = 404, expected == 200")
    assert bad["measured"]["status"] == {"value": 404.0, "unit": ""}
    assert status["R-OK"]["measured"]["latency"]["unit"] == "ms"
    assert data["verdict"] == "non-conformant" and data["state"] == "finished"
    assert data["profiles"][0]["id"] == "test-profile"
    assert data["target"]["sites"][0]["endpoints"]["api"] == http_url
    if not HAS_WRITER:
        pytest.skip("conformance.report.writer is not there yet: summary.md and junit.xml not checked")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "R-BAD" in summary and "non-conformant" in summary.lower()
    suites = ET.parse(out / "junit.xml").getroot()
    failed = [tc.get("name") for tc in suites.iter("testcase") if tc.find("failure") is not None]
    assert len(failed) == 1 and failed[0].startswith("R-BAD@store-1"), failed
    assert (out / "report.html").is_file()


def test_run_conformant_exit_0(tmp_path, http_url):
    profile = write_profile(tmp_path / "p.yaml", [
        "{id: R-OK, title: healthy, level: must, check: functional.http, params: {path: /health}, "
        "expect: status == 200}",
        "{id: R-SHOULD, title: advisory, level: should, check: functional.http, params: {path: /nope}, "
        "expect: status == 200}",
    ])
    target = write_target(tmp_path / "t.yaml", {"api": http_url})
    proc = run_cli("run", "-p", profile, "-t", target, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert data["verdict"] == "conformant"
    should = next(r for r in data["requirements"] if r["id"] == "R-SHOULD")
    assert should["status"] == "fail" and should["advisory"] is True
    # --strict makes the should failure count
    proc = run_cli("run", "-p", profile, "-t", target, "-o", tmp_path / "strict", "--strict")
    assert proc.returncode == 1


def test_run_without_out_writes_under_edge_results_and_latest_names_it(tmp_path, http_url):
    profile = write_profile(tmp_path / "p.yaml", [
        "{id: R-OK, title: healthy, level: must, check: functional.http, params: {path: /health}, "
        "expect: status == 200}"])
    target = write_target(tmp_path / "t.yaml", {"api": http_url})
    proc = run_cli("run", "-p", profile, "-t", target, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latest = tmp_path / "edge-results" / "latest"
    data = json.loads((latest / "results.json").read_text(encoding="utf-8"))
    assert latest.is_symlink() and latest.resolve().name == data["run_id"]
    assert run_cli("report", "edge-results/latest", "--format", "md", cwd=tmp_path).returncode == 0


def test_requirement_option_checks_only_those_ids(tmp_path, http_url):
    profile = write_profile(tmp_path / "p.yaml", [
        "{id: R-OK, title: healthy, level: must, check: functional.http, params: {path: /health}, "
        "expect: status == 200}",
        "{id: R-BAD, title: missing page, level: must, check: functional.http, params: {path: /nope}, "
        "expect: status == 200}",
    ])
    target = write_target(tmp_path / "t.yaml", {"api": http_url})
    proc = run_cli("run", "-p", profile, "-t", target, "-o", tmp_path / "out", "--requirement", "R-OK")
    # R-BAD was not checked: not failed, and never a pass either; the run is partial, so incomplete
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "PARTIAL RUN: narrowed by --requirement R-OK" in proc.stdout
    data = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    validate_results(data)
    status = {r["id"]: (r["status"], r["message"]) for r in data["requirements"]}
    assert status["R-OK"][0] == "pass"
    assert status["R-BAD"] == ("not-measured", "R-BAD store-1: not measured: left out of this run (--requirement "
                               "R-OK); to measure it: run it without --requirement")  # shown, not run
    assert data["options"]["requirements"] == ["R-OK"]
    proc = run_cli("run", "-p", profile, "-t", target, "-o", tmp_path / "typo", "-r", "R-OKK")
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert '--requirement: no requirement "R-OKK" in' in proc.stderr and 'did you mean "R-OK"' in proc.stderr
    assert not (tmp_path / "typo" / "results.json").exists()  # refused before anything ran


@pytest.mark.parametrize("kind", ["refused", "hanging"])
def test_unreachable_endpoint_is_an_error_within_the_timeout(tmp_path, kind, request):
    url = request.getfixturevalue(f"{kind}_url")
    profile = write_profile(tmp_path / "p.yaml", [
        "{id: R-DOWN, title: answers, level: must, check: functional.http, params: {timeout: 2 s}, "
        "expect: status == 200}",
    ])
    target = write_target(tmp_path / "t.yaml", {"api": url})
    started = time.monotonic()
    proc = run_cli("run", "--profile", profile, "--target", target, "--out", tmp_path / "out", timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert elapsed < 20, f"the run took {elapsed:.1f} s with a 2 s timeout"
    data = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    validate_results(data)
    (entry,) = data["requirements"]
    assert entry["status"] == "error", entry
    assert entry["message"].startswith("R-DOWN store-1: could not measure")
    assert data["verdict"] == "incomplete"
    if kind == "hanging":
        assert "2 s" in entry["message"] or "timed out" in entry["message"]


def test_bad_target_and_missing_files_exit_2(tmp_path):
    proc = run_cli("run", "--target", tmp_path / "absent.yaml", "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("absent.yaml: file not found")
    assert not (tmp_path / "out").exists()
    proc = run_cli("run", "--profile", "edge-basline", "--target", tmp_path / "absent.yaml")
    assert proc.returncode == 2 and "--profile" in proc.stderr and 'did you mean "edge-baseline"' in proc.stderr
