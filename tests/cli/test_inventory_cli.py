"""--inventory (run) and --edge-inventory (plugin): a site is described in one place (a target file or an
inventory, not both), and a bad inventory is one line and exit 2 before anything starts."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.helpers.cli import cli_env, run_cli

needs_ansible = pytest.mark.skipif(shutil.which("ansible-inventory") is None,
                                   reason="ansible-core is not installed (pip install -e '.[test]')")


def test_target_and_inventory_together_are_refused(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[edge]\nstore-1\n")
    proc = run_cli("run", "--target", tmp_path / "lab.yaml", "--inventory", inventory, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("edge-conformance: error: --inventory: give a target file (--target) or an "
                                   "Ansible inventory (--inventory), not both: a site is described in one place")


def test_plugin_refuses_both_too(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[edge]\nstore-1\n")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--edge-profile", "edge-baseline", "--edge-target", str(tmp_path / "lab.yaml"),
                           "--edge-inventory", str(inventory), "--edge-out", str(tmp_path / "out"), "test_x.py"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "--edge-inventory: give a target file (--edge-target) or an Ansible inventory (--edge-inventory), " \
           "not both" in proc.stdout + proc.stderr


@needs_ansible
def test_an_inventory_problem_is_one_line_and_exit_2(tmp_path):
    """(Ansible's own parse errors, a missing file: tests/model/test_inventory.py.)"""
    orphan = tmp_path / "hosts.ini"
    orphan.write_text("[edge]\nstore-1\n\n[web]\nwww1 ansible_host=10.0.0.9\n")
    proc = run_cli("run", "--inventory", orphan, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"edge-conformance: error: {orphan}:5: www1: no role: it is in no group named "
                                   "central, regional or edge and has no edge_conformance_role (put it in one, "
                                   "or set edge_conformance_role)")
    assert not (tmp_path / "out").exists()
