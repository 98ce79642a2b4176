"""Clocks, precise sleeping and the event loop the prober runs on.

Why this exists: asyncio's default loop on Linux waits in epoll, whose timeout has millisecond
resolution (CPython rounds it *up*), so `asyncio.sleep(0.0003)` really sleeps about 1 ms. An open-loop
prober that sends every 500 us would then start most requests up to 1 ms late. select() takes a
microsecond timeout, so the loop we create for run_probe() uses a SelectSelector; on a loop we did not
create (probe() awaited by a caller) we sleep until 1 ms before the deadline and yield in a tight loop
for the rest. Either way the last stretch before a send is spun (see MAX_SPIN_NS).

All timestamps are time.perf_counter_ns(): CLOCK_MONOTONIC on Linux, the same clock asyncio's
loop.time() reads, and comparable across processes on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ctypes
import ctypes.util
import gc
import selectors
import sys
import threading
import time
from collections.abc import Iterator

import psutil

now_ns = time.perf_counter_ns

COARSE_RESOLUTION_NS = 1_000_000  # epoll/poll/IOCP: timeouts in whole milliseconds
FINE_RESOLUTION_NS = 1_000  # select/kqueue: microseconds (plus the kernel's timer slack)

# select() cannot watch file descriptors >= FD_SETSIZE (1024) and scans every fd it is given; past
# these bounds we fall back to the default loop and spin instead.
_SELECT_MAX_FDS = 512
_SELECT_MAX_IN_FLIGHT = 256


# Linux rounds a sleeping thread's wake-up up to 50 us later by default ("timer slack") to batch
# wake-ups. For a prober that is 50 us of send lag on every request, so we lower it while probing.
_PR_SET_TIMERSLACK, _PR_GET_TIMERSLACK = 29, 30
PROBE_TIMER_SLACK_NS = 1_000


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


@contextlib.contextmanager
def fine_timer_slack(slack_ns: int = PROBE_TIMER_SLACK_NS) -> Iterator[None]:
    """Lower this thread's timer slack for the duration (Linux; a no-op elsewhere)."""
    if _LIBC is None:
        yield
        return
    previous = _LIBC.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    _LIBC.prctl(_PR_SET_TIMERSLACK, slack_ns, 0, 0, 0)
    try:
        yield
    finally:
        if previous > 0:
            _LIBC.prctl(_PR_SET_TIMERSLACK, previous, 0, 0, 0)


# Under CPU contention the normal (CFS) scheduler wakes a sleeping thread up to several ms late (seen
# here: p99 2-4 ms with busy neighbours, versus 0.2 ms under SCHED_FIFO). A real-time priority makes
# the prober's timing independent of its neighbours. The kernel's RT throttling
# (sched_rt_runtime_us, 95 % by default) keeps a runaway prober from freezing the machine.
REALTIME_PRIORITY = 10


@contextlib.contextmanager
def realtime_scheduling(enabled: bool, priority: int = REALTIME_PRIORITY) -> Iterator[bool]:
    """SCHED_FIFO for this thread while inside, when enabled and permitted; yields whether applied."""
    if not enabled or not hasattr(os, "sched_setscheduler"):
        yield False
        return
    try:
        previous = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError:  # not root / no CAP_SYS_NICE: run normally, the result says so
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, previous[0], previous[1])


# Python's cyclic garbage collector pauses the whole interpreter for up to a few ms; during a probe
# those pauses land in the measured tail (seen: p99.9 2.1-2.7 ms with it, 0.5-1.1 ms without). Probes
# allocate few reference cycles, so we pause it while any probe runs (counted: probes may overlap) and
# collect once afterwards.
_gc_lock = threading.Lock()  # probes run in threads too (run_probe() from a worker thread)
_gc_pausers = 0
_gc_was_enabled = True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
        _gc_pausers += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            restore = _gc_pausers == 0 and _gc_was_enabled
            if restore:
                gc.enable()
        if restore:
            gc.collect(1)


def timer_resolution_ns(loop: asyncio.AbstractEventLoop) -> int:
    """How finely this loop can time a wake-up."""
    selector = getattr(loop, "_selector", None)
    if isinstance(selector, selectors.SelectSelector):
        return FINE_RESOLUTION_NS
    if hasattr(selectors, "KqueueSelector") and isinstance(selector, selectors.KqueueSelector):
        return FINE_RESOLUTION_NS
    return COARSE_RESOLUTION_NS


def new_probe_loop(max_in_flight: int = 1) -> asyncio.AbstractEventLoop:
    """A fresh event loop with microsecond timers when that is safe, else the default kind."""
    try:
        open_fds = psutil.Process().num_fds()
    except (psutil.Error, AttributeError):  # AttributeError: num_fds is POSIX only
        open_fds = _SELECT_MAX_FDS
    if open_fds < _SELECT_MAX_FDS and max_in_flight <= _SELECT_MAX_IN_FLIGHT:
        return asyncio.SelectorEventLoop(selectors.SelectSelector())
    return asyncio.new_event_loop()


# Even with microsecond timers, a thread that sleeps wakes ~50 us late on a VM (the hypervisor has to
# deliver the timer). Sleeping until shortly before each send and yielding for the rest cuts the send
# lag p50 from ~70 us to ~10 us (docs/latency.md, Benchmarks). Bounded to 10 % of the interval, so
# the spinning never costs more than a tenth of a core.
MAX_SPIN_NS = 100_000


def spin_ns_for(loop: asyncio.AbstractEventLoop, rate: float) -> int:
    """How long before a deadline sleep_until() stops sleeping and starts yielding."""
    resolution = timer_resolution_ns(loop)
    if resolution >= COARSE_RESOLUTION_NS:
        return resolution
    return int(min(MAX_SPIN_NS, 1e9 / rate / 10))


async def sleep_until(deadline_ns: int, spin_ns: int = 0) -> None:
    """Return at (not before) perf_counter_ns() >= deadline_ns, as closely as the loop allows."""
    while True:
        remaining = deadline_ns - now_ns()
        if remaining <= 0:
            return
        if remaining > spin_ns:
            await asyncio.sleep((remaining - spin_ns) / 1e9)
        else:
            await asyncio.sleep(0)  # yield to other tasks without giving the selector a timeout
