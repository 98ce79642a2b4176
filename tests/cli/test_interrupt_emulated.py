"""Ctrl-C (SIGINT) and SIGTERM during a latency probe of a run on an emulated deployment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from conformance.emulation.deployment import list_running
from conformance.emulation.state import ROOT_ENV
from tests.helpers.cli import CLI, cli_env
from tests.helpers.results import read_json, validate_results
from tests.helpers.waits import wait_for

# What asyncio printed when Ctrl-C or SIGTERM hit a latency probe (issue 15), and any traceback.
ASYNCIO_NOISE = ("Traceback", "Task was destroyed", "Event loop is closed", "Exception ignored",
                 "never retrieved", "was never awaited")


def test_sigint_and_sigterm_during_a_latency_probe(tmp_path):
    """`run --suite latency` on an emulated retail deployment, interrupted while the second store is
    probed: the probe is cancelled and its event loop taken down before the run stops, so stderr has
    no asyncio noise; results.json is finalised as interrupted and the deployment is gone."""
    runs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        out, root = tmp_path / f"out-{sig.name}", (tmp_path / f"state-{sig.name}").resolve()
        root.mkdir()
        env = {**cli_env(), ROOT_ENV: str(root)}  # a state root of its own: what is left of it is the run's
        proc = subprocess.Popen([*CLI, "run", "--suite", "latency", "--out", str(out)], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        runs[sig] = (proc, out, root)
    try:
        for sig, (proc, out, _) in runs.items():
            def first_probed(out=out):
                data = read_json(out / "results.json")
                return data and any(r["check"].startswith("latency.") and r["status"] != "not-run"
                                    for r in data["requirements"])

            wait_for(first_probed, 120, f"the first latency result of the {sig.name} run")
            time.sleep(2.5)  # the next store's probe (calibration ~1.2 s, then 6.5 s of schedule)
            assert proc.poll() is None, "the run ended before it could be interrupted"
            proc.send_signal(sig)
        for sig, (proc, out, root) in runs.items():
            stdout, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 3, f"{sig.name}: exit {proc.returncode}\n{stdout[-3000:]}\n{stderr}"
            assert not [n for n in ASYNCIO_NOISE if n in stderr], f"{sig.name}: stderr:\n{stderr}"
            data = json.loads((out / "results.json").read_text(encoding="utf-8"))
            validate_results(data)
            assert data["state"] == "interrupted" and data["finished"], sig.name
            statuses = [r["status"] for r in data["requirements"] if r["check"].startswith("latency.")]
            assert "not-run" in statuses and any(s != "not-run" for s in statuses), (sig.name, statuses)
            assert list_running(root=str(root)) == [], f"{sig.name}: the deployment outlived the run"
            left, deadline = _processes_of(root), time.monotonic() + 10
            while left and time.monotonic() < deadline:
                time.sleep(0.2)
                left = _processes_of(root)
            assert left == [], f"{sig.name}: a process of the run outlived it"
    finally:
        for proc, _, _ in runs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # a run turns SIGTERM into a clean stop
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _processes_of(root: Path) -> list[tuple[int, str]]:
    """Live processes started with `root` as their state root (the CLI's children inherit it: the
    deployment, the calibration's loopback server)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(ROOT_ENV) == str(root):
                found.append((proc.pid, " ".join(proc.info["cmdline"] or [])))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
