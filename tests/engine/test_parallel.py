"""engine/parallel.py: when a distributed run is refused, which items run alone, and the lock that
lets them: a lone item waits for every running item and holds every other one back."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.engine import parallel as P
from conformance.engine.runner import RunOptions, parse_workers, pytest_args
from conformance.model.errors import ConfigError


def option(**fields):
    return SimpleNamespace(**{"numprocesses": None, "tx": [], "dist": "no", **fields})


def test_roles():
    assert P.xdist_role(SimpleNamespace(option=option())) is None
    assert P.xdist_role(SimpleNamespace(option=option(numprocesses=2, tx=["popen"] * 2, dist="load"))) == "controller"
    assert P.xdist_role(SimpleNamespace(option=option(), workerinput={})) == "worker"


def test_local_workers_spread_by_site_and_everything_else_is_refused():
    assert P.check_distribution(option(tx=["popen", "popen"], dist="load"), deploy_probes=False) == "loadgroup"
    assert P.check_distribution(option(tx=["popen"], dist="loadgroup"), deploy_probes=False) == "loadgroup"
    with pytest.raises(P.ParallelRefused, match="remote xdist workers cannot reach"):
        P.check_distribution(option(tx=["ssh=lab1//python=python3"], dist="load"), deploy_probes=False)
    with pytest.raises(P.ParallelRefused, match="--dist each"):
        P.check_distribution(option(tx=["popen"], dist="each"), deploy_probes=False)
    with pytest.raises(P.ParallelRefused, match="--dist worksteal"):
        P.check_distribution(option(tx=["popen"], dist="worksteal"), deploy_probes=False)
    with pytest.raises(P.ParallelRefused, match="give the number of workers"):
        P.check_distribution(option(dist="load"), deploy_probes=False)
    with pytest.raises(P.ParallelRefused, match="--deploy-probes"):
        P.check_distribution(option(tx=["popen"], dist="load"), deploy_probes=True)


def _case(check: str, site: str):
    return SimpleNamespace(requirement=SimpleNamespace(check=check), site=SimpleNamespace(name=site))


def test_faults_fleet_load_and_uplink_checks_run_alone():
    target = SimpleNamespace(sites=[SimpleNamespace(name="central", uplink=None),
                                    SimpleNamespace(name="store-1", uplink="central"),
                                    SimpleNamespace(name="store-2", uplink="central")])
    for check in ("resilience.partition", "fleet.registry", "load.http", "stack.broker"):
        assert P.runs_alone(_case(check, "store-1"), target), check
    assert P.runs_alone(_case("functional.health", "central"), target)   # every store depends on it
    for check in ("functional.health", "latency.request", "footprint.memory", "security.tls", "data.privacy"):
        assert not P.runs_alone(_case(check, "store-2"), target), check
    assert P.group_of(_case("latency.request", "store-2")) == "store-2"


# ---------------------------------------------------------------------------------------------- the lock

def _hold(directory: str, alone: bool, started, release, log) -> None:
    lock = P.ItemLock(Path(directory))
    lock.acquire(alone)
    log.put(("in", alone, time.monotonic()))
    started.set()
    release.wait(20)
    log.put(("out", alone, time.monotonic()))
    lock.close()


def _spawn(ctx, directory, alone, log):
    started, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(directory), alone, started, release, log))
    proc.start()
    return proc, started, release


def test_a_lone_item_waits_for_the_running_ones_and_holds_new_ones_back(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    log = ctx.Queue()
    shared, shared_in, shared_go = _spawn(ctx, tmp_path, False, log)
    assert shared_in.wait(20)
    lone, lone_in, lone_go = _spawn(ctx, tmp_path, True, log)
    assert not lone_in.wait(1.0)              # a shared item runs: the lone one waits
    late, late_in, late_go = _spawn(ctx, tmp_path, False, log)
    assert not late_in.wait(1.0)              # and a new shared item queues behind the lone one
    shared_go.set()
    assert lone_in.wait(20)                   # the running one ended: the lone one starts
    assert not late_in.wait(1.0)              # alone: nothing else starts meanwhile
    lone_go.set()
    assert late_in.wait(20)
    late_go.set()
    for proc in (shared, lone, late):
        proc.join(20)
        assert proc.exitcode == 0


def test_shared_items_run_side_by_side(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    log = ctx.Queue()
    one, one_in, one_go = _spawn(ctx, tmp_path, False, log)
    two, two_in, two_go = _spawn(ctx, tmp_path, False, log)
    assert one_in.wait(20) and two_in.wait(20)
    one_go.set()
    two_go.set()
    for proc in (one, two):
        proc.join(20)
        assert proc.exitcode == 0


# ---------------------------------------------------------------------------------------------- run -n

def test_workers_option_is_checked_and_handed_to_pytest(tmp_path):
    assert parse_workers("3") == 3 and parse_workers("auto") == "auto"
    for bad in ("0", "65", "two", "-1"):
        with pytest.raises(ConfigError, match="-n"):
            parse_workers(bad)
    args = pytest_args(RunOptions(profiles=["edge-baseline"], workers="2"), "run-1", tmp_path)
    assert args[args.index("-n") + 1] == "2" and "xdist.plugin" in args


def test_run_refuses_bad_workers_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "-n", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["edge-conformance: error: -n: '0': give a number of workers from 1 "
                                                "to 64, or auto"]
