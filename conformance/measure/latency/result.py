"""LatencyResult: everything a probe measured, as data (to_dict() is JSON-ready).

Raw first: both histograms are kept encoded, so a verdict can be recomputed and audited later and
several probers can be merged (histogram.merge_encoded) instead of averaging percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "edge-conformance/latency-result/1"


@dataclass
class LatencyResult:
    protocol: str
    target: str
    rate: float  # scheduled requests per second
    arrivals: str  # fixed | poisson
    seed: int
    duration_s: float | None  # configured measured duration (None in count mode)
    count: int | None  # configured measured count (None in duration mode)
    warmup_s: float
    max_in_flight: int
    timeout_s: float
    elapsed_s: float  # wall time from the first measured intended send to the last completion
    scheduled: int  # measured requests the schedule asked for
    sent: int  # of those, actually sent
    unsent: int  # never sent because the prober fell too far behind (makes the run invalid)
    samples: int  # successful responses, recorded in both histograms
    timeouts: int
    errors: dict[str, int]  # failures other than timeouts, by kind
    error_examples: dict[str, str]  # first message per error kind, for humans
    warmup_sent: int
    latency: dict[str, Any]  # summary (us) measured from the INTENDED send time
    service: dict[str, Any]  # summary (us) measured from the ACTUAL send time
    histograms: dict[str, str]  # {"latency": base64 HDR, "service": base64 HDR}
    send_lag: dict[str, Any]  # lateness of sends: total (incl. waits for a slot) and the prober's own
    loop_lag: dict[str, Any]
    valid: bool
    invalid_reason: str | None
    rejected: int = 0  # values outside the histogram range (never silently dropped)
    prober_cpu_percent: float | None = None  # CPU of this process during the run (100 = one core)
    schedule_start_ns: int = 0  # perf_counter_ns of schedule offset 0 (CLOCK_MONOTONIC on Linux)
    floor: dict[str, Any] | None = None  # calibrate.Floor.to_dict() when calibrated
    realtime: bool = False  # the probing thread ran under SCHED_FIFO
    loop: str = ""  # the event loop the prober ran on: uvloop | select | epoll ...
    cpu: int | None = None  # the CPU the probing thread was pinned to, None when not pinned
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timeout_ratio(self) -> float:
        return self.timeouts / self.sent if self.sent else 0.0

    @property
    def error_ratio(self) -> float:
        return sum(self.errors.values()) / self.sent if self.sent else 0.0

    @property
    def jitter(self) -> dict[str, Any]:
        return {"stdev_us": self.latency["stdev_us"], "p99_minus_p50_us": self.latency["jitter_us"]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "protocol": self.protocol,
            "target": self.target,
            "rate": self.rate,
            "arrivals": self.arrivals,
            "seed": self.seed,
            "duration_s": self.duration_s,
            "count": self.count,
            "warmup_s": self.warmup_s,
            "max_in_flight": self.max_in_flight,
            "timeout_s": self.timeout_s,
            "elapsed_s": round(self.elapsed_s, 6),
            "scheduled": self.scheduled,
            "sent": self.sent,
            "unsent": self.unsent,
            "samples": self.samples,
            "timeouts": self.timeouts,
            "errors": dict(self.errors),
            "error_examples": dict(self.error_examples),
            "error_count": sum(self.errors.values()),
            "timeout_ratio": round(self.timeout_ratio, 6),
            "error_ratio": round(self.error_ratio, 6),
            "warmup_sent": self.warmup_sent,
            "latency": dict(self.latency),
            "service": dict(self.service),
            "jitter": self.jitter,
            "histograms": dict(self.histograms),
            "send_lag": self.send_lag,
            "loop_lag": self.loop_lag,
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
            "rejected": self.rejected,
            "prober_cpu_percent": self.prober_cpu_percent,
            "schedule_start_ns": self.schedule_start_ns,
            "floor": self.floor,
            "realtime": self.realtime,
            "loop": self.loop,
            "cpu": self.cpu,
            **({"extra": self.extra} if self.extra else {}),
        }

    def summary_line(self) -> str:
        """One line for humans: 'http 127.0.0.1:8080/ 200/s: p50 412 us, p99 1.20 ms ... valid'."""
        def ms(us):
            return "-" if us is None else (f"{us / 1000:.2f} ms" if us >= 1000 else f"{us} us")

        lat = self.latency
        text = (f"{self.protocol} {self.target} {self.rate:g}/s: {self.samples} samples, "
                f"p50 {ms(lat['p50_us'])}, p90 {ms(lat['p90_us'])}, p99 {ms(lat['p99_us'])}, "
                f"p99.9 {ms(lat['p99_9_us'])}, max {ms(lat['max_us'])} (from intended send); "
                f"service p50 {ms(self.service['p50_us'])}, p99 {ms(self.service['p99_us'])}; "
                f"timeouts {self.timeouts}, errors {sum(self.errors.values())}")
        if self.floor:
            text += f"; floor p50 {ms(self.floor['p50_us'])}, p99 {ms(self.floor['p99_us'])}"
        return text + ("" if self.valid else f"; INVALID: {self.invalid_reason}")
