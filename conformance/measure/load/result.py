"""Turn the per-process reports of a run into one `LoadResult` (harness side: hdrh only, no locust).

Merging rules: counts add up; histograms are merged, never their percentiles; per-second rows are keyed
by the wall-clock (epoch) second, so rows of different workers line up (across machines this needs
synchronised clocks). Rates are summed per process (each process divides by its own window), so a
worker that started a few ms later does not distort the total.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from ..hdr import HdrHistogram

from . import guard, histograms
from .config import LoadConfig


@dataclass
class LoadResult:
    valid: bool
    invalid_reason: str | None
    target_rps: float  # what the config asked for
    offered_rps: float  # what the pacer emitted (arrivals x requests per iteration / window)
    achieved_rps: float  # completed requests (success or failure) / window
    duration_s: float
    requests: int
    failures: int
    arrivals: int  # iterations scheduled
    dropped: int  # iterations that found no free user (k6's dropped_iterations)
    unfinished: int  # iterations still running when the drain timed out
    errors: dict[str, int]  # kind -> count: http_500, timeout, connection_refused, ... (measure.failures)
    latency_us: dict[str, float | int]  # count, min, mean, p50, p90, p95, p99, p999, max (successes)
    endpoints: dict[str, dict[str, Any]]  # name -> method, requests, failures, errors, latency_us, histogram
    series: list[dict[str, Any]]  # per second: t, rps, errors_per_s, p95_us, users, active, offered, dropped
    generator: dict[str, Any]  # processes with their CPU / loop-lag signals, worker counts
    config: dict[str, Any] = field(default_factory=dict)
    histogram: str = ""  # encoded HDR histogram (us) of all successful requests, for audits
    locust_version: str = ""
    # The target held every user (guard.assess_detail): the dropped iterations' requests were never
    # sent because of it, and a verdict counts them as failed (dropped_requests of them).
    held_by_target: bool = False
    dropped_requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def latency_histogram(self) -> HdrHistogram:
        return histograms.merge([self.histogram])

    def measured(self) -> dict[str, dict[str, Any]]:
        """Metric name -> {"value", "unit"}, the shape results.json's `measured` expects."""
        error_rate = 100.0 * self.failures / self.requests if self.requests else 0.0
        out = {
            "throughput": {"value": round(self.achieved_rps, 2), "unit": "req/s"},
            "offered": {"value": round(self.offered_rps, 2), "unit": "req/s"},
            "error_rate": {"value": round(error_rate, 3), "unit": "%"},
            "requests": {"value": self.requests, "unit": "count"},
            "dropped_iterations": {"value": self.dropped, "unit": "count"},
        }
        for key in ("p50", "p95", "p99", "max"):
            out[f"latency.{key}"] = {"value": round(self.latency_us[key] / 1000, 3), "unit": "ms"}
        return out


def _process_name(report: dict[str, Any]) -> str:
    return "local" if report.get("role") == "local" else f"worker-{report.get('index')}@{report.get('host')}"


