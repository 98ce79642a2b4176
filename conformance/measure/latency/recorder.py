"""Everything one probe run counts and times, in one place.

Warm-up requests are sent exactly like measured ones but never reach the recorder's numbers; the
prober simply does not call it for them.
"""

from __future__ import annotations

from collections import Counter

from ..failures import classify
from .histogram import UsRecorder


class Recorder:
    def __init__(self, lag_limit_ns: int):
        self.latency = UsRecorder()  # from the intended send time: what a user of the schedule sees
        self.service = UsRecorder()  # from the actual send: what the server + network took
        self.send_lag = UsRecorder()  # actual send - intended: queueing for a slot + prober delay
        self.dispatch_lag = UsRecorder()  # the prober's own share of send_lag (see prober.py)
        self.lag_limit_ns = lag_limit_ns
        self.sent = 0
        self.late = 0  # sends whose dispatch lag exceeded lag_limit
        self.queued = 0  # sends that had to wait for a free in-flight slot
        self.timeouts = 0
        self.errors: Counter[str] = Counter()
        self.error_examples: dict[str, str] = {}

    def sending(self, send_lag_ns: int, dispatch_lag_ns: int, queued: bool) -> None:
        self.sent += 1
        self.send_lag.record_ns(send_lag_ns)
        self.dispatch_lag.record_ns(dispatch_lag_ns)
        if dispatch_lag_ns > self.lag_limit_ns:
            self.late += 1
        if queued:
            self.queued += 1

    def succeeded(self, latency_ns: int, service_ns: int) -> None:
        self.latency.record_ns(latency_ns)
        self.service.record_ns(service_ns)

    def failed(self, exc: BaseException) -> None:
        kind = classify(exc)
        if kind == "timeout":
            self.timeouts += 1
            return
        self.errors[kind] += 1
        self.error_examples.setdefault(kind, f"{type(exc).__name__}: {exc}"[:200])

    @property
    def rejected(self) -> int:
        return self.latency.rejected + self.service.rejected
