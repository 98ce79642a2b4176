"""A run spread over pytest-xdist workers gives a serial run's verdicts, on one deployment.

`edge-conformance run -n 2` and plain `pytest -n 2 --edge-profile ...`, each against an emulated retail
deployment with defects on three stores, are compared entry by entry with a serial run of the same
selection: same statuses, same failures, the spread recorded in scope and named in the reports, and no
deployment left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conformance.emulation import list_running
from conformance.emulation.procs import find_labelled
from conformance.model.paths import suites_dir

CLI = [sys.executable, "-m", "conformance.cli"]
# A store that answers slowly (~25 ms more, within the baseline's latency should), one with an undeclared
# listener (security fails), one that never heartbeats (no fleet musts in the baseline).
DEFECTS = ["store-1:slow-path", "store-2:extra-listener", "store-3:no-heartbeat"]
SUITES = ["functional", "security", "latency", "footprint"]


def statuses(results: dict) -> dict[str, str]:
    return {f"{e['id']}@{e['site']}": e["status"] for e in results["requirements"]}


def cli_run(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    args = CLI + ["run", "--out", str(out)]
    for d in DEFECTS:
        args += ["--defect", d]
    for s in SUITES:
        args += ["--suite", s]
    done = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=600)
    assert (out / "results.json").is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict:
    done, results = cli_run(tmp_path_factory.mktemp("serial") / "out")
    assert done.returncode == 1, done.stdout[-3000:]
    return results


def test_run_with_two_workers_gives_the_serial_verdicts(serial, tmp_path):
    done, results = cli_run(tmp_path / "out", "-n", "2")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert statuses(results) == statuses(serial)
    failed = {k for k, v in statuses(results).items() if v == "fail"}
    assert "BASE-SEC-01@store-2" in failed   # the undeclared listener, found by the worker that checked store-2
    assert results["verdict"] == serial["verdict"] == "non-conformant"
    assert results["scope"]["parallel"] == {"workers": 2, "dist": "loadgroup"}
    assert any(c.startswith("-n 2 (pytest-xdist") for c in results["scope"]["changed_by"])
    assert "-n 2 (pytest-xdist" in (tmp_path / "out" / "summary.md").read_text()
    assert "created: 2/2 workers" in done.stdout or "2 workers" in done.stdout
    # every measured entry came from a worker with what it measured, not only its status
    p50 = {e["site"]: e["measured"]["p50"]["value"] for e in results["requirements"] if e["id"] == "BASE-LAT-01"}
    assert p50["store-1"] > p50["store-2"] + 15   # ms: the slow path's ~25 ms, measured beside the other worker
    run_id = results["run_id"]
    assert not [d for d in list_running() if d.run_id == run_id]


def test_plain_pytest_with_two_workers_gives_the_serial_verdicts(serial, tmp_path):
    root = suites_dir()
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pytest", *[str(root / s) for s in SUITES], "-c", str(root / "pytest.ini"),
           "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "--import-mode=importlib", "-q", "-n", "2",
           "--edge-profile", "edge-baseline", "--edge-target", "emulated", "--edge-out", str(out)]
    for d in DEFECTS:
        cmd += ["--edge-defect", d]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert (out / "results.json").is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert done.returncode == 1, done.stdout[-3000:]
    # the serial run named its suites with --suite; this one with test paths: the same requirements
    assert {k: v for k, v in statuses(results).items() if v != "not-measured"} == \
        {k: v for k, v in statuses(serial).items() if v != "not-measured"}
    assert results["scope"]["parallel"]["workers"] == 2
    assert not [d for d in list_running() if d.run_id == results["run_id"]]


def test_a_distribution_that_cannot_keep_the_promise_is_refused_before_anything_starts(tmp_path):
    root = suites_dir()
    cmd = [sys.executable, "-m", "pytest", str(root / "functional"), "-c", str(root / "pytest.ini"),
           "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q", "-n", "2", "--dist", "each",
           "--edge-profile", "edge-baseline", "--edge-target", "emulated", "--edge-out", str(tmp_path / "out")]
    before = {d.run_id for d in list_running()}
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--dist each: checks are spread by site" in done.stdout + done.stderr
    assert {d.run_id for d in list_running()} == before


def test_sigterm_ends_a_distributed_run_and_leaves_nothing(tmp_path):
    """A cancelled CI job: the controller and its workers stop, what was decided is kept, nothing is left."""
    out = tmp_path / "out"
    proc = subprocess.Popen(CLI + ["run", "--out", str(out), "-n", "2", "--suite", "functional", "--suite", "latency"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:   # until some verdicts are in
            if (out / "results.json").is_file():
                decided = [e for e in json.loads((out / "results.json").read_text())["requirements"]
                           if e["status"] == "pass"]
                if decided:
                    break
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)   # as a CI runner cancels a job: the whole group
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    results = json.loads((out / "results.json").read_text())
    assert proc.returncode == 3, output[-3000:]
    assert results["state"] == "interrupted" and results["verdict"] == "incomplete"
    assert any(e["status"] == "pass" for e in results["requirements"])   # what was decided is kept
    assert not [d for d in list_running() if d.run_id == results["run_id"]]
    assert not find_labelled(results["run_id"]).get(results["run_id"])
    assert not [p for p in psutil.process_iter(["cmdline"])
                if "xdist" in " ".join(p.info["cmdline"] or []) and str(out) in " ".join(p.info["cmdline"] or [])]
