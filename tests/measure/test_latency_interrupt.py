"""Ctrl-C or SIGTERM during a probe: the prober's loop is taken down cleanly (runloop.py).

A child process probes a loopback server and is interrupted at several points (while the calibration
server starts, during the calibration probe, during the probe itself; per-request tasks and callback
requests). Afterwards the child reports what the probe left behind. Before the fix, stderr showed
"Task was destroyed but it is pending!" and "RuntimeError: Event loop is closed", and the probe's
SCHED_FIFO priority and paused garbage collector stayed on.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest

from conformance.measure.latency.runloop import run_until_done

CHILD = r"""
import gc, json, os, signal, sys, threading
import psutil
from conformance.measure.latency import ProbeConfig, run_probe
from conformance.measure.latency.loopback import LoopbackServer

protocol, calibrate, sigterm_raises = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if sigterm_raises:  # as the pytest plugin does during a run
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
server = LoopbackServer().start()
config = ProbeConfig(server.url_for(protocol), protocol=protocol, rate=400, duration=30, calibrate=calibrate,
                     realtime=True, max_in_flight=16)
print("probing", flush=True)
try:
    run_probe(config)
except KeyboardInterrupt as exc:
    outcome = f"KeyboardInterrupt({exc})"
else:
    outcome = "finished"
server.stop()
gc.collect()
state = {
    "outcome": outcome,
    "gc_enabled": gc.isenabled(),
    "sched_other": not hasattr(os, "sched_getscheduler") or os.sched_getscheduler(0) == os.SCHED_OTHER,
    "children": [p.pid for p in psutil.Process().children(recursive=True)],
    "threads": sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()),
}
print(json.dumps(state), flush=True)
"""

NOISE = ("Traceback", "Task was destroyed", "Event loop is closed", "Exception ignored", "never retrieved",
         "was never awaited", "ResourceWarning", "unclosed")


def _interrupt(protocol: str, calibrate: bool, sig: signal.Signals, after_s: float) -> tuple[dict, str]:
    proc = subprocess.Popen(
        # every ResourceWarning shown: an unclosed socket, transport or loop would be reported
        [sys.executable, "-X", "faulthandler", "-W", "always::ResourceWarning", "-c", CHILD, protocol,
         "1" if calibrate else "0", "1" if sig == signal.SIGTERM else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C -> KeyboardInterrupt
    try:
        assert proc.stdout.readline().strip() == "probing", proc.communicate(timeout=10)
        time.sleep(after_s)
        assert proc.poll() is None, "the probe ended before it could be interrupted"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    return json.loads(stdout.strip().splitlines()[-1]), stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
@pytest.mark.parametrize(("protocol", "calibrate", "after_s"), [
    ("http", True, 0.05),        # the calibration's loopback server process is starting
    ("http", True, 0.6),         # the calibration probe
    ("http", False, 1.0),        # callback requests (keep-alive pool)
    ("http-newconn", False, 1.0),  # a pool task per request
    ("tcp-connect", False, 1.0),   # a prober task per request
], ids=["calibration-start", "calibration-probe", "http", "http-newconn", "tcp-connect"])
def test_an_interrupted_probe_leaves_nothing_behind(protocol, calibrate, after_s, sig):
    state, stderr = _interrupt(protocol, calibrate, sig, after_s)
    assert not [n for n in NOISE if n in stderr], stderr
    expected = "KeyboardInterrupt(signal 15)" if sig == signal.SIGTERM else "KeyboardInterrupt()"
    assert state["outcome"] == expected, state
    assert state["gc_enabled"] and state["sched_other"], state  # the probe's own settings were restored
    assert state["children"] == [], state  # the calibration server process was stopped
    assert state["threads"] == [], state  # no executor or loopback thread left running


def test_run_until_done_cancels_and_awaits_every_task_and_closes_the_loop():
    loop_seen = []
    finished = []

    async def worker(name):
        try:
            await asyncio.sleep(60)
        finally:
            finished.append(name)

    async def gen():
        try:
            yield 1
            await asyncio.sleep(60)
        finally:
            finished.append("agen")

    async def main():
        loop_seen.append(asyncio.get_running_loop())
        asyncio.get_running_loop().create_task(worker("orphan"))  # not awaited by main
        agen = gen()
        await agen.__anext__()
        await asyncio.sleep(0)
        raise KeyboardInterrupt  # as if a signal handler had raised here

    with pytest.raises(KeyboardInterrupt):
        run_until_done(asyncio.new_event_loop, main)
    assert sorted(finished) == ["agen", "orphan"]
    assert loop_seen[0].is_closed()


def test_run_until_done_returns_the_result_and_leaves_signal_handlers_as_they_were():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    async def main():
        await asyncio.sleep(0)
        return 42

    assert run_until_done(asyncio.new_event_loop, main) == 42
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_signal_during_the_run_cancels_it_and_is_raised_after_the_teardown():
    events = []

    def handler(signum, frame):
        events.append("handler")  # runs at once, not deferred
        raise KeyboardInterrupt("held")

    async def main():
        try:
            signal.raise_signal(signal.SIGTERM)
            events.append("after raise_signal")  # the handler's exception did not land here
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(KeyboardInterrupt, match="held"):
            run_until_done(asyncio.new_event_loop, main)
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert events == ["handler", "after raise_signal", "cancelled"]

