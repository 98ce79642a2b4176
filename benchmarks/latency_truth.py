"""Does the prober report the true latency? Prints one JSON object.

1. Known delay: a loopback server (child process, CPU 1) answers after 5 ms and after 20 ms. The true
   value is the injected delay plus the harness floor (the same probe against the same server with no
   delay, measured in this run). Pass: measured p50 within max(0.2 ms, 2 %) of it.
2. Coordinated omission: the server freezes its whole event loop for 200 ms once per second while we
   send 100 requests/s (fixed schedule). The correct latency of a request intended at time t inside a
   freeze [a, a + 200 ms) is (a + 200 ms - t) + floor; outside, the floor. The server reports when each
   freeze began (same monotonic clock), the prober reports when its schedule began, so the script
   computes the exact expected distribution for the very schedule that ran. Pass: reported p99 within
   10 % of the expected p99. The continuous approximation (p99 = S - 1 % of the period = 190 ms) is
   printed too.
3. Locust (closed loop, 1 user, constant_throughput(100)) against the same freezing server, run as a
   child process (it monkey-patches its interpreter), to show what a closed-loop tool reports.

As root, the prober and the servers run under SCHED_FIFO (ProbeConfig.realtime, chrt) so that busy
neighbours on the machine do not decide the result; Locust runs normally.

Run: python benchmarks/latency_truth.py   (about 45 s)
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from conformance.measure.latency import ProbeConfig, run_probe
from conformance.measure.latency.loopback import LoopbackServerProcess
from conformance.measure.latency.schedule import arrival_offsets_ns

RATE = 100.0
DELAY_RUN_S = 5.0
STALL_S, STALL_PERIOD_S, STALL_RUN_S = 0.2, 1.0, 10.0


def http_probe(server, duration: float, **kw):
    return run_probe(ProbeConfig(server.http_url, rate=RATE, duration=duration, warmup=0.5, realtime=True, **kw))


def known_delays() -> dict:
    with LoopbackServerProcess(cpu=1, realtime=True) as server:
        floor = http_probe(server, DELAY_RUN_S)
    out = {"floor_p50_us": floor.latency["p50_us"], "floor_p99_us": floor.latency["p99_us"],
           "floor_valid": floor.valid, "floor_invalid_reason": floor.invalid_reason, "cases": []}
    for delay_ms in (5, 20):
        with LoopbackServerProcess(delay_s=delay_ms / 1000, cpu=1, realtime=True) as server:
            result = http_probe(server, DELAY_RUN_S)
        truth = delay_ms * 1000 + floor.latency["p50_us"]
        tolerance = max(200.0, 0.02 * truth)
        error = result.latency["p50_us"] - truth
        out["cases"].append({
            "injected_ms": delay_ms, "true_p50_us": truth, "measured_p50_us": result.latency["p50_us"],
            "measured_service_p50_us": result.service["p50_us"], "error_us": error,
            "tolerance_us": tolerance, "pass": abs(error) <= tolerance, "valid": result.valid,
            "invalid_reason": result.invalid_reason,
            "samples": result.samples})
    return out


def percentile(sorted_values: list[float], pct: float) -> float:
    """The HdrHistogram definition: the value at rank round(pct% of n), at least 1."""
    rank = max(1, int(pct / 100 * len(sorted_values) + 0.5))
    return sorted_values[rank - 1]


def expected_with_freezes(start_ns: int, count: int, freezes_ns: list[int], base_us: float) -> list[float]:
    """Exact open-loop latencies (us) of the fixed schedule that ran, given when the server froze."""
    offsets = arrival_offsets_ns(RATE, "fixed")
    stall_ns = int(STALL_S * 1e9)
    values = []
    for _ in range(count):
        intended = start_ns + next(offsets)
        wait_ns = 0
        for a in freezes_ns:
            if a <= intended < a + stall_ns:
                wait_ns = a + stall_ns - intended
                break
        values.append(wait_ns / 1000 + base_us)
    return sorted(values)


LOCUSTFILE = """
from locust import HttpUser, constant_throughput, task

class Probe(HttpUser):
    wait_time = constant_throughput({rate})

    @task
    def get(self):
        self.client.get("/")
"""


def run_locust(url: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp, "locustfile.py")
        locustfile.write_text(LOCUSTFILE.format(rate=RATE))
        prefix = str(Path(tmp, "stats"))
        cmd = [sys.executable, "-m", "locust", "--headless", "-f", str(locustfile), "-u", "1", "-r", "1",
               "-t", f"{int(seconds)}s", "--host", url.rstrip("/"), "--csv", prefix, "--only-summary",
               "--loglevel", "WARNING"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=tmp)
        try:
            with open(f"{prefix}_stats.csv") as f:
                rows = {row["Name"]: row for row in csv.DictReader(f)}
        except FileNotFoundError:
            return {"error": (proc.stderr or proc.stdout)[-500:]}
        agg = rows["Aggregated"]
        return {"requests": int(agg["Request Count"]), "p50_us": float(agg["50%"]) * 1000,
                "p90_us": float(agg["90%"]) * 1000, "p99_us": float(agg["99%"]) * 1000,
                "max_us": float(agg["Max Response Time"]) * 1000, "command": " ".join(cmd[1:4] + cmd[5:])}


def freezes(floor_p50_us: float) -> dict:
    with LoopbackServerProcess(stall_s=STALL_S, stall_every_s=STALL_PERIOD_S, stall_first_s=1.0, cpu=1,
                               realtime=True) as server:
        result = run_probe(ProbeConfig(server.http_url, rate=RATE, duration=STALL_RUN_S, max_in_flight=64,
                                       realtime=True))
        locust = run_locust(server.http_url, STALL_RUN_S)
    expected = expected_with_freezes(result.schedule_start_ns, result.scheduled, server.stalls_ns, floor_p50_us)
    exp_p99, exp_p90 = percentile(expected, 99), percentile(expected, 90)
    got_p99 = result.latency["p99_us"]
    return {
        "rate": RATE, "stall_ms": STALL_S * 1000, "period_s": STALL_PERIOD_S, "freezes": len(server.stalls_ns),
        "samples": result.samples, "valid": result.valid, "invalid_reason": result.invalid_reason,
        "expected_p90_us": round(exp_p90), "expected_p99_us": round(exp_p99),
        "continuous_approx_p99_us": round((STALL_S - 0.01 * STALL_PERIOD_S) * 1e6 + floor_p50_us),
        "ours_p90_us": result.latency["p90_us"], "ours_p99_us": got_p99,
        "ours_service_p99_us": result.service["p99_us"],
        "p99_error_pct": round(100 * (got_p99 - exp_p99) / exp_p99, 2),
        "pass": abs(got_p99 - exp_p99) <= 0.10 * exp_p99,
        "locust": locust,
    }


def main() -> None:
    delays = known_delays()
    co = freezes(delays["floor_p50_us"])
    ok = all(c["pass"] for c in delays["cases"]) and co["pass"]
    print(json.dumps({"benchmark": "latency_truth", "known_delay": delays, "coordinated_omission": co,
                      "pass": ok}))


if __name__ == "__main__":
    main()
