"""`edge-conformance run --target emulated:retail --backend docker` end to end (one suite, to stay quick)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.docker

CLI = [sys.executable, "-m", "conformance.cli"]


def test_run_against_retail_on_docker(site_image, docker_client, tmp_path, dk):
    out = tmp_path / "results"
    done = subprocess.run(CLI + ["run", "--profile", "retail", "--target", "emulated:retail", "--backend", "docker",
                                 "--suite", "functional", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "conformant"
    assert results["target"]["emulation"]["backend"] == "docker"
    assert all(h.startswith("docker://") for s in results["target"]["sites"] for h in s["hosts"])
    assert sum(r["status"] == "pass" for r in results["requirements"]) >= 20
    run = results["target"]["emulation"]["run_id"]
    assert dk.labelled(docker_client, run) == {"containers": [], "networks": []}
    for name in ("junit.xml", "summary.md", "report.html"):
        assert (out / name).is_file()
