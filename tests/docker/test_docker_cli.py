"""`edge-conformance run --target emulated:retail --backend docker` end to end (one suite, to stay quick)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.docker  # containers: slow by tests/conftest.py

CLI = [sys.executable, "-m", "conformance.cli"]


def test_run_against_retail_on_docker(site_image, docker_client, tmp_path, dk):
    out = tmp_path / "results"
    done = subprocess.run(CLI + ["run", "--profile", "retail", "--target", "emulated:retail", "--backend", "docker",
                                 "--suite", "functional", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    # narrowed to --suite functional: incomplete (exit 3), with every functional must passing
    said = done.stdout[-2000:] + done.stderr[-2000:]
    assert done.returncode == 3, said
    # exit 3 is also a deployment that could not come up: then there is no results.json, and the why is in `said`
    assert (out / "results.json").is_file(), said
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "incomplete" and results["scope"]["narrowed_by"] == ["--suite functional"]
    functional = [r for r in results["requirements"] if r["suite"] == "functional" and r["level"] == "must"]
    assert functional and all(r["status"] == "pass" for r in functional), [r["message"] for r in functional]
    assert results["scope"]["backend"] == "docker"
    assert results["target"]["emulation"]["backend"] == "docker"
    assert all(h.startswith("docker://") for s in results["target"]["sites"] for h in s["hosts"])
    assert sum(r["status"] == "pass" for r in results["requirements"]) >= 20
    run = results["target"]["emulation"]["run_id"]
    assert dk.labelled(docker_client, run) == {"containers": [], "networks": []}
    for name in ("junit.xml", "summary.md", "report.html"):
        assert (out / name).is_file()


def test_emulate_up_backend_choices_match_run_and_the_deployment_backends():
    from click.testing import CliRunner

    from conformance import cli
    from conformance.emulation.backends import BACKENDS

    def choices(command):
        return next(p.type.choices for p in command.params if p.name == "backend")

    assert list(choices(cli.emulate_up)) == list(choices(cli.run)) == list(BACKENDS)
    assert next(p.default for p in cli.emulate_up.params if p.name == "backend") == "local"
    done = CliRunner().invoke(cli.main, ["emulate", "up", "retail", "--backend", "podman", "--detach"])
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert "'podman' is not one of 'local', 'docker'" in done.output


def test_emulate_up_status_down_with_the_docker_backend(site_image, docker_client, tmp_path, dk):
    state_dir = tmp_path / "state"
    up = subprocess.run(CLI + ["emulate", "up", "retail", "--backend", "docker", "--detach", "--state-dir",
                               str(state_dir)], capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = next(line.split()[-1] for line in up.stdout.splitlines() if line.startswith("run id:"))
    try:
        assert "backend:     docker" in up.stdout
        target = yaml.safe_load((state_dir / "target.yaml").read_text())
        assert target["emulation"]["backend"] == "docker"
        assert len(dk.labelled(docker_client, run_id)["containers"]) == 4
        status = subprocess.run(CLI + ["emulate", "status", "--json"], capture_output=True, text=True, timeout=60)
        mine = [r for r in json.loads(status.stdout) if r["run_id"] == run_id]
        assert len(mine) == 1 and mine[0]["alive"] and mine[0]["backend"] == "docker"
        assert len(mine[0]["containers"]) == 4
        text = subprocess.run(CLI + ["emulate", "status"], capture_output=True, text=True, timeout=60).stdout
        line = next(ln for ln in text.splitlines() if ln.startswith(run_id))
        assert " docker " in line and "4 containers" in line and "running" in line
    finally:
        down = subprocess.run(CLI + ["emulate", "down", run_id], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0 and f"stopped {run_id}" in down.stdout, down.stdout + down.stderr
    assert dk.labelled(docker_client, run_id) == {"containers": [], "networks": []}
    status = subprocess.run(CLI + ["emulate", "status", "--json"], capture_output=True, text=True, timeout=60)
    assert run_id not in {r["run_id"] for r in json.loads(status.stdout)}
