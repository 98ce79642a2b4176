"""engine.runner details that a CLI run relies on."""

from __future__ import annotations

import json

import pytest

from conformance.engine import runner
from tests.helpers.cli import run_cli, write_target


def test_site_typo_is_refused_before_anything_runs(tmp_path):
    target = write_target(tmp_path / "t.yaml", {"api": "http://127.0.0.1:9"})
    proc = run_cli("run", "--target", target, "--site", "stor-1", "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ('edge-conformance: error: --site: no site or role "stor-1" in target loopback '
                                   '(did you mean "store-1"?) (sites and roles: store-1, edge)')
    assert not (tmp_path / "out").exists()


def test_a_stale_results_file_is_not_taken_for_this_run(tmp_path, monkeypatch):
    """If pytest dies before the plugin writes anything, an older results.json in --out must not count."""
    target = write_target(tmp_path / "t.yaml", {"api": "http://127.0.0.1:9"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"run_id": "old", "verdict": "conformant"}))
    monkeypatch.setattr(runner.pytest, "main", lambda args: pytest.ExitCode.INTERNAL_ERROR)
    outcome = runner.run(runner.RunOptions(target=str(target), out=out))
    assert outcome.results is None and outcome.exit_code != 0
