"""Per-process request statistics, fed by Locust's request event (child side, no gevent needed).

Why our own and not Locust's stats: Locust buckets response times below 100 ms to whole milliseconds,
and its percentiles cannot be merged exactly across workers. We keep microsecond HDR histograms per
endpoint and per second, which the driver merges.

Latency source: the user classes put `t0_ns = time.perf_counter_ns()` into the request's `context`
just before the call; the request event fires synchronously when the response is complete, so
`perf_counter_ns() - t0_ns` here is our own nanosecond measurement. Requests without it (a foreign
user class) fall back to the event's float `response_time` (ms, unrounded) times 1000.

Latency histograms hold successful requests; failures are counted per kind (a fast 500 or a refused
connection would otherwise make the latency look better).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from ..failures import classify
from . import histograms


def error_kind(exception: BaseException | None, response: Any = None) -> str:
    """The failure's kind (measure.failures.classify): http_<status>, timeout, connection_refused ..."""
    return classify(exception, getattr(response, "status_code", None))


class _Endpoint:
    __slots__ = ("method", "requests", "failures", "errors", "histogram")

    def __init__(self, method: str):
        self.method = method
        self.requests = 0
        self.failures = 0
        self.errors: Counter[str] = Counter()
        self.histogram = histograms.Tally()


class _Second:
    __slots__ = ("requests", "failures", "arrivals", "dropped", "users", "active", "histogram")

    def __init__(self) -> None:
        self.requests = self.failures = self.arrivals = self.dropped = self.users = self.active = 0
        self.histogram = histograms.Tally(histograms.COARSE)

    def as_row(self, sec: int) -> dict[str, Any]:
        return {"sec": sec, "requests": self.requests, "failures": self.failures, "arrivals": self.arrivals,
                "dropped": self.dropped, "users": self.users, "active": self.active,
                "histogram": self.histogram.encode()}


class Recorder:
    """Counts and histograms for one generator process. Only the measurement window is recorded."""

    def __init__(self, clock=time.time):
        self._clock = clock
        self.recording = False
        self.endpoints: dict[str, _Endpoint] = {}
        self._rows: list[dict[str, Any]] = []  # closed seconds, encoded
        self._sec: int | None = None
        self._cur: _Second | None = None
        self._users = 0  # last sampled user count: users stay spawned between samples
        self.start_lag = histograms.Tally(histograms.COARSE)  # arrival schedule -> actual start

    # -- per second --------------------------------------------------------------------------

    def _second(self) -> _Second:
        """The bucket of the current wall-clock second (epoch seconds align buckets across workers)."""
        sec = int(self._clock())
        if sec != self._sec:
            if self._cur is not None and self._sec is not None:
                self._rows.append(self._cur.as_row(self._sec))
            self._sec, self._cur = sec, _Second()
            # A second the sampler did not reach (a starved gevent loop, a partial first second)
            # still had the users spawned before it, not none.
            self._cur.users = self._users
        return self._cur  # type: ignore[return-value]

    def note_arrival(self, count: int = 1) -> None:
        if self.recording:
            self._second().arrivals += count

    def note_start(self, lag_s: float) -> None:
        if self.recording:
            self.start_lag.record(lag_s * 1e6)

    def note_dropped(self, count: int) -> None:
        if self.recording:
            self._second().dropped += count

    def note_users(self, users: int, active: int) -> None:
        """Sampled a few times a second: spawned users, and users busy in an iteration (peak)."""
        self._users = users  # also before the window opens: its first second had these users
        if self.recording:
            row = self._second()
            row.users = max(row.users, users)
            row.active = max(row.active, active)

    # -- the request event listener ---------------------------------------------------------------

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int = 0,
                   response: Any = None, context: dict | None = None, exception: BaseException | None = None,
                   **_: Any) -> None:
        if not self.recording:
            return
        t0_ns = context.get("t0_ns") if context else None
        value_us = (time.perf_counter_ns() - t0_ns) / 1000 if t0_ns else float(response_time or 0) * 1000
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            endpoint = self.endpoints[name] = _Endpoint(request_type)
        row = self._second()
        endpoint.requests += 1
        row.requests += 1
        if exception is not None:
            endpoint.failures += 1
            endpoint.errors[error_kind(exception, response)] += 1
            row.failures += 1
        else:
            endpoint.histogram.record(value_us)
            row.histogram.record(value_us)

    # -- export ----------------------------------------------------------------------------------

    def stop(self) -> None:
        self.recording = False
        if self._cur is not None and self._sec is not None:
            self._rows.append(self._cur.as_row(self._sec))
        self._cur = self._sec = None

    def report(self) -> dict[str, Any]:
        return {
            "endpoints": {
                name: {"method": e.method, "requests": e.requests, "failures": e.failures,
                       "errors": dict(e.errors), "histogram": e.histogram.encode()}
                for name, e in self.endpoints.items()
            },
            "series": list(self._rows),
            "start_lag_histogram": self.start_lag.encode(),
        }
