"""The probe's keeper (conformance/probes/keeper.py), run from the real zipapp with this machine's python,
as the ssh runtime runs it on a site (`python3 probe.pyz --keep ...`):

* the first ready line reaches stdout with the keeper's pid; the workload answers;
* SIGKILL of the workload (a crash): the keeper starts it again, on the same port, with the data the
  workload had acknowledged (its data dir is kept);
* SIGTERM of the workload (a stop): it stays down; SIGUSR1 to the keeper (a start) brings it back;
* SIGUSR2 to the keeper (a stop through it): the workload ends and stays down, also when it had crashed
  and its restart was pending;
* EOF on the keeper's stdin: keeper and workload are gone;
* a workload that never becomes ready (a bad argument): the keeper ends with its status, no restart loop.
Plus the keeper's pure rules (which exits are failures, the port kept on restarts) without processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from conformance.probes import zipapp
from conformance.probes.keeper import stays_down, with_port
from tests.helpers.waits import wait_for


def test_clean_exits_and_stops_stay_down_crashes_do_not():
    assert stays_down(0) and stays_down(-signal.SIGTERM)
    assert not stays_down(-signal.SIGKILL) and not stays_down(1) and not stays_down(-signal.SIGSEGV)


def test_a_restart_answers_on_the_first_port():
    assert with_port(["--role", "edge", "--port", "0", "--name", "s"], 41234) == \
        ["--role", "edge", "--port", "41234", "--name", "s"]
    assert with_port(["--role", "edge"], 41234) == ["--role", "edge", "--port", "41234"]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _workloads(keeper_pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(keeper_pid).children() if "--serve" in p.cmdline()]
    except psutil.NoSuchProcess:
        return []


def _sale(port: int, sale_id: str) -> None:
    body = json.dumps({"id": sale_id, "amount": 2.5}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/pos/transactions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as reply:
        assert reply.status in (200, 201), reply.status


def _has_sale(port: int, sale_id: str) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/pos/transactions/{sale_id}", timeout=5) as reply:
        return reply.status == 200


@pytest.fixture
def keeper(tmp_path):
    probe = tmp_path / "probe.pyz"
    probe.write_bytes(zipapp.build())
    proc = subprocess.Popen([sys.executable, str(probe), "--keep", "--pid-file", str(tmp_path / "keeper.pid"),
                             "--listen", "127.0.0.1", "--role", "edge",
                             "--name", "store-1", "--data-dir", str(tmp_path / "data"), "--port", "0",
                             "--central-url", "http://127.0.0.1:9"],  # no central: sales stay queued
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        ready = json.loads(proc.stdout.readline())
        yield proc, ready, tmp_path / "keeper.pid"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _workloads(proc.pid):
            p.kill()
        proc.wait(10)


def test_the_keeper_restarts_a_crash_holds_a_stop_and_ends_with_its_stdin(keeper):
    proc, ready, pid_file = keeper
    assert pid_file.read_text().strip() == str(proc.pid)  # how a `start` finds the keeper
    port, first = ready["port"], ready["pid"]
    assert ready["ready"] and ready["keeper_pid"] == proc.pid and first != proc.pid
    assert wait_for(lambda: _answers(port), 15, "the workload answering")
    _sale(port, "before-crash")

    os.kill(first, signal.SIGKILL)  # a crash: started again, same port, the acknowledged sale kept
    wait_for(lambda: [p.pid for p in _workloads(proc.pid)] not in ([], [first]), 15, "a new workload")
    wait_for(lambda: _answers(port), 15, "the restarted workload answering on the first port")
    assert _has_sale(port, "before-crash")

    (second,) = _workloads(proc.pid)
    second.terminate()  # a stop: stays down
    second.wait(10)
    time.sleep(1.0)
    assert _workloads(proc.pid) == [] and not _answers(port) and proc.poll() is None

    os.kill(proc.pid, signal.SIGUSR1)  # a start
    wait_for(lambda: _answers(port), 15, "the workload started again by SIGUSR1")
    os.kill(proc.pid, signal.SIGUSR1)  # running already: nothing more starts
    time.sleep(0.5)
    assert len(_workloads(proc.pid)) == 1

    (third,) = _workloads(proc.pid)
    os.kill(proc.pid, signal.SIGUSR2)  # a stop through the keeper: held down, whatever ends the workload
    third.wait(15)
    time.sleep(1.0)
    assert _workloads(proc.pid) == [] and not _answers(port)
    os.kill(proc.pid, signal.SIGUSR1)
    wait_for(lambda: _answers(port), 15, "started again after the keeper's stop")

    (fourth,) = _workloads(proc.pid)
    os.kill(fourth.pid, signal.SIGKILL)  # a crash, and a stop during the restart's backoff: stays down
    os.kill(proc.pid, signal.SIGUSR2)
    time.sleep(1.5)
    assert _workloads(proc.pid) == [] and not _answers(port)
    os.kill(proc.pid, signal.SIGUSR1)
    wait_for(lambda: _answers(port), 15, "started again")

    (fifth,) = _workloads(proc.pid)
    proc.stdin.close()  # the harness gone: keeper and workload end
    proc.wait(15)
    assert not psutil.pid_exists(fifth.pid) or fifth.status() == psutil.STATUS_ZOMBIE


def test_a_workload_that_never_comes_up_ends_the_keeper_with_its_status(tmp_path):
    probe = tmp_path / "probe.pyz"
    probe.write_bytes(zipapp.build())
    proc = subprocess.Popen([sys.executable, str(probe), "--keep", "--role", "edge", "--name", "s",
                             "--data-dir", str(tmp_path / "data"), "--port", "0"],  # no --central-url
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # stdin stays open: the keeper ends by itself
        code = proc.wait(30)
    finally:
        proc.kill()
    out, err = proc.stdout.read(), proc.stderr.read()
    assert code == 2 and out == "", (code, out, err)
    assert "--central-url is required" in err and "before it was ready" in err and "restarting" not in err


def test_the_ssh_runtime_names_the_probe_its_workload_and_its_keeper():
    from pathlib import Path

    from conformance.model.target import ProbeSpec
    from conformance.probes.base import ProbeRequest
    from conformance.probes.ssh import SshRuntime, regex_literal

    request = ProbeRequest("hq", "central", ProbeSpec(host="ssh://x", address="10.0.0.1", listen="0.0.0.0",
                                                      dir="/tmp"), "R", Path("/tmp"))
    runtime = SshRuntime()
    facts = runtime.site_facts(request)
    # the workload only (readable in reports): not its keeper nor the shell that started them
    assert facts["process"] == facts["fault_pattern"] == r"/tmp/edge-conformance-probe-R/hq/probe\.pyz --serve"
    assert facts["data_dir"] == "/tmp/edge-conformance-probe-R/hq/data"
    assert facts["fault_start"] == 'kill -USR1 "$(cat /tmp/edge-conformance-probe-R/hq/keeper.pid)"'
    assert facts["fault_stop"] == 'kill -USR2 "$(cat /tmp/edge-conformance-probe-R/hq/keeper.pid)"'
    assert "probe.pyz --keep --pid-file /tmp/edge-conformance-probe-R/hq/keeper.pid --listen 0.0.0.0" in \
        runtime.start_command(request)
    import re

    for text in ("/a/b.c", "a(b)[c]*+?{1}^$|\\"):
        assert re.fullmatch(regex_literal(text), text)
    assert not re.search(regex_literal("/a/b.c"), "/a/bXc")
