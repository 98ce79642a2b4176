"""Verdict integrity (issue 14): a run narrowed by its options, or one whose musts could not be measured,
is never conformant; its bundle does not verify as a full run; --rerun-failed replays the scope."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers.certify import certify_env, write_token_target
from tests.helpers.cli import CLI

PROFILE = """\
id: scope-test
version: "1"
title: Scope test
requirements:
  - {id: S-HEALTH, title: healthy, level: must, check: functional.http, params: {path: /health}, expect: status == 200}
  - {id: S-AGAIN, title: healthy again, level: must, check: functional.http, params: {path: /health},
     expect: status == 200}
"""


def _cli(work, *args, timeout=180):
    return subprocess.run([*CLI, *args], cwd=work, env=certify_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def work(tmp_path, server):
    _, url = server
    (tmp_path / "p.yaml").write_text(PROFILE)
    write_token_target(tmp_path / "t.yaml", url)
    return tmp_path


def test_a_narrowed_run_is_incomplete_and_its_bundle_is_partial(work):
    proc = _cli(work, "run", "-p", "p.yaml", "-t", "t.yaml", "-r", "S-HEALTH", "-o", "run1", "--bundle")
    assert proc.returncode == 3, proc.stdout + proc.stderr  # incomplete: S-AGAIN was left out
    data = json.loads((work / "run1" / "results.json").read_text())
    statuses = {r["id"]: r["status"] for r in data["requirements"]}
    assert statuses == {"S-HEALTH": "pass", "S-AGAIN": "not-measured"}
    assert data["verdict"] == "incomplete"
    assert data["scope"]["full"] is False and data["scope"]["narrowed_by"] == ["--requirement S-HEALTH"]
    bundle = next((work / "run1").glob("*.tar.gz"))

    verified = _cli(work, "verify", str(bundle))
    assert verified.returncode == 3, verified.stdout + verified.stderr
    assert "OK, PARTIAL RUN" in verified.stdout and "narrowed by --requirement S-HEALTH" in verified.stdout
    assert "verdict incomplete holds" in verified.stdout
    assert _cli(work, "verify", str(bundle), "--accept-partial").returncode == 0


def test_a_full_run_verifies_with_exit_0(work):
    proc = _cli(work, "run", "-p", "p.yaml", "-t", "t.yaml", "-o", "run1", "--bundle")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bundle = next((work / "run1").glob("*.tar.gz"))
    verified = _cli(work, "verify", str(bundle), "--json")
    assert verified.returncode == 0, verified.stdout
    out = json.loads(verified.stdout)
    assert out["ok"] is True and out["partial"] is False and out["verdict"] == "conformant"


def test_an_api_only_target_against_the_baseline_is_incomplete_and_names_what_to_add(work):
    """The issue's first finding: a real target with only an `api` endpoint came out CONFORMANT while
    20 of its musts were never measured. Only the functional checks of the api are run here (-r keeps it
    quick), and the rest of the baseline must show as not measured, with what would measure it."""
    proc = _cli(work, "run", "-p", "edge-baseline", "-t", "t.yaml", "-o", "run1", "--suite", "security",
                "--suite", "footprint", timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    data = json.loads((work / "run1" / "results.json").read_text())
    musts = [r for r in data["requirements"] if r["level"] == "must"]
    unmeasured = [r for r in musts if r["status"] == "not-measured"]
    assert unmeasured and data["verdict"] == "incomplete"
    assert not [r for r in musts if r["status"] == "pass" and not r["measured"]]  # no pass without a measurement
    for r in unmeasured:
        assert r["message"].startswith(f"{r['id']} {r['site']}: not measured: "), r["message"]
    # every host-based must says what to add (hosts), every narrowed one how to run it
    hosts = [r for r in unmeasured if r["suite"] in ("security", "footprint") and "host" in r["ended"]["reason"]]
    assert hosts and all(r["ended"].get("remedy") for r in hosts), hosts[:2]
    left_out = [r for r in unmeasured if r["ended"]["reason"].startswith("suite ")]
    assert left_out and all("--suite" in r["ended"]["remedy"] for r in left_out)
