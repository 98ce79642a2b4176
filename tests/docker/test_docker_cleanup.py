"""Nothing of a docker deployment outlives it: after stop(), after SIGTERM of the process that
started it, and after a SIGKILLed supervisor (swept by label by stop_run / emulate down)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from conformance.emulation import list_running, start_deployment, stop_run
from conformance.emulation import state as emu_state
from conformance.emulation.procs import find_labelled

pytestmark = pytest.mark.docker  # containers: slow by tests/conftest.py

TWO_SITES = """\
name: two
description: central and one store
sites:
  - {name: central, role: central, resources: {cpus: 1, memory: 128 MiB}}
  - {name: store, role: edge, resources: {cpus: 0.5, memory: 96 MiB}}
wan: {default_delay: 5 ms}
"""


@pytest.fixture
def two_sites(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(TWO_SITES)
    return path


def assert_gone(client, run: str, dk) -> None:
    dk.wait_for(lambda: dk.labelled(client, run) == {"containers": [], "networks": []}, 30,
                f"containers and networks of {run} to be removed")
    dk.wait_for(lambda: not find_labelled(run).get(run), 15, f"processes of {run} to exit")
    assert emu_state.read_entry(run) is None


def test_nothing_leaks_after_stop(site_image, docker_client, two_sites, dk):
    run = dk.run_id("stop")
    dep = start_deployment(str(two_sites), run_id=run, backend="docker")
    found = dk.labelled(docker_client, run)
    assert len(found["containers"]) == 2 and len(found["networks"]) == 2
    assert run in {r.run_id for r in list_running()}
    dep.stop()
    assert_gone(docker_client, run, dk)
    assert not dep.state_dir.exists()


def test_nothing_leaks_after_sigterm_of_the_caller(site_image, docker_client, two_sites, dk):
    run = dk.run_id("sigterm")
    script = textwrap.dedent(f"""
        import json, sys, time
        from conformance.emulation import start_deployment
        dep = start_deployment({str(two_sites)!r}, run_id={run!r}, backend="docker")
        print(json.dumps({{"pid": dep.pid}}), flush=True)
        time.sleep(120)
    """)
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        json.loads(caller.stdout.readline())  # the deployment is up
        assert len(dk.labelled(docker_client, run)["containers"]) == 2
        caller.send_signal(signal.SIGTERM)  # default action: the caller dies without any cleanup of its own
        assert caller.wait(10) == -signal.SIGTERM
    finally:
        if caller.poll() is None:
            caller.kill()
    assert_gone(docker_client, run, dk)


def test_a_killed_supervisor_leaves_containers_that_stop_run_sweeps(site_image, docker_client, two_sites, dk):
    run = dk.run_id("orphan")
    dep = start_deployment(str(two_sites), run_id=run, backend="docker", detach=True)
    try:
        os.kill(dep.pid, signal.SIGKILL)
        dk.wait_for(lambda: not psutil.pid_exists(dep.pid) or psutil.Process(dep.pid).status() == "zombie", 10,
                    "the supervisor to die")
        assert len(dk.labelled(docker_client, run)["containers"]) == 2  # orphans, still labelled
        assert run in {r.run_id for r in list_running()}
        assert stop_run(run)
    finally:
        dep.stop()
    assert_gone(docker_client, run, dk)


def test_sigterm_of_the_supervisor_tears_everything_down(site_image, docker_client, two_sites, dk):
    run = dk.run_id("supterm")
    dep = start_deployment(str(two_sites), run_id=run, backend="docker")
    try:
        os.kill(dep.pid, signal.SIGTERM)
        dk.wait_for(lambda: not dep.running, 30, "the supervisor to exit")
        assert_gone(docker_client, run, dk)
    finally:
        dep.stop()
