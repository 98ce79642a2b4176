"""Clocks, precise sleeping, the event loop the prober runs on, and the CPU it runs on.

Why this exists: a prober's own cost is added to every latency it reports, and on a 1-3 ms budget
that cost decides verdicts (docs/latency.md, "Measurement floor").

* The loop. uvloop (libuv, callbacks and transports in C) where it is installed: against servers the
  prober was not tuned on it cut the floor's p50 by about a tenth on its own, and with the httptools
  parser by 15-40 % against the previous prober (docs/latency.md, "Measurement floor"). Otherwise
  asyncio with a select() selector. EDGE_CONFORMANCE_PROBE_LOOP=uvloop|select forces one.
* Timers. asyncio's default loop waits in epoll, whose timeout has millisecond resolution (CPython
  rounds it *up*), so `asyncio.sleep(0.0003)` really sleeps about 1 ms; libuv's timers are whole
  milliseconds too. An open-loop prober that sends every 500 us would then start most requests up to
  1 ms late. select() takes a microsecond timeout; on uvloop a Sleeper arms a Linux timerfd (absolute
  CLOCK_MONOTONIC deadline, nanoseconds) and waits for it to become readable. On a loop we did not
  create (probe() awaited by a caller) we sleep until 1 ms before the deadline and yield in a tight
  loop for the rest. Either way the last stretch before a send is spun (see MAX_SPIN_NS).
* The CPU. On request (ProbeConfig.pin_cpu) the probing thread is pinned to the CPU it runs on while
  it probes. Off by default: it measured no better here, in one run worse (docs/latency.md).

All timestamps are time.perf_counter_ns(): CLOCK_MONOTONIC on Linux, the same clock asyncio's
loop.time() reads and timerfd counts in, and comparable across processes on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ctypes
import ctypes.util
import gc
import selectors
import struct
import sys
import threading
import time
import warnings
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


PROBE_LOOP_ENV = "EDGE_CONFORMANCE_PROBE_LOOP"
PROBE_LOOPS = ("auto", "uvloop", "select")


def _uvloop():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.startswith("uvloop")


def loop_kind(loop: asyncio.AbstractEventLoop) -> str:
    """'uvloop', 'select', 'epoll', 'kqueue'...: what the result says the prober ran on."""
    if is_uvloop(loop):
        return "uvloop"
    selector = getattr(loop, "_selector", None)
    return type(selector).__name__.removesuffix("Selector").lower() if selector is not None else type(loop).__name__


def timer_resolution_ns(loop: asyncio.AbstractEventLoop) -> int:
    """How finely this loop (with a Sleeper) can time a wake-up."""
    if is_uvloop(loop):
        return FINE_RESOLUTION_NS if TimerFd.available() else COARSE_RESOLUTION_NS
    selector = getattr(loop, "_selector", None)
    if isinstance(selector, selectors.SelectSelector):
        return FINE_RESOLUTION_NS
    if hasattr(selectors, "KqueueSelector") and isinstance(selector, selectors.KqueueSelector):
        return FINE_RESOLUTION_NS
    return COARSE_RESOLUTION_NS


def new_probe_loop(max_in_flight: int = 1) -> asyncio.AbstractEventLoop:
    """The prober's loop: uvloop with timerfd sleeps where both exist, else new_timer_loop().

    EDGE_CONFORMANCE_PROBE_LOOP=select forces the asyncio loop, =uvloop asks for uvloop (still falling
    back when it is not installed: the result's `loop` says what ran)."""
    choice = os.environ.get(PROBE_LOOP_ENV, "auto").strip().lower() or "auto"
    if choice not in PROBE_LOOPS:
        warnings.warn(f"{PROBE_LOOP_ENV}={choice!r} is not one of {', '.join(PROBE_LOOPS)}: using auto",
                      stacklevel=2)
    uvloop = _uvloop()
    if choice != "select" and uvloop is not None and TimerFd.available():
        return uvloop.new_event_loop()
    return new_timer_loop(max_in_flight)


def new_timer_loop(max_in_flight: int = 1) -> asyncio.AbstractEventLoop:
    """A fresh asyncio loop with microsecond timers when that is safe, else the default kind. The
    loopback servers use it: their injected delays are plain loop timers."""
    try:
        open_fds = psutil.Process().num_fds()
    except (psutil.Error, AttributeError):  # AttributeError: num_fds is POSIX only
        open_fds = _SELECT_MAX_FDS
    if open_fds < _SELECT_MAX_FDS and max_in_flight <= _SELECT_MAX_IN_FLIGHT:
        return asyncio.SelectorEventLoop(selectors.SelectSelector())
    return asyncio.new_event_loop()


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A Linux timerfd armed at an absolute CLOCK_MONOTONIC deadline in nanoseconds: a precise
    wake-up for loops whose own timers are whole milliseconds (uvloop). Python 3.13 has
    os.timerfd_create; this is the same two calls through libc for 3.11."""

    _CLOCK_MONOTONIC, _TFD_NONBLOCK, _TFD_CLOEXEC, _TFD_TIMER_ABSTIME = 1, 0o4000, 0o2000000, 1
    _available: bool | None = None

    @classmethod
    def available(cls) -> bool:
        if cls._available is None:
            cls._available = False
            if _LIBC is not None and hasattr(_LIBC, "timerfd_create"):
                fd = _LIBC.timerfd_create(cls._CLOCK_MONOTONIC, cls._TFD_NONBLOCK | cls._TFD_CLOEXEC)
                if fd >= 0:
                    os.close(fd)
                    cls._available = True
        return cls._available

    def __init__(self) -> None:
        assert _LIBC is not None
        self.fd = _LIBC.timerfd_create(self._CLOCK_MONOTONIC, self._TFD_NONBLOCK | self._TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        # armed once per request: one structure, rewritten in place (no allocation per request)
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)

    def arm(self, deadline_ns: int) -> None:
        deadline_ns = max(deadline_ns, 1)  # 0 would disarm it
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if _LIBC.timerfd_settime(self.fd, self._TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def drain(self) -> bool:
        """True if it expired since the last drain."""
        try:
            return struct.unpack("Q", os.read(self.fd, 8))[0] > 0
        except BlockingIOError:
            return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Sleeper:
    """Sleeps until perf_counter_ns() deadlines on one loop, as precisely as that loop allows: a
    timerfd on uvloop (Linux), the loop's own timers otherwise; the last `spin_ns` are spun. One per
    sleeping task (the sender, the loop-lag ticker); close() it when done."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spin_ns: int = 0):
        self.loop, self.spin_ns = loop, spin_ns
        self._timer: TimerFd | None = None
        self._waiter: asyncio.Future | None = None
        if is_uvloop(loop) and TimerFd.available():
            timer = TimerFd()
            try:
                loop.add_reader(timer.fd, self._fired)
            except BaseException:
                timer.close()
                raise
            self._timer = timer

    def _fired(self) -> None:
        if self._timer is not None and self._timer.drain():
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def until(self, deadline_ns: int) -> None:
        if self._timer is None:
            await sleep_until(deadline_ns, self.spin_ns)
            return
        wake_at = deadline_ns - self.spin_ns
        if wake_at - now_ns() > TIMERFD_MIN_NS:
            self._waiter = self.loop.create_future()
            self._timer.arm(wake_at)
            try:
                await self._waiter
            finally:
                self._waiter = None
        while now_ns() < deadline_ns:
            await asyncio.sleep(0)

    def close(self) -> None:
        if self._timer is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None


# Below this, arming a timerfd and going through the loop costs more than yielding until the deadline.
TIMERFD_MIN_NS = 20_000


def current_cpu() -> int | None:
    """The CPU this thread runs on (glibc's sched_getcpu; os.sched_getcpu is not in Python 3.11)."""
    getcpu = getattr(_LIBC, "sched_getcpu", None) if _LIBC is not None else None
    if getcpu is None:
        return None
    cpu = getcpu()
    return cpu if cpu >= 0 else None


@contextlib.contextmanager
def pinned_to_one_cpu(enabled: bool = True) -> Iterator[int | None]:
    """Pin this thread to one CPU while inside (Linux, when it may use two or more); yields the CPU.

    The CPU it is running on now: probes in several processes (run -n) stay where the scheduler spread
    them instead of piling onto one CPU, and none migrates between a send and its answer."""
    if not enabled or not hasattr(os, "sched_getaffinity"):
        yield None
        return
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:
        yield None
        return
    if len(allowed) < 2:
        yield None
        return
    cpu = current_cpu()
    if cpu not in allowed:
        cpu = max(allowed)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        yield None
        return
    try:
        yield cpu
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, allowed)


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
