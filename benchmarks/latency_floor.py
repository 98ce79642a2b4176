"""The prober's floor and bias against servers it was not tuned on, with wrk as the truth. Prints ONE JSON.

    python benchmarks/latency_floor.py [--rounds 2] [--count 2000] [--rate 200] [--builds ...] [--servers ...]

Servers (each its own process, normal scheduling, not pinned: targets are what they are):
  * nginx from the distribution answering a 3-byte static file: the no-op;
  * benchmarks/threaded_sleep_server.py (Python's ThreadingHTTPServer, keep-alive) answering after a
    fixed sleep of 1 ms and of 5 ms.

For each server, in every round, wrk (1 thread, 1 connection; C, no Python) runs before and after the
harness, in two ways:
  * wrk paced: a Lua delay() between requests so that client and server idle between requests as
    they do under the prober's schedule (gap = 1/rate - the server's sleep). The truth is the band
    between the paced runs before and after;
  * wrk hot: back to back, for the record. Neither side ever sleeps, so it pays no CPU wake-up: no
    prober on a schedule can match it, and at 1 and 5 ms the server sleeps anyway.
The harness probes as `latency.request` does (HTTP keep-alive, `rate`/s fixed, `count` requests after
0.5 s of warm-up, SCHED_FIFO where permitted), in two builds within the same round:
  * current: uvloop with timerfd sleeps, httptools parser (as shipped);
  * previous: asyncio's select() loop, the pure-Python parser (the baseline).
`--builds` adds variants that change one factor (current_pinned: the probing thread pinned to the CPU
it started on, ProbeConfig.pin_cpu; current_select_loop; current_pure_parser).
wrk runs under SCHED_FIFO as root, like the prober.

Figures: `floor_ratio` = harness p50 (p99) against nginx / wrk paced p50 (p99), median over rounds;
`bias_us` at 1 and 5 ms = harness - the nearer edge of wrk's band (0 inside it). Goals (2 cores):
floor p50 within 1.5x wrk's and p99 within 2x; bias at 1 ms within 50 us at p50 and 150 us at p99.
Exit status 0 even when a goal is missed (the JSON says which); 2 when a server or wrk is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from conformance.measure.latency import ProbeConfig, run_probe
from conformance.measure.latency.protocols import http as http_protocol
from conformance.measure.latency.protocols.http1 import ResponseParser, make_response_parser
from conformance.measure.latency.timing import PROBE_LOOP_ENV

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from latency_overhead import ensure_wrk, parse_wrk  # noqa: E402

WRK_SECONDS = 3
GOALS = {"floor_p50_ratio": 1.5, "floor_p99_ratio": 2.0, "bias_1ms_p50_us": 50.0, "bias_1ms_p99_us": 150.0}
NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {prefix}/www; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@contextmanager
def nginx_server():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("nginx not found: apt-get install nginx-light")
    with tempfile.TemporaryDirectory(prefix="latency-floor-nginx-") as prefix:
        os.makedirs(f"{prefix}/www")
        os.makedirs(f"{prefix}/tmp")
        Path(f"{prefix}/www/index.html").write_bytes(b"ok\n")
        port = free_port()
        conf = Path(prefix, "nginx.conf")
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, user="user root;\n" if os.geteuid() == 0 else ""))
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", prefix], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_listening(port)
            yield f"http://127.0.0.1:{port}/index.html"
        finally:
            proc.terminate()
            proc.wait(10)


@contextmanager
def sleep_server(delay_ms: float):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "threaded_sleep_server.py"), str(port), str(delay_ms)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        proc.stdout.readline()
        wait_listening(port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)


def run_wrk(wrk: str, url: str, gap_ms: int | None, cpu: int | None) -> dict:
    script = None
    cmd = [wrk, "-t1", "-c1", f"-d{WRK_SECONDS}s", "--latency"]
    if gap_ms is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(f"function delay()\n  return {gap_ms}\nend\n")
        script = f.name
        cmd += ["-s", script]
    cmd.append(url)
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    if shutil.which("chrt") and os.geteuid() == 0:
        cmd = ["chrt", "-f", "10", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=WRK_SECONDS + 30)
    finally:
        if script:
            os.unlink(script)
    return parse_wrk(proc.stdout)


# build -> (event loop, HTTP parser, pinned): "current" is what ships, "previous" the baseline; the
# others take one factor away at a time (--builds) to show what each is worth.
BUILDS = {
    "current": ("auto", make_response_parser, False),
    "previous": ("select", ResponseParser, False),
    "current_pinned": ("auto", make_response_parser, True),
    "current_select_loop": ("select", make_response_parser, False),
    "current_pure_parser": ("auto", ResponseParser, False),
}


def probe(url: str, build: str, rate: float, count: int) -> dict:
    loop, parser, pinned = BUILDS[build]
    os.environ[PROBE_LOOP_ENV] = loop
    http_protocol.make_response_parser = parser
    try:
        result = run_probe(ProbeConfig(url, rate=rate, count=count, warmup=0.5, realtime=True,
                                       lag_limit_us=5000, pin_cpu=pinned))
    finally:
        os.environ.pop(PROBE_LOOP_ENV, None)
        http_protocol.make_response_parser = make_response_parser
    return {"p50_us": result.latency["p50_us"], "p99_us": result.latency["p99_us"],
            "service_p50_us": result.service["p50_us"], "send_lag_p99_us": result.send_lag["p99_us"],
            "valid": result.valid, "invalid_reason": result.invalid_reason, "loop": result.loop,
            "cpu": result.cpu, "realtime": result.realtime, "prober_cpu_percent": result.prober_cpu_percent,
            "samples": result.samples}


def bias(value: float, band: tuple[float, float]) -> float:
    low, high = band
    return 0.0 if low <= value <= high else (value - high if value > high else value - low)


def one_server(wrk: str, url: str, delay_ms: float, rate: float, count: int, cpu: int | None,
               builds: list[str]) -> dict:
    gap_ms = max(0, round(1000 / rate - delay_ms))
    before = {"paced": run_wrk(wrk, url, gap_ms, cpu), "hot": run_wrk(wrk, url, None, cpu)}
    harness = {build: probe(url, build, rate, count) for build in builds}
    after = {"paced": run_wrk(wrk, url, gap_ms, cpu), "hot": run_wrk(wrk, url, None, cpu)}
    out: dict = {"wrk_before": before, "wrk_after": after, "wrk_gap_ms": gap_ms, "harness": harness}
    for q in ("p50_us", "p99_us"):
        band = tuple(sorted((before["paced"][q], after["paced"][q])))
        out[f"wrk_paced_band_{q}"] = band
        for build, figures in harness.items():
            out.setdefault("bias_us", {}).setdefault(build, {})[q] = round(bias(figures[q], band), 1)
            out.setdefault("ratio_to_wrk_paced", {}).setdefault(build, {})[q] = round(figures[q] / band[1], 2)
            hot_band = tuple(sorted((before["hot"][q], after["hot"][q])))
            out.setdefault("ratio_to_wrk_hot", {}).setdefault(build, {})[q] = round(figures[q] / hot_band[1], 2)
            out.setdefault("bias_vs_wrk_hot_us", {}).setdefault(build, {})[q] = round(bias(figures[q], hot_band), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--builds", default="current,previous",
                        help=f"comma-separated, from {', '.join(BUILDS)} (current and previous always run)")
    parser.add_argument("--servers", default="nginx_noop,sleep_1ms,sleep_5ms")
    args = parser.parse_args()
    builds = list(dict.fromkeys(["current", "previous", *args.builds.split(",")]))
    unknown = [b for b in builds if b not in BUILDS]
    if unknown:
        parser.error(f"unknown build {unknown[0]!r}")
    wrk = ensure_wrk()
    if not wrk:
        print(json.dumps({"error": "wrk not available"}))
        return 2
    cpu = None  # wrk, like the shipped prober, is not pinned
    servers = {"nginx_noop": (nginx_server, (), 0.0), "sleep_1ms": (sleep_server, (1,), 1.0),
               "sleep_5ms": (sleep_server, (5,), 5.0)}
    servers = {name: servers[name] for name in args.servers.split(",")}
    rounds = []
    started = time.monotonic()
    for _ in range(args.rounds):
        this_round = {}
        for name, (start, start_args, delay_ms) in servers.items():
            with start(*start_args) as url:
                this_round[name] = one_server(wrk, url, delay_ms, args.rate, args.count, cpu, builds)
        rounds.append(this_round)

    def median(path):
        values = []
        for r in rounds:
            node = r
            for key in path:
                node = node[key]
            values.append(node)
        return round(statistics.median(values), 2)

    def median_or_none(server, *path):
        return median((server, *path)) if server in servers else None

    summary = {}
    for build in builds:
        summary[build] = {
            "floor_p50_ratio": median_or_none("nginx_noop", "ratio_to_wrk_paced", build, "p50_us"),
            "floor_p99_ratio": median_or_none("nginx_noop", "ratio_to_wrk_paced", build, "p99_us"),
            "floor_p50_ratio_to_wrk_hot": median_or_none("nginx_noop", "ratio_to_wrk_hot", build, "p50_us"),
            "floor_p50_us": median_or_none("nginx_noop", "harness", build, "p50_us"),
            "floor_p99_us": median_or_none("nginx_noop", "harness", build, "p99_us"),
            "bias_1ms_p50_us": median_or_none("sleep_1ms", "bias_us", build, "p50_us"),
            "bias_1ms_p99_us": median_or_none("sleep_1ms", "bias_us", build, "p99_us"),
            "bias_1ms_p50_us_vs_wrk_hot": median_or_none("sleep_1ms", "bias_vs_wrk_hot_us", build, "p50_us"),
            "bias_1ms_p99_us_vs_wrk_hot": median_or_none("sleep_1ms", "bias_vs_wrk_hot_us", build, "p99_us"),
            "bias_5ms_p50_us": median_or_none("sleep_5ms", "bias_us", build, "p50_us"),
            "bias_5ms_p99_us": median_or_none("sleep_5ms", "bias_us", build, "p99_us"),
            "prober_cpu_percent": median_or_none(next(iter(servers)), "harness", build, "prober_cpu_percent"),
        }
    current = summary["current"]
    goals = {name: {"goal": goal, "value": current[name], "met": abs(current[name]) <= goal}
             for name, goal in GOALS.items() if current[name] is not None}
    print(json.dumps({"benchmark": "latency_floor", "rate": args.rate, "count": args.count,
                      "rounds": args.rounds, "elapsed_s": round(time.monotonic() - started, 1),
                      "summary": summary, "goals": goals, "all_goals_met": all(g["met"] for g in goals.values()),
                      "per_round": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
