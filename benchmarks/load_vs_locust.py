"""Benchmark: our load driver vs plain `locust --headless`, with wrk as the ceiling. Prints ONE JSON object.

    python benchmarks/load_vs_locust.py [--duration 8] [--users 20] [--rounds 3]

Target: nginx (Debian `nginx-light`), one worker process pinned to the last CPU, answering 200 "ok"
from a temp config on 127.0.0.1. Installed with apt-get when missing (needs root), stopped at the end.

What is compared, all in the same run on the same machine:
* `locust_plain_rps`: `locust --headless` with the same user class (`ContentUser`: GET /content/{key}),
  closed loop at full speed (its `wait_time` is 0 without our pacer), stats reset after spawning;
* `driver_rps`: `run_load` with the same class and user count, open model, offered 1.5x what plain
  Locust managed (so the generator, not the schedule, limits it), with our pacer, microsecond HDR
  recording and monitors on;
* `ratio_driver_vs_locust` = median driver_rps / median locust_plain_rps over `--rounds` interleaved
  rounds (goal >= 0.9: our overhead is small); both generators are pinned to CPU 0;
* `requests_per_cpu_s`: requests divided by the CPU seconds the generator processes used (startup
  included), which stays comparable when other work on the machine steals CPU from one of the runs
  (`loadavg` tells how busy the machine was);
* `scaling`: achieved rate with 2 worker processes vs 1 (unpinned, offered far above capacity);
* `wrk_rps`: wrk (C, 1 thread, CPU 0) against the same URL: what one core can drive at most.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import statistics
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conformance.measure.load import run_load  # noqa: E402  (harness side: does not import locust)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

LOCUSTFILE = "from conformance.measure.load.users import ContentUser  # noqa: F401  the class under test\n"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk")) if not _which(tool)]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"missing {missing}: apt-get install -y {' '.join(missing)}")
        log(f"installing {missing} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nginx(tmp: Path, port: int, cpu: int) -> subprocess.Popen:
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(["taskset", "-c", str(cpu), _which("nginx"), "-p", str(tmp), "-c", str(conf),
                             "-e", str(tmp / "error.log")], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("nginx did not start: " + (tmp / "error.log").read_text(errors="replace"))


def run_wrk(url: str, users: int, duration: int) -> float:
    out = subprocess.run(["taskset", "-c", "0", _which("wrk"), "-t1", f"-c{users}", f"-d{duration}s", url],
                         capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def children_cpu_s() -> float:
    """CPU seconds of all waited-for descendants so far (the driver's child waits for its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_plain_locust(tmp: Path, base: str, users: int, duration: int) -> dict:
    locustfile = tmp / "bench_locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = tmp / "plain"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
                    "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--host", base, "--reset-stats",
                    "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR", "ContentUser"],
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=duration + 60,
                   start_new_session=True)
    with open(f"{prefix}_stats.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return {"rps": float(row["Requests/s"]), "requests": int(row["Request Count"])}


def run_driver(base: str, rate: float, users: int, duration: int, workers: int = 1,
               cpus: list[int] | None = None) -> dict:
    result = run_load({"url": base, "rate": rate, "duration_s": duration, "users": users, "workers": workers,
                       "scenario": "content", "cpu_affinity": cpus})
    return {"achieved_rps": result.achieved_rps, "offered_rps": result.offered_rps, "requests": result.requests,
            "failures": result.failures, "dropped": result.dropped, "valid": result.valid,
            "invalid_reason": result.invalid_reason,
            "latency_us": {k: result.latency_us[k] for k in ("p50", "p95", "p99", "max")},
            "cpu_percent_mean": [p["cpu_percent_mean"] for p in result.generator["processes"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_tools()
    cpus = os.cpu_count() or 1
    server_cpu = cpus - 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    loadavg_start = os.getloadavg()
    nginx = start_nginx(tmp, port, server_cpu)
    rounds = []
    try:
        log("wrk ...")
        wrk = run_wrk(base + "/content/k1", args.users, args.duration)
        for i in range(args.rounds):  # interleaved, so drifting background load hits both alike
            log(f"round {i + 1}: plain locust, then the driver (1 process each, CPU 0) ...")
            cpu0 = children_cpu_s()
            plain = run_plain_locust(tmp, base, args.users, args.duration)
            cpu1 = children_cpu_s()
            ours = run_driver(base, rate=1.5 * plain["rps"], users=args.users, duration=args.duration, cpus=[0])
            cpu2 = children_cpu_s()
            rounds.append({"locust_plain_rps": plain["rps"], "driver_rps": ours["achieved_rps"],
                           "ratio": round(ours["achieved_rps"] / plain["rps"], 3) if plain["rps"] else 0.0,
                           "locust_plain_requests_per_cpu_s": round(plain["requests"] / (cpu1 - cpu0), 1),
                           "driver_requests_per_cpu_s": round(ours["requests"] / (cpu2 - cpu1), 1),
                           "driver": ours})
        top = max(r["locust_plain_rps"] for r in rounds)
        log("scaling: 1 vs 2 worker processes, unpinned ...")
        one = run_driver(base, rate=3 * top, users=2 * args.users, duration=args.duration)
        two = run_driver(base, rate=3 * top, users=2 * args.users, duration=args.duration, workers=2)
    finally:
        os.killpg(nginx.pid, 9)
        nginx.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    plain_rps = statistics.median(r["locust_plain_rps"] for r in rounds)
    driver_rps = statistics.median(r["driver_rps"] for r in rounds)
    ratio = driver_rps / plain_rps if plain_rps else 0.0
    plain_eff = statistics.median(r["locust_plain_requests_per_cpu_s"] for r in rounds)
    driver_eff = statistics.median(r["driver_requests_per_cpu_s"] for r in rounds)
    print(json.dumps({
        "benchmark": "load_vs_locust",
        "machine": {"cpus": cpus, "python": platform.python_version(), "kernel": platform.release(),
                    "loadavg_start": [round(x, 2) for x in loadavg_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "target": f"nginx, 1 worker on CPU {server_cpu}, GET /content/{{key}} -> 200",
        "duration_s": args.duration,
        "users": args.users,
        "wrk_rps": round(wrk, 1),
        "locust_plain_rps": round(plain_rps, 1),
        "driver_rps": round(driver_rps, 1),
        "ratio_driver_vs_locust": round(ratio, 3),
        "ratio_ok": ratio >= 0.9,
        "requests_per_cpu_s": {"locust_plain": plain_eff, "driver": driver_eff,
                               "ratio": round(driver_eff / plain_eff, 3) if plain_eff else None},
        "driver_vs_wrk": round(driver_rps / wrk, 3) if wrk else None,
        "scaling": {"workers_1_rps": one["achieved_rps"], "workers_2_rps": two["achieved_rps"],
                    "ratio": round(two["achieved_rps"] / one["achieved_rps"], 3) if one["achieved_rps"] else None,
                    "workers_1": one, "workers_2": two},
        "rounds": rounds,
    }))

if __name__ == "__main__":
    main()
