"""The docker probe runtime over real SSH (tests/helpers/sshbed.py) and this machine's Docker engine, seen
as the sites' engine through ssh://: the central and edge probes are containers, the data and fleet
musts pass on them, and afterwards, also after a SIGKILL of the harness mid-run, no container of the
run is left. Skipped without a Docker engine (or the site image, which the docker backend builds)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
import yaml

from tests.helpers.cli import popen_cli, requirement, run_edge, write_profile
from tests.helpers.results import entry, read_json, validate_results
from tests.helpers.sshbed import SshBed

pytestmark = pytest.mark.docker  # containers: slow by tests/conftest.py
LABEL = "io.edge-conformance.probe-run"


def _docker_ok() -> str | None:
    try:
        done = subprocess.run(["docker", "network", "inspect", "bridge", "--format",
                               "{{(index .IPAM.Config 0).Gateway}}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


@pytest.fixture(scope="module")
def gateway():
    gw = _docker_ok()
    if gw is None:
        pytest.skip("no Docker engine here")
    from conformance.emulation.docker.images import ensure_image

    try:
        ensure_image()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"the site image cannot be built here: {exc}")
    return gw


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = SshBed.start(tmp_path_factory.mktemp("sshbed") / "bed")
    yield bed
    bed.stop()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _target(bed, gateway, tmp_path, edge_defects=()):
    host = {"spec": f"ssh://{bed.user}@127.0.0.1:{bed.port}", "ssh_identity_file": str(bed.key),
            "known_hosts": str(bed.known_hosts)}
    # central published on the docker bridge's gateway: the harness and the edge container both reach it there
    sites = [{"name": "hq", "role": "central", "hosts": [host],
              "probes": {"runtime": "docker", "port": _port(), "address": gateway}},
             {"name": "store-1", "role": "edge", "uplink": "hq", "hosts": [host],
              "probes": {"runtime": "docker", "port": _port(), "defects": list(edge_defects)}}]
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"name": "docker-probe-lab", "sites": sites}, sort_keys=False))
    return path


def _profile(tmp_path, within="10 s"):
    return write_profile(tmp_path / "p.yaml", [
        requirement("DATA", "data.privacy", "leaked_fields == 0 and leaked_local == 0 and forwarded_ratio >= 100 %",
                    {"fields": ["customer_name", "card_number", "email"], "records": 3}, sites=["edge"]),
        requirement("REG", "fleet.registry", "registered_ratio >= 100 %", {"within": within}, sites=["central"]),
    ])


def _containers(run_id: str | None = None) -> list[str]:
    label = f"{LABEL}={run_id}" if run_id else LABEL
    done = subprocess.run(["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.split()


def _wait_none(run_id: str, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while (left := _containers(run_id)) and time.monotonic() < deadline:
        time.sleep(0.3)
    return left


def _await_probes(proc, out, count: int, within: float = 60) -> str:
    """The run id of a run in progress once its `count` probe containers are up (results.json is first
    written then); fails with the run's output if it ends first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        run_id = (read_json(out / "results.json") or {}).get("run_id")
        if run_id and len(_containers(run_id)) == count:
            return run_id
        assert proc.poll() is None, proc.communicate()[0][-2000:]
        time.sleep(0.3)
    pytest.fail("the probes did not come up")


def test_docker_probes_are_measured_and_removed(bed, gateway, tmp_path):
    started = time.monotonic()
    code, res, output = run_edge("--profile", _profile(tmp_path), "--target", _target(bed, gateway, tmp_path),
                                 "--deploy-probes", out=tmp_path / "out", timeout=120)
    took = time.monotonic() - started
    validate_results(res)
    for rid, site in (("DATA", "store-1"), ("REG", "hq")):
        r = entry(res, rid, site)
        assert r["status"] == "pass", (rid, r["status"], r.get("message"), output[-3000:])
    assert code == 0
    assert res["scope"]["probes"] == ["hq", "store-1"]
    assert _wait_none(res["run_id"], 10) == []
    print(f"docker deploy run: {took:.1f} s")


def test_sigkill_of_the_harness_leaves_no_container(bed, gateway, tmp_path):
    target = _target(bed, gateway, tmp_path, edge_defects=["no-heartbeat"])
    proc = popen_cli("run", "--profile", _profile(tmp_path, within="60 s"), "--target", target, "--deploy-probes",
                     "--requirement", "REG", "--out", tmp_path / "out")
    run_id: str | None = None
    try:
        run_id = _await_probes(proc, tmp_path / "out", 2)
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert run_id
        left = _wait_none(run_id, 20)
        gone_after = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert left == [], f"containers left after the harness was killed: {left}"
    print(f"no container {gone_after:.1f} s after the SIGKILL")
