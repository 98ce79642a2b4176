"""run --rerun-failed: only what did not pass runs again; the results are merged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance.model.errors import ConfigError

from conformance.engine import rerun
from conformance.engine.runner import RunOptions
from conformance.model.paths import schemas_dir

from tests.helpers.certify import certify_env, cli, write_token_target
from tests.helpers.cli import CLI

PROFILE = """\
id: rerun-test
version: "1"
title: Rerun test
requirements:
  - {id: R-OK, title: healthy, level: must, check: functional.http, params: {path: /health}, expect: status == 200}
  - {id: R-FLAKY, title: flaky, level: must, check: functional.http, params: {path: /flaky}, expect: status == 200}
"""

# runner.run calls pytest.main: run it in a child, as the CLI would
RERUN = """
import sys
from pathlib import Path
from conformance.engine.rerun import run_rerun
from conformance.engine.runner import RunOptions
outcome = run_rerun(sys.argv[1], RunOptions(out=Path(sys.argv[2])))
sys.exit(outcome.exit_code)
"""


def _validate(data):
    import jsonschema

    schema = json.loads((schemas_dir() / "results.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.fixture
def first_run(tmp_path, server):
    state, url = server
    state.flaky_ok = False
    (tmp_path / "p.yaml").write_text(PROFILE)
    write_token_target(tmp_path / "t.yaml", url)
    proc = subprocess.run([*CLI, "run", "-p", "p.yaml", "-t", "t.yaml", "-o", "run1"], cwd=tmp_path,
                          env=certify_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    yield tmp_path, state
    state.flaky_ok = False


def test_select_and_merge_are_pure():
    prev = {"run_id": "a", "started": "2026-11-27T00:00:00Z", "options": {"strict": False},
            "requirements": [
                {"profile": "p", "id": "R1", "site": "s", "status": "pass", "level": "must"},
                {"profile": "p", "id": "R2", "site": "s", "status": "fail", "level": "must"},
                {"profile": "p", "id": "R3", "site": "s", "status": "not-run", "level": "should"},
                {"profile": "p", "id": "R4", "site": "s", "status": "waived", "level": "must"}],
            "waivers": {"applied": [{"id": "R4", "site": "s"}], "expired": []}}
    assert rerun.select(prev) == ["R2@s", "R3@s"]
    new = {"run_id": "b", "started": "2026-11-28T00:00:00Z", "finished": "2026-11-28T00:01:00Z",
           "state": "finished", "options": {"only": ["R2@s", "R3@s"]},
           "requirements": [{"profile": "p", "id": "R2", "site": "s", "status": "pass", "level": "must"},
                            {"profile": "p", "id": "R3", "site": "s", "status": "fail", "level": "should"}],
           "waivers": {"applied": [], "expired": []}}
    merged = rerun.merge(prev, new, ["R2@s", "R3@s"])
    assert [r["status"] for r in merged["requirements"]] == ["pass", "pass", "fail", "waived"]
    assert merged["verdict"] == "conformant" and merged["counts"]["fail"] == 1
    assert merged["run_id"] == "b" and merged["started"] == prev["started"] and merged["options"] == prev["options"]
    note = merged["reruns"][0]
    assert note["of"] == "a" and [(e["id"], e["before"], e["after"]) for e in note["entries"]] == [
        ("R2", "fail", "pass"), ("R3", "not-run", "fail")]
    assert merged["waivers"]["applied"] == [{"id": "R4", "site": "s"}]
    assert prev["requirements"][1]["status"] == "fail"  # the previous record is not changed


def test_edge_only_typo_is_refused(first_run):
    work, _ = first_run
    typo = subprocess.run([sys.executable, "-c", "import sys; from conformance.engine.runner import RunOptions, run;"
                           "sys.exit(run(RunOptions(profiles=['p.yaml'], target='t.yaml', out='x',"
                           " extra_pytest_args=['--edge-only', 'R-FLAKEY@store-1'])).exit_code)"],
                          cwd=work, env=certify_env(), capture_output=True, text=True, timeout=120)
    assert typo.returncode == 2
    assert "--edge-only: no requirement@site R-FLAKEY@store-1" in typo.stdout + typo.stderr


def test_rerun_runs_only_the_failed_and_merges(first_run):
    work, state = first_run
    before = json.loads((work / "run1" / "results.json").read_text())
    state.flaky_ok = True  # the target was fixed
    proc = subprocess.run([sys.executable, "-c", RERUN, "run1/results.json", "run2"], cwd=work, env=certify_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    merged = json.loads((work / "run2" / "results.json").read_text())
    partial = json.loads((work / "run2" / rerun.PARTIAL_NAME).read_text())
    _validate(merged)
    _validate(partial)
    # only the failed one ran; the re-run's own record shows the rest as left out
    assert {r["id"]: r["status"] for r in partial["requirements"]} == {"R-OK": "not-measured", "R-FLAKY": "pass"}
    assert partial["requirements"][0]["ended"]["reason"].startswith("left out of this run (--edge-only")
    assert partial["options"]["only"] == ["R-FLAKY@store-1"] and partial["scope"]["full"] is False
    old_ok = next(r for r in before["requirements"] if r["id"] == "R-OK")
    assert merged["requirements"][0] == old_ok  # kept as it was
    assert merged["requirements"][1]["status"] == "pass"
    assert merged["verdict"] == "conformant" and merged["counts"]["pass"] == 2
    assert merged["reruns"][0]["of"] == before["run_id"] and merged["run_id"] == partial["run_id"]
    assert merged["reruns"][0]["entries"] == [{"profile": "rerun-test", "id": "R-FLAKY", "site": "store-1",
                                              "before": "fail", "after": "pass"}]
    assert "conformant" in (work / "run2" / "summary.md").read_text().lower()
    # the merged record bundles and verifies
    assert cli("bundle", "run2", "--out", "m.tar.gz", cwd=work).returncode == 0
    proc = cli("verify", "m.tar.gz", cwd=work)
    assert proc.returncode == 0, proc.stdout


def test_nothing_to_rerun(first_run, capsys):
    work, _ = first_run
    data = json.loads((work / "run1" / "results.json").read_text())
    for r in data["requirements"]:
        r["status"] = "pass"
    data["verdict"] = "conformant"
    (work / "ok.json").write_text(json.dumps(data))
    import os

    old = os.getcwd()
    os.chdir(work)
    try:
        outcome = rerun.run_rerun("ok.json", RunOptions())
    finally:
        os.chdir(old)
    assert outcome.exit_code == 0 and "nothing to re-run" in capsys.readouterr().err


def test_previous_options_are_reused_unless_given(first_run):
    work, _ = first_run
    import os

    old = os.getcwd()
    os.chdir(work)
    try:
        plan = rerun.plan("run1/results.json", RunOptions(), given=set())
        assert plan.only == ["R-FLAKY@store-1"]
        assert plan.options.target == "t.yaml" and plan.options.profiles == [str(work / "p.yaml")]
        assert plan.options.extra_pytest_args == ["--edge-only", "R-FLAKY@store-1"]
        given = rerun.plan("run1/results.json", RunOptions(target="other.yaml", strict=True), given={"target", "strict"})
        assert given.options.target == "other.yaml" and given.options.strict is True
        assert plan.options.duration_scale is None  # the first run's outages were as the profile says
        # a re-run is merged into the first run's results: its outages must be as long
        with pytest.raises(ConfigError, match="0.01 differs from the previous run's 1: a re-run is merged"):
            rerun.plan("run1/results.json", RunOptions(duration_scale="1/100"), given={"duration_scale"})
        same = rerun.plan("run1/results.json", RunOptions(duration_scale="1"), given={"duration_scale"})
        assert same.only == ["R-FLAKY@store-1"]
    finally:
        os.chdir(old)


def test_cli_run_rerun_failed(first_run):
    """Through `run --rerun-failed` once the run command has the option (see docs/certification.md)."""
    from conformance.cli import run

    if "rerun_failed" not in {p.name for p in run.params}:
        pytest.skip("`run --rerun-failed` is not wired into the run command yet")
    work, state = first_run
    state.flaky_ok = True
    proc = subprocess.run([*CLI, "run", "--rerun-failed", "run1/results.json", "-o", "run3", "--bundle"], cwd=work,
                          env=certify_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    merged = json.loads((work / "run3" / "results.json").read_text())
    assert merged["verdict"] == "conformant" and merged["reruns"]
    assert "bundle: " in proc.stdout


def test_fleet_aggregates_are_not_rerun_but_recomputed():
    member = {"profile": "p", "id": "Q", "level": "must", "fleet_member": True}
    prev = {"run_id": "a", "options": {}, "requirements": [
        {**member, "site": "s1", "status": "pass"}, {**member, "site": "s2", "status": "fail"},
        {"profile": "p", "id": "Q", "site": "fleet", "level": "must", "quorum": 1.0, "status": "fail"}]}
    assert rerun.select(prev) == ["Q@s2"]
    new = {"run_id": "b", "requirements": [{**member, "site": "s2", "status": "pass"},
                                           {"profile": "p", "id": "Q", "site": "fleet", "level": "must",
                                            "quorum": 1.0, "status": "fail"}]}
    merged = rerun.merge(prev, new, ["Q@s2"])
    fleet = merged["requirements"][2]
    assert fleet["status"] == "pass" and fleet["measured"]["sites"]["value"] == 2
    assert merged["verdict"] == "conformant" and len(merged["requirements"]) == 3
