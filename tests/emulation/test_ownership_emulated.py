"""Ownership of emulated deployments (issue 15) with real deployments under two state roots: `emulate
status` in A lists only A's, `emulate down --all` in A leaves B's running and healthy and cleans a
SIGKILLed supervisor of A; faults reach only our own deployment. (The rest: test_ownership.py.)"""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest
import yaml

from conformance.emulation import list_running, procs, start_deployment
from conformance.emulation import state as emu_state
from conformance.faults.emulated import EmulatedFaults
from conformance.model.errors import NotMeasured

from tests.emulation.ownership import SMALL, cli, run_id
from tests.helpers.waits import wait_for


def test_two_state_roots_never_touch_each_other(roots, tmp_path, monkeypatch):
    a, b = roots
    topo = tmp_path / "small.yaml"
    topo.write_text(SMALL, encoding="utf-8")
    run_a, run_b, run_b_dead = run_id("a"), run_id("b"), run_id("b-dead")
    monkeypatch.setenv(emu_state.ROOT_ENV, str(b))
    dep_b = start_deployment(str(topo), run_id=run_b, detach=True, timeout=30)  # detached: nobody holds it
    dead_b = start_deployment(str(topo), run_id=run_b_dead, detach=True, timeout=30)
    monkeypatch.setenv(emu_state.ROOT_ENV, str(a))
    dep_a = start_deployment(str(topo), run_id=run_a, detach=True, timeout=30)
    try:
        assert dep_b.state_root == str(b.resolve()) and dep_a.state_root == str(a.resolve())
        os.kill(dead_b.pid, signal.SIGKILL)  # B's leftover: adoptable by B only
        wait_for(lambda: not procs.pid_alive(dead_b.pid), 10, "B's supervisor to die")

        status = cli("emulate", "status", "--json", root=a)
        assert [r["run_id"] for r in json.loads(status.stdout)] == [run_a], status.stdout
        assert {r.run_id for r in list_running(root=b)} == {run_b, run_b_dead}

        down = cli("emulate", "down", "--all", root=a, timeout=90)
        assert down.returncode == 0 and down.stdout.split() == ["stopped", run_a], down.stdout + down.stderr
        wait_for(lambda: not procs.find_labelled(run_a, root=a), 10, "A's processes to exit")
        assert emu_state.read_entry(run_a, a) is None

        # B: running and healthy, its leftover untouched
        state_b = dep_b.status()
        assert state_b["state"] == "running" and all(s["state"] == "running" for s in state_b["sites"]), state_b
        for url in (site["endpoints"]["api"] for site in yaml.safe_load(dep_b.target_file.read_text())["sites"]):
            with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                assert resp.status == 200
        assert emu_state.read_entry(run_b_dead, b) is not None and dead_b.state_dir.exists()

        down_b = cli("emulate", "down", "--all", root=b, timeout=90)
        assert set(down_b.stdout.split()) == {"stopped", run_b, run_b_dead}, down_b.stdout + down_b.stderr
        assert not dead_b.state_dir.exists() and emu_state.read_entry(run_b_dead, b) is None
        assert not dep_b.state_dir.exists() and not procs.find_labelled(run_b, root=b)
    finally:
        for dep in (dep_a, dep_b, dead_b):
            dep.stop()


def test_down_all_cleans_a_sigkilled_supervisor_of_our_root_and_leaves_a_run_in_progress(roots, tmp_path):
    a, _ = roots
    topo = tmp_path / "small.yaml"
    topo.write_text(SMALL, encoding="utf-8")
    orphan = start_deployment(str(topo), run_id=run_id("orphan"), detach=True, timeout=30)
    held = start_deployment(str(topo), run_id=run_id("held"), timeout=30)  # held by this process
    try:
        os.kill(orphan.pid, signal.SIGKILL)
        wait_for(lambda: not procs.pid_alive(orphan.pid), 10, "the supervisor to die")
        text = cli("emulate", "status", root=a).stdout
        assert orphan.run_id in text and f"running (run pid {os.getpid()})" in text, text

        down = cli("emulate", "down", "--all", root=a, timeout=90)
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"stopped {orphan.run_id}" in down.stdout and f"left {held.run_id} running" in down.stdout
        wait_for(lambda: not procs.find_labelled(orphan.run_id), 10, "the orphan's processes to exit")
        assert not orphan.state_dir.exists() and emu_state.read_entry(orphan.run_id) is None
        assert held.running and held.status()["state"] == "running"

        named = cli("emulate", "down", held.run_id, root=a, timeout=90)  # named: stopped anyway
        assert named.returncode == 0 and f"stopped {held.run_id}" in named.stdout, named.stdout + named.stderr
        wait_for(lambda: not held.running, 10, "the named deployment to stop")
    finally:
        orphan.stop()
        held.stop()


def test_faults_reach_our_own_deployment_and_not_another_roots(roots, tmp_path, monkeypatch):
    a, b = roots
    topo = tmp_path / "small.yaml"
    topo.write_text(SMALL, encoding="utf-8")
    monkeypatch.setenv(emu_state.ROOT_ENV, str(b))
    theirs = start_deployment(str(topo), run_id=run_id("faults-b"), timeout=30)
    monkeypatch.setenv(emu_state.ROOT_ENV, str(a))
    try:
        with start_deployment(str(topo), run_id=run_id("faults-a"), timeout=30) as ours:
            faults = EmulatedFaults(ours.control_url, timeout=10, run_id=ours.run_id)
            faults.partition("shop")
            assert any(link["partitioned"] for link in faults.status()["links"] if link["name"] == "wan:shop")
            faults.heal("shop")
        with pytest.raises(NotMeasured, match="not an emulated deployment of this state root"):
            EmulatedFaults(theirs.control_url, timeout=10).partition("shop")
        assert not any(link["partitioned"] for link in theirs.status()["links"])
    finally:
        theirs.stop()
