"""The load driver's temporary working directories: each records its owner, stale ones are removed.

A harness SIGKILLed during a load run leaves its conformance-load-* directory behind; the next run
removes it, and only it: never a live process's directory, nor anything it cannot attribute.
Everything here works in a private directory, never in the shared /tmp.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.measure.load import driver
from conformance.measure.load.driver import new_workdir, process_start, remove_stale_workdirs

NS = driver._pid_namespace()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _workdir(root: Path, pid: int, start: int, ns: int = NS, suffix: str = "abcd_123") -> Path:
    path = root / f"conformance-load-{pid}-{start}-{ns}-{suffix}"
    path.mkdir()
    (path / "load-child.log").write_text("log\n")
    return path


def test_a_dead_owners_directory_is_removed_a_live_ones_and_foreign_ones_are_kept(tmp_path):
    me = os.getpid()
    stale = _workdir(tmp_path, _dead_pid(), 12345)
    reused = _workdir(tmp_path, me, process_start(me) + 1, suffix="reused00")  # our pid, another start
    live = _workdir(tmp_path, me, process_start(me), suffix="live0000")
    other_ns = _workdir(tmp_path, _dead_pid(), 12345, ns=NS + 1, suffix="otherns0")  # cannot judge
    foreign = [tmp_path / "conformance-load-q6zdq4eh",  # an earlier version's: no owner recorded
               tmp_path / "conformance-load-1-2-3",  # not mkdtemp's name
               tmp_path / "conformance-load-1-2-3-abcdefgh-x",
               tmp_path / "someone-else"]
    for path in foreign:
        path.mkdir()
    as_file = tmp_path / f"conformance-load-{_dead_pid()}-1-{NS}-file0000"
    as_file.write_text("not a directory")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("x")
    link = tmp_path / f"conformance-load-{_dead_pid()}-1-{NS}-symlink0"
    link.symlink_to(target, target_is_directory=True)

    assert sorted(remove_stale_workdirs(tmp_path)) == sorted([stale, reused])
    assert not stale.exists() and not reused.exists()
    assert live.is_dir() and (live / "load-child.log").exists()
    assert other_ns.is_dir()
    assert all(p.is_dir() for p in foreign)
    assert as_file.is_file() and link.is_symlink() and (target / "keep").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read from /proc")
def test_a_zombie_owner_is_gone_but_a_running_child_is_not(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    zombie = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        running = _workdir(tmp_path, child.pid, process_start(child.pid), suffix="running0")
        exited = _workdir(tmp_path, zombie.pid, process_start(zombie.pid), suffix="zombie00")
        zombie.stdin.close()  # it exits; not reaped until wait()
        deadline = time.monotonic() + 10
        while process_start(zombie.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert remove_stale_workdirs(tmp_path) == [exited]
        assert running.is_dir()
    finally:
        for proc in (child, zombie):
            proc.stdin.close()
            proc.wait()


def test_new_workdirs_name_their_owner_and_are_kept_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(driver.tempfile, "tempdir", str(tmp_path))
    path = new_workdir()
    assert path.parent == tmp_path and oct(path.stat().st_mode & 0o777) == "0o700"
    assert path.name.startswith(f"conformance-load-{os.getpid()}-{process_start(os.getpid())}-{NS}-")
    assert driver._WORKDIR_NAME.fullmatch(path.name)
    assert remove_stale_workdirs(tmp_path) == [] and path.is_dir()


def test_the_directory_of_a_sigkilled_harness_is_removed_by_the_next_run(tmp_path, monkeypatch):
    """The real sequence: a harness makes its directory and is SIGKILLed; the next run_load() removes
    it before starting (here the load child cannot start, so no Locust is needed) and removes its own
    directory on the way out."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    harness = subprocess.Popen(
        [sys.executable, "-c", "from conformance.measure.load.driver import new_workdir; import sys, time; "
                               "print(new_workdir(), flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=env)
    try:
        left = Path(harness.stdout.readline().strip())
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    assert left.parent == tmp_path and left.is_dir()

    monkeypatch.setattr(driver.tempfile, "tempdir", str(tmp_path))
    made = []

    def no_child(args, **kwargs):
        made.append(Path(args[args.index("--config") + 1]).parent)
        raise OSError("no load child in this test")

    monkeypatch.setattr(driver.subprocess, "Popen", no_child)
    with pytest.raises(OSError, match="no load child"):
        driver.run_load({"url": "http://127.0.0.1:9", "rate": 1, "duration_s": 1,
                         "endpoints": [{"name": "health", "method": "GET", "url": "/health"}]})
    assert not left.exists()
    assert made and made[0].parent == tmp_path and not made[0].exists()
    assert list(tmp_path.iterdir()) == []
