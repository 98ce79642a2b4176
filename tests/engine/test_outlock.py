"""One lock per output directory: a second run on the same --out is refused in one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conformance.engine import outlock
from conformance.model.errors import ConfigError

HOLD = """
import sys, time
from pathlib import Path
from conformance.engine import outlock
outlock.acquire(Path(sys.argv[1]), "run-a")
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield out, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_directory_another_process_holds_is_refused_with_its_owner(holder):
    out, proc = holder
    with pytest.raises(ConfigError) as err:
        outlock.acquire(out, "run-b")
    assert str(err.value) == (f"--out: {out} is in use by another run (run run-a, pid {proc.pid}): "
                              "give each run its own --out")


def test_the_lock_goes_with_the_process_that_held_it(holder):
    out, proc = holder
    proc.kill()
    proc.wait(timeout=10)
    lock = outlock.acquire(out, "run-b")  # no stale lock after a crash
    outlock.release(lock)


def test_reentrant_in_one_process_and_released(tmp_path):
    first = outlock.acquire(tmp_path / "o", "r1")
    second = outlock.acquire(tmp_path / "o", "r1")
    assert first is second
    outlock.release(second)
    assert (tmp_path / "o").resolve() in outlock._HELD
    outlock.release(first)
    assert (tmp_path / "o").resolve() not in outlock._HELD


def test_an_unwritable_out_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"^--out: .*/file/out: cannot write there"):
        outlock.acquire(blocker / "out", "r")


def test_a_second_run_on_a_busy_out_exits_2_and_leaves_the_first_alone(holder, tmp_path):
    out, proc = holder
    (out / "results.json").write_text(json.dumps({"run_id": "run-a"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", "emulated", "--out", str(out)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "is in use by another run (run run-a" in run.stderr and "Traceback" not in run.stderr
    assert time.monotonic() - started < 60  # refused before any deployment came up
    assert json.loads((out / "results.json").read_text()) == {"run_id": "run-a"}
