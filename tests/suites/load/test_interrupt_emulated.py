"""A run interrupted in the middle of a load check leaves no load process (and nothing else) behind.

A 60 s load.sustained check on the emulated retail store-1; once the Locust child is seen working, the
run gets Ctrl-C (SIGINT to its whole process group, as a terminal sends it) or SIGTERM (to the harness
process only, as a process manager does). The load child runs in its own session, so neither signal
reaches it: the harness must kill it. Afterwards no process carrying the run's tag is left, and
results.json says the run was interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from tests.helpers.cli import CLI, start_tagged, write_profile
from tests.helpers.results import read_results
from tests.helpers.waits import descendants, tagged, wait_gone


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["sigint", "sigterm"])
def test_an_interrupted_run_leaves_no_load_process(tmp_path, sig, group):
    profile = write_profile(tmp_path / "profile.yaml", [
        {"id": "T-LONG", "level": "must", "check": "load.sustained", "applies_to": "store-1",
         "params": {"rate": 50, "duration": "60 s"}, "expect": "achieved >= 45 rps"}])
    out = tmp_path / "out"
    tag = f"interrupt-{sig.name}-{os.getpid()}-{time.monotonic_ns()}"
    proc = start_tagged([*CLI, "run", "--profile", profile, "--target", "emulated:retail", "--suite", "load",
                  "--out", out], tag)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        running = []
        while not running and proc.poll() is None and time.monotonic() < deadline:
            running = descendants(proc.pid)
            time.sleep(0.2)
        assert running, f"no load process appeared (exit {proc.poll()}):\n{''.join(chunks)[-3000:]}"
        assert tagged(tag), "the load process does not carry the run's tag: the leftover check would be blind"
        time.sleep(2.0)  # mid-load
        assert proc.poll() is None
        if group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not stop within 30 s of {sig.name}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(10)
    output = "".join(chunks)
    assert code != 0, output[-3000:]
    assert wait_gone(tag, timeout=5) == [], "a load process outlived the run"
    assert wait_gone(tag, needles=None, timeout=15) == [], "a process of the run outlived it"
    for pid, _ in running:
        assert not _alive(pid), f"load process {pid} is still alive"
    results = read_results(out, code, output)
    assert results["state"] == "interrupted", results["state"]
    long = next(r for r in results["requirements"] if r["id"] == "T-LONG")
    assert long["status"] not in ("pass", "fail"), long


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
