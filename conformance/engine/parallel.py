"""A run spread over pytest-xdist workers (`run -n N`, `pytest -n N --edge-profile ...`): one target,
every verdict recorded by the controller, results equal to a serial run's.

How the parts fit:

* The controller (the pytest process the user started) opens the target as a serial run does (an
  emulated deployment is brought up once), plans the run and owns results.json and the reports. It
  tells each worker the target file, the run id and the lock directory (`worker_input`).
* A worker opens that target file (it never brings up a deployment nor deploys probes), collects and
  runs the items xdist sends it, and puts each decided entry on its test report (ENTRY_ATTR, JSON);
  xdist carries reports to the controller, which records them as they come. What a worker decides
  outside a test (checks no collected test implements, deselected tests, the latency calibration)
  comes back with the worker's output at its end (WORKER_OUTPUT).
* Items of one site share an xdist group (`--dist loadgroup`), so a site's checks run one after
  another as in a serial run. Items that change or load what other sites depend on (faults, fleet-wide
  and load checks, and every check of a site that is the uplink of another) run alone: a
  readers-writer lock across the workers (`ItemLock`) lets them start only when no other item runs,
  and holds every other item back meanwhile.

Remote workers (`--tx ssh=...`) are refused: the sites of an emulated deployment listen on this
machine's loopback only, and a worker elsewhere would also need the target's credentials. Several
machines split a run with `run --shard K/N` and `merge` instead (ci/README.md).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

WORKER_INPUT = "edge_conformance"      # node.workerinput key: what the controller tells a worker
WORKER_OUTPUT = "edge_conformance"     # config.workeroutput key: what a worker tells the controller
ENTRY_ATTR = "edge_entry_json"         # the test report's attribute carrying the decided entry
RUN_ALONE_FAMILIES = ("resilience", "fleet", "load", "stack")  # faults, the whole fleet, load
LOCK_FILES = ("turnstile.lock", "items.lock")


class ParallelRefused(Exception):
    """This distributed run cannot keep the promise of a serial one (one line: why, and what to do)."""


def xdist_role(config: Any) -> str | None:
    """'controller', 'worker', or None (no pytest-xdist in this run)."""
    if hasattr(config, "workerinput"):
        return "worker"
    option = config.option
    if getattr(option, "numprocesses", None) or getattr(option, "tx", None) or \
            getattr(option, "dist", "no") not in (None, "no"):
        return "controller"
    return None


def check_distribution(option: Any, *, deploy_probes: bool) -> str:
    """The xdist scheduling this run uses ('loadgroup'), or ParallelRefused."""
    tx = [str(t) for t in (getattr(option, "tx", None) or [])]
    remote = [t for t in tx if not t.startswith("popen")]
    if remote:
        raise ParallelRefused(f"--tx {remote[0]}: remote xdist workers cannot reach the target's loopback sites; "
                              "split the run over machines with --shard K/N and merge (ci/README.md)")
    if not tx:
        raise ParallelRefused("--dist without -n: give the number of workers with -n N")
    dist = getattr(option, "dist", "no")
    if dist not in ("load", "loadgroup"):
        raise ParallelRefused(f"--dist {dist}: checks are spread by site (--dist loadgroup, what -n N does); "
                              "other distributions would run a site's checks side by side or twice")
    if deploy_probes:
        raise ParallelRefused("--deploy-probes with -n: the probes are deployed for one process; "
                              "run without -n, or split the run with --shard K/N")
    return "loadgroup"


def runs_alone(case: Any, target: Any) -> bool:
    """An item that must not run beside any other: it injects faults, loads or watches the whole fleet,
    or checks a site other sites depend on (an uplink: central, a regional site)."""
    family = case.requirement.check.split(".", 1)[0]
    if family in RUN_ALONE_FAMILIES:
        return True
    return any(s.uplink == case.site.name for s in target.sites)


def group_of(case: Any) -> str:
    """The xdist group of an item: its site (a site's checks run one after another on one worker)."""
    return case.site.name


def worker_input(*, run_id: str, out_dir: Path, target_file: Path, target_ref: str, lock_dir: Path) -> dict:
    return {"run_id": run_id, "out_dir": str(out_dir), "target_file": str(target_file),
            "target_ref": target_ref, "lock_dir": str(lock_dir)}


class ItemLock:
    """A readers-writer lock across the worker processes, on two files (flock): an item that runs
    alone takes it exclusively, every other item shared. A turnstile, taken exclusively by every item
    for a moment and held by a waiting lone item, keeps new shared items from starving it."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self._turnstile = os.open(directory / LOCK_FILES[0], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._items = os.open(directory / LOCK_FILES[1], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.held: str | None = None

    def acquire(self, alone: bool) -> None:
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        if alone:
            fcntl.flock(self._items, fcntl.LOCK_EX)   # every shared item has ended; none starts
            self.held = "alone"
            return
        try:
            fcntl.flock(self._items, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        self.held = "shared"

    def release(self) -> None:
        if self.held is None:
            return
        fcntl.flock(self._items, fcntl.LOCK_UN)
        if self.held == "alone":
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        self.held = None

    def close(self) -> None:
        self.release()
        for fd in (self._turnstile, self._items):
            os.close(fd)


def changed_by(workers: int) -> str:
    """The scope's words for a distributed run (it changes how the run is executed, not what it checks)."""
    return (f"-n {workers} (pytest-xdist: {workers} workers, a site's checks on one worker; faults, fleet, load and "
            "uplink checks run alone)")
