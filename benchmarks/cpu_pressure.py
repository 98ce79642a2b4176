"""What CPU pressure (PSI "some") does a latency probe see, quiet and beside busy processes? Prints JSON.

Grounds the suite's rule (conformance/measure/pressure.py, CONTENDED_RATIO): a latency miss measured
while some task waited for a CPU at least 25 % of the probe is inconclusive. Baseline in the same run:
the quiet probe (no busy process). Each round probes a loopback HTTP server (a child process) at
200/s for 4 s, the suite's rate, with 0, 1, 2 and 3 busy-looping processes beside it, and reports the
pressure over the probe and the p50/p99 stretch relative to the quiet round. Without root the prober
runs without SCHED_FIFO, as in CI.

Run: python benchmarks/cpu_pressure.py  (about 30 s; needs /proc/pressure/cpu)
"""

from __future__ import annotations

import json
import multiprocessing
import os

from conformance.measure.latency import calibrate
from conformance.measure.pressure import CONTENDED_RATIO, PressureWindow


def _spin() -> None:
    while True:
        pass


def round_with(busy: int) -> dict:
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        window = PressureWindow()
        floor = calibrate("http", 200.0, duration=4.0)
        pressure = window.stop()
    finally:
        for p in spinners:
            p.kill()
            p.join()
    return {"busy_processes": busy, "cpu_some_percent": pressure.percent() if pressure else None,
            "p50_us": floor.p50_us, "p99_us": floor.p99_us, "probe_valid": floor.valid}


def main() -> None:
    rounds = [round_with(n) for n in (0, 1, 2, 3)]
    quiet = rounds[0]
    for r in rounds:
        r["p50_ratio"] = round(r["p50_us"] / quiet["p50_us"], 2) if r["p50_us"] and quiet["p50_us"] else None
        r["p99_ratio"] = round(r["p99_us"] / quiet["p99_us"], 2) if r["p99_us"] and quiet["p99_us"] else None
        r["judged_contended"] = (r["cpu_some_percent"] or 0) >= CONTENDED_RATIO * 100
    print(json.dumps({"benchmark": "cpu_pressure", "cores": os.cpu_count(),
                      "contended_at_percent": CONTENDED_RATIO * 100, "rounds": rounds,
                      "quiet_is_below_limit": not rounds[0]["judged_contended"]}, indent=2))


if __name__ == "__main__":
    main()
