"""How much does the prober itself add? Prints one JSON object.

Baseline in the same run: wrk (C, one keep-alive connection) against the same loopback HTTP no-op
server (a child process pinned to CPU 1), twice:
  * wrk paced: a Lua `delay()` of 1 ms between requests, so client and server idle between requests
    exactly as they do under our 1000/s schedule. This is the like-for-like baseline.
  * wrk hot: back to back (~10-40k requests/s). Both processes never sleep, so no CPU wake-up cost is
    paid; no paced prober can match it, and it is reported for the record only.
Then our prober (pinned to CPU 0) at 1000 requests/s over keep-alive connections, and, for the record,
the same prober driving aiohttp's client instead of our raw-stream HTTP code. As root, everything
(server, wrk, prober) runs under SCHED_FIFO so that busy neighbours do not decide the comparison.
Pass: our p50 (from the intended send time, i.e. including our own send lag) within 2x of paced wrk's.

wrk is installed with apt-get if missing. Run: python benchmarks/latency_overhead.py  (about 30 s)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import aiohttp

from conformance.measure.latency import ProbeConfig, Protocol, run_probe
from conformance.measure.latency.loopback import LoopbackServerProcess

RATE, SECONDS = 1000.0, 5.0
UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def ensure_wrk() -> str | None:
    if shutil.which("wrk"):
        return shutil.which("wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        subprocess.run(install, capture_output=True, env=env)
    return shutil.which("wrk")


def parse_wrk(text: str) -> dict:
    """The --latency block: '     50%   45.00us' lines, plus 'Requests/sec'."""
    out = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        out[f"p{pct}_us"] = round(float(value) * UNITS_US[unit], 1)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["requests_per_s"] = float(rps.group(1)) if rps else None
    return out


PACING_LUA = "function delay()\n  return 1\nend\n"  # ms between requests (wrk's Lua hook)


def run_wrk(wrk: str, url: str, paced: bool) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(PACING_LUA)
    cmd = [wrk, "-t1", "-c1", f"-d{int(SECONDS)}s", "--latency", *(["-s", script.name] if paced else []), url]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    if shutil.which("chrt") and os.geteuid() == 0:
        cmd = ["chrt", "-f", "10", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30)
    finally:
        os.unlink(script.name)
    return {**parse_wrk(proc.stdout), "command": " ".join(cmd)}


class AiohttpGet(Protocol):
    """The same GET through aiohttp's client (keep-alive pool), to compare with our raw streams."""

    name = "aiohttp"

    async def connect(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.max_in_flight)
        self.session = aiohttp.ClientSession(connector=connector)

    async def request(self) -> None:
        async with self.session.get(self.config.target) as response:
            await response.read()
            response.raise_for_status()

    async def close(self) -> None:
        await self.session.close()


def main() -> None:
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError):
        pass
    wrk = ensure_wrk()
    with LoopbackServerProcess(cpu=1, realtime=True) as server:
        baseline = run_wrk(wrk, server.http_url, paced=True) if wrk else {"error": "wrk not available"}
        hot = run_wrk(wrk, server.http_url, paced=False) if wrk else {"error": "wrk not available"}
        config = ProbeConfig(server.http_url, rate=RATE, duration=SECONDS, warmup=1.0, realtime=True)
        ours = run_probe(config)
        via_aiohttp = run_probe(config, protocol=AiohttpGet(config))
    ratio = ours.latency["p50_us"] / baseline["p50_us"] if baseline.get("p50_us") else None
    service_ratio = ours.service["p50_us"] / baseline["p50_us"] if baseline.get("p50_us") else None
    print(json.dumps({
        "benchmark": "latency_overhead",
        "rate": RATE, "seconds": SECONDS,
        "wrk_paced_1ms": baseline,
        "wrk_hot": hot,
        "ours": {"p50_us": ours.latency["p50_us"], "p99_us": ours.latency["p99_us"],
                 "service_p50_us": ours.service["p50_us"], "service_p99_us": ours.service["p99_us"],
                 "send_lag_p50_us": ours.send_lag["p50_us"], "cpu_percent": ours.prober_cpu_percent,
                 "valid": ours.valid, "invalid_reason": ours.invalid_reason, "realtime": ours.realtime},
        "aiohttp_client": {"p50_us": via_aiohttp.latency["p50_us"], "p99_us": via_aiohttp.latency["p99_us"],
                           "service_p50_us": via_aiohttp.service["p50_us"],
                           "cpu_percent": via_aiohttp.prober_cpu_percent},
        "p50_ratio_vs_wrk_paced": round(ratio, 2) if ratio else None,
        "service_p50_ratio_vs_wrk_paced": round(service_ratio, 2) if service_ratio else None,
        "pass": ratio is not None and ratio <= 2.0,
    }))


if __name__ == "__main__":
    main()
