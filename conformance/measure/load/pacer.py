"""Open-model pacing inside one generator process (child side, gevent).

Locust by itself is a closed model: a user waits for its response before it starts the next task, so a
slow target quietly lowers the load it receives (and `constant_throughput` can never exceed what the
users can do). Like k6's constant-arrival-rate executor we separate *arrivals* from *users*:

* one arrival greenlet emits iterations on a fixed schedule (`rate` per second from the start,
  independent of any response);
* users are a pool: an arrival goes straight to a user that is idle; when none is, it waits in a
  backlog, and the next user that finishes takes it;
* an arrival that waited in the backlog `start_tolerance_s` without a user taking it is *dropped* and
  counted (k6's `dropped_iterations`), never started late: the offered load stays what the schedule
  says, and drops show that the users (the generator's concurrency) ran out.

Why a backlog with a small tolerance instead of k6's "drop unless a user is idle at that instant":
the arrival loop runs once per turn of the gevent loop (timers fire with ~1 ms granularity, and a turn
that handles 20 responses takes a few ms), so arrivals leave in batches. Without a backlog, users
finishing between two batches sat idle until the next one; at saturation that cost up to a third of
the throughput (benchmarks/load_vs_locust.py). A backlog capped at the number of users was not enough
either (users emptied it within one turn and then waited); a backlog bounded by age keeps every user
busy and only holds about `rate x start_tolerance_s` arrivals. And an arrival handed to an idle user is never dropped,
even if the whole process then stalls (no CPU for 50 ms): that is lateness, reported as `start_lag`,
and the stall shows up as loop lag in the monitor, not as missing users.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import gevent
from gevent.event import Event

MIN_SLEEP_S = 0.0005


class _Waiter:
    __slots__ = ("event", "scheduled")

    def __init__(self) -> None:
        self.event = Event()
        self.scheduled = 0.0


class Pacer:
    def __init__(self, duration_s: float, start_tolerance_s: float = 0.01,
                 on_arrival: Callable[[int], None] = lambda n: None, on_drop: Callable[[int], None] = lambda n: None,
                 on_start: Callable[[float], None] = lambda lag_s: None):
        # Users exist (and wait in take()) before the rate is known: a worker learns its share of the
        # total rate only when the master says spawning is complete, so the rate is given to run().
        self.duration_s = duration_s
        self.start_tolerance_s = start_tolerance_s
        self.rate = 0.0
        self._on_arrival = on_arrival
        self._on_drop = on_drop
        self._on_start = on_start  # called with the start lag (seconds behind the schedule)
        self._backlog: deque[tuple[float, float]] = deque()  # (scheduled, queued) perf_counter times
        self._idle: deque[_Waiter] = deque()  # users blocked in take(), first come first served
        self.active = 0  # users inside an iteration
        self.arrivals = 0
        self.dropped = 0
        self.started_at: float | None = None  # epoch seconds
        self.ended_at: float | None = None

    # -- user side --------------------------------------------------------------------------

    def take(self) -> float:
        """Block until an arrival is given to this user; returns its scheduled perf_counter time."""
        while self._backlog:
            scheduled, queued = self._backlog.popleft()
            now = time.perf_counter()
            if now - queued <= self.start_tolerance_s:
                self._on_start(max(0.0, now - scheduled))
                return scheduled
            self._drop(1)  # no user was free in time: it is not started late
        waiter = _Waiter()
        self._idle.append(waiter)
        try:
            waiter.event.wait()
        except BaseException:  # the user is being stopped: it must not be handed arrivals any more
            if waiter in self._idle:
                self._idle.remove(waiter)
            raise
        self._on_start(max(0.0, time.perf_counter() - waiter.scheduled))
        return waiter.scheduled

    def begin(self) -> None:
        self.active += 1

    def end(self) -> None:
        self.active -= 1

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._on_drop(count)

    # -- arrival loop -----------------------------------------------------------------------

    def run(self, iterations_per_s: float) -> None:
        """Emit the whole schedule; returns after `duration_s` (blocks the calling greenlet)."""
        self.rate = rate = iterations_per_s
        total = round(rate * self.duration_s) if rate > 0 else 0  # a worker without users gets rate 0
        self.started_at = time.time()
        start = time.perf_counter()
        emitted = 0
        while emitted < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            batch, dropped = due - emitted, 0  # callbacks once per batch: cheap at high rates
            now = time.perf_counter()
            while emitted < due:
                scheduled = start + emitted / rate
                emitted += 1
                if self._idle:
                    waiter = self._idle.popleft()
                    waiter.scheduled = scheduled
                    waiter.event.set()
                else:
                    self._backlog.append((scheduled, now))
            while self._backlog and now - self._backlog[0][1] > self.start_tolerance_s:
                self._backlog.popleft()  # expired unstarted: bounds the backlog to ~rate x tolerance
                dropped += 1
            self.arrivals += batch
            self._on_arrival(batch)
            if dropped:
                self._drop(dropped)
            if emitted < total:
                gevent.sleep(max(MIN_SLEEP_S, start + emitted / rate - time.perf_counter()))
        # the window ends when the schedule does, not when the last arrival was emitted
        gevent.sleep(max(0.0, start + self.duration_s - time.perf_counter()))
        self.ended_at = time.time()
        gevent.sleep(self.start_tolerance_s)  # let the last arrivals start (or expire)
        if self._backlog:
            self._drop(len(self._backlog))
            self._backlog.clear()

    def drain(self, timeout_s: float) -> int:
        """Wait for iterations in flight; returns how many were still running at the timeout."""
        deadline = time.perf_counter() + timeout_s
        while self.active and time.perf_counter() < deadline:
            gevent.sleep(0.01)
        return self.active
