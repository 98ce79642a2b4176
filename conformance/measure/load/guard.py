"""Saturation guard: decide whether the *generator*, not the target, limited the run (harness side).

A load result is only evidence about the target when the generator delivered the offered load. The
run is marked invalid (verdict: inconclusive) when any of these hold:

* a generator process used more than `cpu_percent` of one core in at least `cpu_sustained_share` of
  its samples (a gevent process cannot use a second core, so requests queue for our CPU);
* the achieved rate fell more than `rate_tolerance` short of the offered rate while the target was not
  erroring (failure ratio <= `error_tolerance`): a target that errors explains its own shortfall,
  one that answers fine does not;
* more than `dropped_tolerance` of the arrivals found no free user (open model: the users ran out, so
  the target never saw part of the offered load; raise `users`), unless the target held them: the
  generator was not starved and the target's median latency alone uses up the users at the offered
  rate (Little's law: offered rate x p50 >= users) and that median is itself slow (>=
  `slow_target_p50_ms`, 100 ms: a fast target that runs the users out means too few users for the
  rate, as when 5 users are asked for 20,000/s). An overloaded target queues requests without
  bound, so any user pool runs out; that is a slow target (a verdict on achieved rate and latency),
  not a weak generator, and the shortfall it causes is no finding either;
* the gevent loop woke up more than `loop_lag_p99_ms` late at p99 (starved of CPU, e.g. sharing a core);
* a worker's report is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import GuardConfig


@dataclass
class ProcessSignals:
    name: str  # "local", "worker-0", ...
    cpu_samples: list[float]
    loop_lag_p99_us: float


@dataclass
class GuardInput:
    offered_rps: float
    achieved_rps: float
    requests: int
    failures: int
    arrivals: int
    dropped: int
    processes: list[ProcessSignals] = field(default_factory=list)
    missing_workers: int = 0
    expected_workers: int = 1
    users: int | None = None             # the concurrency cap (all workers)
    latency_p50_us: float | None = None  # median latency of the measured requests


def assess(signals: GuardInput, config: GuardConfig | None = None) -> tuple[bool, str | None]:
    """(valid, invalid_reason). The reason lists every finding, e.g.
    'load generator saturated: CPU 97% of one core (local); achieved 610/s of 1000/s offered'."""
    valid, reason, _ = assess_detail(signals, config)
    return valid, reason


def assess_detail(signals: GuardInput, config: GuardConfig | None = None) -> tuple[bool, str | None, bool]:
    """(valid, invalid_reason, held_by_target). held_by_target: the target held every user, so the
    arrivals that found none were never sent because of it; the caller counts them as failed requests
    (otherwise a target too slow to take the load would be judged only on what it did take)."""
    config = config or GuardConfig()
    findings: list[str] = []
    held_by_target = bool(signals.users and signals.latency_p50_us is not None
                          and signals.latency_p50_us >= config.slow_target_p50_ms * 1000
                          and signals.offered_rps * signals.latency_p50_us / 1e6 >= signals.users)

    for proc in signals.processes:
        samples = proc.cpu_samples
        hot = [s for s in samples if s >= config.cpu_percent]
        if samples and len(hot) / len(samples) >= config.cpu_sustained_share:
            findings.append(f"CPU {sum(hot) / len(hot):.0f}% of one core ({proc.name})")
        if proc.loop_lag_p99_us > config.loop_lag_p99_ms * 1000:
            findings.append(f"event loop lag p99 {proc.loop_lag_p99_us / 1000:.0f} ms ({proc.name})")

    starved = any(f.startswith(("CPU", "event loop")) for f in findings)  # more users would not help
    held_by_target = held_by_target and not starved
    failure_ratio = signals.failures / signals.requests if signals.requests else 0.0
    short = signals.achieved_rps < signals.offered_rps * (1 - config.rate_tolerance)
    if short and failure_ratio <= config.error_tolerance and not held_by_target:
        findings.append(f"achieved {signals.achieved_rps:.0f}/s of {signals.offered_rps:.0f}/s offered")

    if signals.arrivals and signals.dropped / signals.arrivals > config.dropped_tolerance and not held_by_target:
        hint = "no free user" if starved else "no free user; raise users"
        findings.append(f"dropped {signals.dropped} of {signals.arrivals} iterations ({hint})")

    if signals.missing_workers:
        findings.append(f"worker report missing from {signals.missing_workers} of {signals.expected_workers} workers")

    if not findings:
        return True, None, held_by_target
    return False, "load generator saturated: " + "; ".join(findings), held_by_target
