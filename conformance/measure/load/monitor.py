"""Signals that tell whether this generator process, not the target, limits the run (child side).

* CPU of this process as a percentage of one core (psutil), sampled every `CPU_INTERVAL_S`: one
  gevent process can use at most one core, so ~100 % means requests wait for our CPU.
* gevent loop lag: a greenlet asks to sleep `LAG_INTERVAL_S` and records how late it wakes up. When
  the process is starved (busy, or sharing its core with something else), every response and every
  arrival is handled that much later; CPU% alone misses the case where another process takes the
  core (CPU then reads ~50 %, not 100 %).

The driver's guard (guard.py) turns these raw samples into valid / invalid.
"""

from __future__ import annotations

import time

import gevent
import psutil

from . import histograms

CPU_INTERVAL_S = 0.5
LAG_INTERVAL_S = 0.05


class Monitor:
    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only sets the baseline
        self.cpu_samples: list[float] = []
        self.lag = histograms.new_histogram(histograms.COARSE)
        self._greenlets: list[gevent.Greenlet] = []

    def start(self) -> None:
        self._process.cpu_percent(None)  # baseline at the start of the window
        self._greenlets = [gevent.spawn(self._sample_cpu), gevent.spawn(self._sample_lag)]

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=False)
        self._greenlets = []

    def _sample_cpu(self) -> None:
        while True:
            gevent.sleep(CPU_INTERVAL_S)
            self.cpu_samples.append(round(self._process.cpu_percent(None), 1))

    def _sample_lag(self) -> None:
        while True:
            before = time.perf_counter()
            gevent.sleep(LAG_INTERVAL_S)
            late_s = time.perf_counter() - before - LAG_INTERVAL_S
            histograms.record(self.lag, max(0.0, late_s) * 1e6)

    def report(self) -> dict:
        return {"cpu_samples": list(self.cpu_samples), "loop_lag_histogram": histograms.encode(self.lag)}
