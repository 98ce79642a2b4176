"""Can the numbers be trusted? The prober watches its own punctuality.

Two signals:
* dispatch lag: how late a send started by the prober's own fault (CPU starved, loop busy), i.e. not
  counting waits for a free in-flight slot, which are the target's backpressure and belong in the
  latency (that is the coordinated-omission correction);
* loop lag: a ticker that wakes every few ms and records how late it woke. A busy or starved event
  loop also delays the timestamps of responses, which inflates every latency.
Plus the hard failure: the sender gave up because it fell more than `timeout` behind schedule, so
part of the schedule was never sent.

When any limit is exceeded the result is marked invalid with a human reason; the verdict then becomes
inconclusive instead of reporting numbers that describe the prober rather than the target.
"""

from __future__ import annotations

import asyncio

from .histogram import UsRecorder, summarize
from .timing import Sleeper, now_ns


class LoopLagTicker:
    """Measures event-loop wake-up lateness every `interval_s` while running."""

    def __init__(self, interval_s: float, spin_ns: int = 0):
        self.interval_ns = int(interval_s * 1e9)
        self.spin_ns = spin_ns
        self.lag = UsRecorder()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # wait() does not raise the ticker's own CancelledError, so it cannot swallow one meant
            # for the caller (the probe being cancelled while it stops the ticker)
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        sleeper = Sleeper(asyncio.get_running_loop(), self.spin_ns)
        try:
            await self._tick(sleeper)
        finally:
            sleeper.close()

    async def _tick(self, sleeper: Sleeper) -> None:
        expected = now_ns() + self.interval_ns
        while True:
            await sleeper.until(expected)
            now = now_ns()
            self.lag.record_ns(now - expected)
            expected += self.interval_ns
            if expected <= now:  # after a long stall, count it once rather than as many missed ticks
                expected = now + self.interval_ns


def assess(*, scheduled: int, sent: int, unsent: int, late: int, lag_limit_us: float, max_late_ratio: float,
           loop_lag_p99_us: float | None, timer_resolution_us: float, max_in_flight: int,
           behind_s: float, rate: float, slots_exhausted: bool) -> str | None:
    """None when the run is trustworthy, else the reasons (joined with '; ')."""
    reasons = []
    if unsent:
        why = (f"all {max_in_flight} in-flight slots stayed busy: the target answers too slowly for "
               f"{rate:g}/s at max_in_flight={max_in_flight}" if slots_exhausted else
               f"the prober could not send {rate:g} requests/s")
        reasons.append(f"prober fell behind: {unsent} of {scheduled} scheduled requests were never sent "
                       f"(the sender gave up {behind_s:g} s behind schedule; {why})")
    if sent and late / sent > max_late_ratio:
        reasons.append(
            f"prober fell behind: {100 * late / sent:.1f}% of sends started > {_fmt_us(lag_limit_us)} late "
            f"(limit {100 * max_late_ratio:g}%)")
    # A coarse timer (epoll: 1 ms) makes every tick up to one resolution late by design; only lag
    # beyond that is the loop being busy.
    if loop_lag_p99_us is not None and loop_lag_p99_us - timer_resolution_us > lag_limit_us:
        reasons.append(
            f"event loop lagged: p99 wake-up delay {_fmt_us(loop_lag_p99_us)} > {_fmt_us(lag_limit_us)}")
    return "; ".join(reasons) or None


def lag_stats(recorder: UsRecorder) -> dict:
    s = summarize(recorder.histogram)
    return {k: s[k] for k in ("count", "p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")}


def _fmt_us(us: float) -> str:
    return f"{us / 1000:g} ms" if us >= 1000 else f"{us:g} us"
