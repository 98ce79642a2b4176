"""Helpers for the load suite's end-to-end tests.

Every run is the real `edge-conformance run` in a subprocess, in its own session, with a unique tag in
its environment. Everything the run starts inherits that environment (the load driver's Locust child
and workers, the emulation supervisor, the sites), so `tagged(tag)` finds exactly this run's processes
among whatever else the machine runs. `Run.saw_load` says whether a load process of the run was seen
while it ran, so "none left afterwards" is not vacuous.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from conformance.model.paths import profiles_dir

CLI = [sys.executable, "-m", "conformance.cli"]
TAG_VAR = "EDGE_LOADSUITE_TEST_TAG"
LOAD_NEEDLES = ("locust", "conformance.measure.load")


def cli_env(tag: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_"))}
    env["PYTEST_ADDOPTS"] = "-p no:hypothesispytest -p no:benchmark"
    env[TAG_VAR] = tag
    return env


def tagged(tag: str, needles: tuple[str, ...] | None = LOAD_NEEDLES) -> list[tuple[int, str]]:
    """(pid, command line) of live processes carrying `tag` whose command line has one of `needles`
    (None: any process carrying the tag)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if not cmd or (needles and not any(n in cmd for n in needles)):
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TAG_VAR) == tag:
                found.append((proc.pid, cmd))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def load_descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the load processes below `pid` (cheap enough to poll during a run)."""
    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            cmd = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(n in cmd for n in LOAD_NEEDLES):
            found.append((child.pid, cmd))
    return found


def wait_gone(tag: str, needles: tuple[str, ...] | None = LOAD_NEEDLES, timeout: float = 10.0) -> list:
    """The tagged processes still alive after waiting up to `timeout` for them to go."""
    deadline = time.monotonic() + timeout
    while True:
        left = tagged(tag, needles)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@dataclass
class Run:
    code: int
    output: str
    results: dict
    tag: str
    out: Path
    seconds: float
    saw_load: bool = False
    load_pids: set[int] = field(default_factory=set)


def start(args: list[Any], tag: str) -> subprocess.Popen:
    return subprocess.Popen([*map(str, args)], env=cli_env(tag), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run_cli(*args: Any, out: Path, timeout: float = 150) -> Run:
    """`edge-conformance run ARGS --out OUT`; watches for the run's load processes while it runs."""
    tag = uuid.uuid4().hex
    t0 = time.monotonic()
    proc = start([*CLI, "run", *args, "--out", out], tag)
    pids: set[int] = set()
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"run {args[:6]} did not finish within {timeout} s")
            pids.update(pid for pid, _ in load_descendants(proc.pid))
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(10)
    output = "".join(chunks)
    return Run(proc.returncode, output, read_results(out, proc.returncode, output), tag, out,
               time.monotonic() - t0, saw_load=bool(pids), load_pids=pids)


def read_results(out: Path, code: int | None, output: str) -> dict:
    path = out / "results.json"
    assert path.exists(), f"no results.json (exit {code}):\n{output[-3000:]}"
    return json.loads(path.read_text())


def left_out(r: dict) -> bool:
    """An entry the run's own options (--site, --suite, --requirement) left out: not measured, never a
    pass, and not a check that could not measure."""
    return r["status"] == "not-measured" and "left out of this run" in (r.get("ended") or {}).get("reason", "")


def starved(r: dict) -> bool:
    """Inconclusive because the harness's machine was starved while measuring (the verdict rule's
    contention excuse, with the pressure evidence that grounds it): what a healthy site's tail may get on
    a busy shared runner instead of a pass. A fail never counts as this. For load.capacity: the step that
    broke the budget did so on a starved machine, so max_rps is only a lower bound."""
    from conformance.model.verdict import starved_resources

    if r["status"] != "inconclusive":
        return False
    if "starved while measuring" in r["message"]:
        return any(v.get("kind") == "pressure" and starved_resources(v) for v in r.get("validity", []))
    steps = ((r.get("raw") or {}).get("capacity") or {}).get("steps") or [{}]
    machine = steps[-1].get("machine") or {}
    return "on a starved machine" in r["message"] and bool(starved_resources(
        {res: machine.get(f"{res}_some_percent") for res in ("cpu", "io", "memory")}))


def entry(results: dict, rid: str, site: str) -> dict:
    for r in results["requirements"]:
        if r["id"] == rid and r["site"] == site:
            return r
    raise AssertionError(f"no result for {rid}@{site}: "
                         f"{sorted((r['id'], r['site']) for r in results['requirements'])}")


def measured(r: dict, metric: str) -> float:
    """A measured metric: times in ms, ratios in %, rates in rps, counts as they are."""
    m = r["measured"].get(metric)
    assert m is not None, f"{r['id']}@{r['site']}: {metric} not measured ({r['status']}: {r['message']})"
    factor = {"us": 1e-3, "ms": 1.0, "s": 1e3}.get(m["unit"], 1.0)
    return m["value"] * factor


def write_profile(path: Path, requirements: list[dict], pid: str = "load-test", extends: str | None = None,
                  disable: tuple[str, ...] = ()) -> Path:
    """A profile of our own requirements, optionally extending a shipped one with some disabled."""
    reqs = [{"id": rid, "disabled": True} for rid in disable]
    reqs += [{"title": r["id"], "level": "should", "source": "assumed: a test of the load suite", **r}
             for r in requirements]
    doc: dict[str, Any] = {"id": pid, "version": "0", "title": "load suite test"}
    if extends:
        doc["extends"] = str(profiles_dir() / f"{extends}.yaml")
    doc["requirements"] = reqs
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
