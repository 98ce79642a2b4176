"""Verdict integrity (issue 14) on an emulated deployment: --rerun-failed replays a defect run's scope."""

from __future__ import annotations

import json

from tests.helpers.certify import TOKEN, TOKEN_VAR
from tests.helpers.cli import run_cli

TOKEN_ENV = {TOKEN_VAR: TOKEN}


def test_rerun_failed_of_a_defect_run_keeps_the_defect_and_the_scope(tmp_path):
    """The defect was not recorded, so a re-run went without it and turned the fail into a pass."""
    args = ["-p", "edge-baseline", "-r", "BASE-FUN-01", "--site", "store-1", "--defect", "store-1:health-broken"]
    first = run_cli("run", *args, "-o", "run1", cwd=tmp_path, env=TOKEN_ENV, timeout=300)
    assert first.returncode == 1, first.stdout + first.stderr
    data = json.loads((tmp_path / "run1" / "results.json").read_text())
    assert data["scope"]["defects"] == ["store-1:health-broken"] and data["options"]["defects"] == ["store-1:health-broken"]
    assert "--defect store-1:health-broken" in data["scope"]["changed_by"]

    again = run_cli("run", "--rerun-failed", "run1/results.json", "-o", "run2", cwd=tmp_path, env=TOKEN_ENV,
                    timeout=300)
    assert again.returncode == 1, again.stdout + again.stderr
    partial = json.loads((tmp_path / "run2" / "rerun-results.json").read_text())
    assert partial["scope"]["defects"] == ["store-1:health-broken"]
    assert partial["scope"]["requirements"] == ["BASE-FUN-01"] and partial["scope"]["sites"] == ["store-1"]
    merged = json.loads((tmp_path / "run2" / "results.json").read_text())
    status = {(r["id"], r["site"]): r["status"] for r in merged["requirements"]}
    assert status[("BASE-FUN-01", "store-1")] == "fail"
    assert merged["reruns"][0]["entries"] == [{"profile": "edge-baseline", "id": "BASE-FUN-01", "site": "store-1",
                                               "before": "fail", "after": "fail"}]