def build_result(raw: dict[str, Any], config: LoadConfig) -> LoadResult:
    reports: list[dict[str, Any]] = sorted(raw.get("reports") or [],
                                           key=lambda r: (r.get("host", ""), r.get("index", 0)))

    endpoints: dict[str, dict[str, Any]] = {}
    encoded_by_endpoint: dict[str, list[str]] = defaultdict(list)
    errors: Counter[str] = Counter()
    offered = achieved = 0.0
    windows: list[float] = []
    processes: list[dict[str, Any]] = []
    signals: list[guard.ProcessSignals] = []
    for report in reports:
        window = max(1e-9, (report.get("window_end") or 0) - (report.get("window_start") or 0))
        windows.append(window)
        completed = 0
        for name, e in report.get("endpoints", {}).items():
            merged = endpoints.setdefault(
                name, {"method": e["method"], "requests": 0, "failures": 0, "errors": Counter()})
            merged["requests"] += e["requests"]
            merged["failures"] += e["failures"]
            merged["errors"].update(e["errors"])
            errors.update(e["errors"])
            encoded_by_endpoint[name].append(e["histogram"])
            completed += e["requests"]
        offered += report["arrivals"] * report["requests_per_iteration"] / window
        achieved += completed / window
        lag = histograms.merge([report["monitor"]["loop_lag_histogram"]], histograms.COARSE)
        start_lag = histograms.merge([report.get("start_lag_histogram", "")], histograms.COARSE)
        cpu = report["monitor"]["cpu_samples"]
        name = _process_name(report)
        signals.append(guard.ProcessSignals(name, cpu, lag.get_value_at_percentile(99)))
        processes.append({
            "name": name, "role": report.get("role"), "host": report.get("host"), "pid": report.get("pid"),
            "users": report.get("users"), "requests": completed, "arrivals": report["arrivals"],
            "dropped": report["dropped"], "achieved_rps": round(completed / window, 2),
            "cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "cpu_percent_max": max(cpu) if cpu else None,
            "loop_lag_p99_us": lag.get_value_at_percentile(99), "loop_lag_max_us": lag.get_max_value(),
            # how far behind the schedule iterations started (timer granularity, stalls)
            "start_lag_p99_us": start_lag.get_value_at_percentile(99), "start_lag_max_us": start_lag.get_max_value(),
        })

    total_histogram = histograms.new_histogram()
    for name, merged in endpoints.items():
        hist = histograms.merge(encoded_by_endpoint[name])
        if hist.get_total_count():
            total_histogram.add(hist)
        merged["errors"] = dict(merged["errors"])
        merged["latency_us"] = histograms.summary(hist)
        merged["histogram"] = histograms.encode(hist)

    requests = sum(e["requests"] for e in endpoints.values())
    failures = sum(e["failures"] for e in endpoints.values())
    arrivals = sum(r["arrivals"] for r in reports)
    dropped = sum(r["dropped"] for r in reports)
    expected = int(raw.get("expected_workers") or 1)
    missing = max(0, expected - len(reports))

    valid, reason, held_by_target = guard.assess_detail(
        guard.GuardInput(offered_rps=offered, achieved_rps=achieved, requests=requests, failures=failures,
                         arrivals=arrivals, dropped=dropped, processes=signals, missing_workers=missing,
                         expected_workers=expected, users=config.total_users,
                         latency_p50_us=histograms.summary(total_histogram)["p50"] if requests else None),
        config.guard)
    extra = [e for e in raw.get("errors") or [] if "worker report missing" not in e]
    if extra:  # anything else the child reported makes the run unusable as evidence
        valid, reason = False, "; ".join(filter(None, [reason, *extra]))

    return LoadResult(
        valid=valid, invalid_reason=reason, target_rps=config.rate, offered_rps=round(offered, 2),
        achieved_rps=round(achieved, 2), duration_s=round(max(windows, default=0.0), 3),
        requests=requests, failures=failures, arrivals=arrivals, dropped=dropped,
        unfinished=sum(r.get("unfinished", 0) for r in reports), errors=dict(errors),
        latency_us=histograms.summary(total_histogram), endpoints=endpoints,
        series=merge_series(reports),
        generator={"workers": config.workers, "remote_workers": config.remote_workers,
                   "reports": len(reports), "expected_reports": expected, "processes": processes},
        config=config.to_dict(), histogram=histograms.encode(total_histogram),
        locust_version=raw.get("locust_version", ""),
        held_by_target=held_by_target,
        dropped_requests=sum(int(r["dropped"]) * int(r["requests_per_iteration"]) for r in reports),
    )


def merge_series(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per wall-clock second of the window: t (s from the first), rps, errors_per_s, p95_us,
    users (spawned), active (users busy in an iteration, peak), offered (requests/s), dropped."""
    empty = {"rps": 0, "errors_per_s": 0, "users": 0, "active": 0, "offered": 0, "dropped": 0}
    rows: dict[int, dict[str, Any]] = {}
    encoded: dict[int, list[str]] = defaultdict(list)
    for report in reports:
        rpi = report["requests_per_iteration"]
        for row in report.get("series", []):
            sec = row["sec"]
            acc = rows.setdefault(sec, dict(empty))
            acc["rps"] += row["requests"]
            acc["errors_per_s"] += row["failures"]
            acc["users"] += row["users"]
            acc["active"] += row["active"]
            acc["offered"] += row["arrivals"] * rpi
            acc["dropped"] += row["dropped"]
            encoded[sec].append(row["histogram"])
    if not rows:
        return []
    first = min(rows)
    out = []
    for sec in range(first, max(rows) + 1):
        acc = rows.get(sec, empty)
        hist = histograms.merge(encoded.get(sec, []), histograms.COARSE)
        out.append({"t": sec - first, "epoch": sec, **acc,
                    "p95_us": hist.get_value_at_percentile(95) if hist.get_total_count() else None})
    return out
