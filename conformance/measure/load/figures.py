"""A load run's figures as the load checks record them: counts and percentiles with failed requests ranked
last at the timeout (Stats), the per-second series in the report's shape, a summary without the
histograms, and the one-line note of what ran. Imports no Locust."""

from __future__ import annotations

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
LATENCY_METRICS = (*PERCENTILES, "max")


class Stats:
    """Counts and percentiles over every measured request, failed ones ranked last at the timeout."""

    def __init__(self, result, timeout_s: float):
        self.result = result
        # Requests the offered load asked for that never went out because the site held every user
        # count as failed (ranked at the timeout), as a timed-out request would: they were not served.
        held = getattr(result, "held_by_target", False)
        self.never_sent = int(getattr(result, "dropped_requests", 0)) if held else 0
        self.failed = int(result.failures) + int(result.unfinished or 0) + self.never_sent
        self.total = int(result.requests) + int(result.unfinished or 0) + self.never_sent
        self.answered = self.total - self.failed
        self.timeout_us = float(timeout_s) * 1e6
        self.error_ratio = self.failed / self.total if self.total else 0.0
        self.in_failures: list[str] = []
        self._hist = None

    def latency_us(self, metric: str) -> float | None:
        if self.total == 0:
            return None
        lat = self.result.latency_us
        if metric == "max":
            answered_max = float(lat.get("max") or 0) if self.answered else 0.0
            return max(answered_max, self.timeout_us) if self.failed else answered_max
        if not self.failed:
            return float(lat[metric])
        rank = max(int(PERCENTILES[metric] * self.total / 100 + 0.5), 1)  # hdrh's rule for the target count
        if rank > self.answered:
            if metric not in self.in_failures:
                self.in_failures.append(metric)
            return self.timeout_us
        if self._hist is None:
            self._hist = self.result.latency_histogram()
        return float(self._hist.get_value_at_percentile(100.0 * rank / self.answered))


def timeseries(series: list[dict]) -> list[dict]:
    """The driver's per-second rows in the shape the HTML report draws (p95 in ms)."""
    out = []
    for row in series:
        p95 = row.get("p95_us")
        out.append({"t": row["t"], "epoch": row.get("epoch"), "rps": row.get("rps", 0),
                    "p95_ms": round(p95 / 1000.0, 3) if p95 is not None else None,
                    "users": row.get("users", 0), "active": row.get("active", 0),
                    "errors_per_s": row.get("errors_per_s", 0), "offered": row.get("offered", 0),
                    "dropped": row.get("dropped", 0)})
    return out


def load_summary(result) -> dict:
    """What ran and what came back, without the histograms (those are in raw.latency)."""
    config = result.config or {}
    return {
        "valid": result.valid, "invalid_reason": result.invalid_reason,
        "url": config.get("url"), "scenario": config.get("scenario"), "users": config.get("users"),
        "target_rps": result.target_rps, "offered_rps": result.offered_rps, "achieved_rps": result.achieved_rps,
        "duration_s": result.duration_s, "requests": result.requests, "failures": result.failures,
        "arrivals": result.arrivals, "dropped": result.dropped, "unfinished": result.unfinished,
        "errors": dict(result.errors),
        "endpoints": {name: {k: v for k, v in e.items() if k != "histogram"} for name, e in result.endpoints.items()},
        "generator": result.generator, "locust_version": result.locust_version,
    }


def run_note(result, stats: Stats) -> str:
    config = result.config or {}
    text = (f"{stats.total} requests to {config.get('url')} ({config.get('scenario')}) in {result.duration_s:g} s: "
            f"offered {result.offered_rps:g}/s, achieved {result.achieved_rps:g}/s")
    if stats.failed:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.errors.items(), key=lambda kv: -kv[1]))
        text += f", {stats.failed} failed ({kinds or 'unfinished'})"
    if result.unfinished:
        text += f", {result.unfinished} unfinished at the end (counted as failed)"
    if stats.in_failures:
        text += (f"; {', '.join(stats.in_failures)} fall among the failed requests and count as the timeout "
                 f"({stats.timeout_us / 1e6:g} s)")
    procs = result.generator.get("processes") or []
    cpu = [p.get("cpu_percent_mean") for p in procs if p.get("cpu_percent_mean") is not None]
    lag = [p.get("loop_lag_p99_us") for p in procs if p.get("loop_lag_p99_us") is not None]
    text += (f"; generator: {len(procs)} process(es), {config.get('users')} users, CPU "
             f"{max(cpu, default=0):.0f}% of a core, loop lag p99 {show_ms(max(lag, default=0))}")
    if result.dropped:
        text += f", {result.dropped} of {result.arrivals} arrivals dropped (no free user)"
    return text


def ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


def show_ms(us: float) -> str:
    return f"{us:.0f} us" if us < 1000 else f"{us / 1000:.3g} ms"
