"""Can one core hold 2,000 requests/s without the prober falling behind? Prints one JSON object.

The prober runs pinned to CPU 0 (sched_setaffinity, as `taskset -c 0` would), the loopback HTTP no-op
server as a child process on CPU 1, both under SCHED_FIFO when run as root (ProbeConfig.realtime), so
other work on the machine cannot delay their wake-ups. Baseline in the same run: the same probe at 200
requests/s. Then 2,000 requests/s for 10 s over keep-alive connections. Pass: the 2,000/s run stays
valid (the self-check saw no late sends or loop lag beyond 1 ms), nothing was left unsent, and the
achieved send rate is within 1 % of the schedule. For the record, the 2,000/s run is repeated under
the normal scheduler (on a busy machine that one is expected to come out invalid).

Run: python benchmarks/latency_capacity.py  (about 20 s)
"""

from __future__ import annotations

import json
import os

from conformance.measure.latency import ProbeConfig, run_probe
from conformance.measure.latency.loopback import LoopbackServerProcess


def summary(result) -> dict:
    return {
        "rate": result.rate, "sent": result.sent, "unsent": result.unsent,
        "achieved_rate": round(result.sent / result.elapsed_s, 1) if result.elapsed_s else None,
        "valid": result.valid, "invalid_reason": result.invalid_reason,
        "send_lag_p50_us": result.send_lag["p50_us"], "send_lag_p99_us": result.send_lag["p99_us"],
        "send_lag_max_us": result.send_lag["max_us"], "late_ratio": result.send_lag["late_ratio"],
        "loop_lag_p99_us": result.loop_lag["p99_us"], "latency_p50_us": result.latency["p50_us"],
        "latency_p99_us": result.latency["p99_us"], "service_p50_us": result.service["p50_us"],
        "errors": result.errors, "timeouts": result.timeouts, "prober_cpu_percent": result.prober_cpu_percent,
        "realtime": result.realtime,
    }


def main() -> None:
    pinned = False
    try:
        os.sched_setaffinity(0, {0})
        pinned = True
    except (AttributeError, OSError):
        pass
    with LoopbackServerProcess(cpu=1, realtime=True) as server:
        baseline = run_probe(ProbeConfig(server.http_url, rate=200, duration=5, warmup=0.5, realtime=True))
        target = run_probe(ProbeConfig(server.http_url, rate=2000, duration=10, warmup=1.0, realtime=True))
        normal = run_probe(ProbeConfig(server.http_url, rate=2000, duration=10, warmup=1.0))
    held = summary(target)
    print(json.dumps({
        "benchmark": "latency_capacity", "pinned_cpu": 0 if pinned else None,
        "baseline_200": summary(baseline), "target_2000": held, "target_2000_normal_scheduler": summary(normal),
        "pass": target.valid and target.unsent == 0 and abs(held["achieved_rate"] - 2000) <= 20,
    }))


if __name__ == "__main__":
    main()
