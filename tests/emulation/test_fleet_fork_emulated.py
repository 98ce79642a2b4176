"""A large local deployment (fleet:120, past forkserver.FORK_ABOVE) forks its sites from the fork server:
each is still a process of its own that a crash, a restart and the teardown treat as before."""

from __future__ import annotations

import json
import os
import urllib.request

import psutil
import pytest

from conformance.emulation import start_deployment
from conformance.emulation.forkserver import FORK_ABOVE, MODE_ENV
from conformance.emulation.procs import find_labelled
from conformance.faults.emulated import EmulatedFaults
from conformance.model.target import load_target
from tests.helpers.waits import wait_for

STORES = FORK_ABOVE + 20


def answers(url: str) -> str:
    with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=10) as reply:
        return json.loads(reply.read())["name"]


@pytest.fixture(scope="module")
def fleet():
    os.environ.pop(MODE_ENV, None)  # auto: by size
    deployment = start_deployment(f"fleet:{STORES}", run_id=f"test-fork-{os.getpid()}", timeout=180)
    yield deployment
    deployment.stop()


def status_of(faults: EmulatedFaults, name: str) -> dict:
    return next(s for s in faults.status()["sites"] if s["name"] == name)


def test_a_large_fleet_is_forked_and_every_site_is_its_own_process(fleet):
    status = fleet.status()
    assert status["site_processes"] == "fork"
    target = load_target(fleet.target_file)
    assert target.emulation["site_processes"] == "fork"
    pids = [s["pid"] for s in status["sites"]]
    assert len(set(pids)) == STORES + 1 and all(psutil.pid_exists(p) for p in pids)
    for site in (target.sites[0], target.sites[7], target.sites[-1]):
        pid = site.labels["pid"]
        assert os.getsid(pid) == pid                                   # a session of its own
        assert site.labels["data_dir"] in " ".join(psutil.Process(pid).cmdline())  # found by its data dir
        assert answers(site.endpoint("api")) == site.name
    labelled = {p.pid for p in find_labelled(fleet.run_id).get(fleet.run_id, [])}
    assert set(pids) <= labelled   # the sweep of leftovers finds every forked site


def test_a_killed_site_is_restarted_alone_with_its_port_and_data(fleet):
    faults = EmulatedFaults(fleet.control_url, timeout=30)
    name, neighbour = "store-007", "store-008"
    before, beside = status_of(faults, name), status_of(faults, neighbour)
    faults.kill(name)
    after = wait_for(lambda: (s := status_of(faults, name))["restarts"] == 1 and s["state"] == "running" and s,
                     30, f"{name} to be restarted")
    assert after["pid"] != before["pid"] and not psutil.pid_exists(before["pid"])
    assert after["port"] == before["port"]
    assert status_of(faults, neighbour)["pid"] == beside["pid"]      # the crash touched no neighbour
    assert answers(load_target(fleet.target_file).site(name).endpoint("api")) == name


def test_teardown_leaves_no_process():
    deployment = start_deployment(f"fleet:{STORES}", run_id=f"test-fork-down-{os.getpid()}", timeout=180)
    run_id = deployment.run_id
    assert len(find_labelled(run_id).get(run_id, [])) >= STORES + 3   # sites, supervisor, linkd, fork server
    deployment.stop()
    assert find_labelled(run_id).get(run_id, []) == []
