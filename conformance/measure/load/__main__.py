"""Manual load runs: `python -m conformance.measure.load --url http://127.0.0.1:PORT/ --rate 200 --duration 10`.

Exit codes: 0 measured and valid, 3 measured but not valid (generator saturated: see the reason) or
nothing measured, 2 bad arguments or a refused target.

`--join HOST:PORT` turns this machine into a worker of a master started elsewhere with
`--remote-workers N --master-bind-host 0.0.0.0` (see docs/load.md); with `--again` it joins the next
master on HOST:PORT each time one ends (a run's load measurements each start their own master:
`edge-conformance run --load-remote-workers M --load-master HOST:PORT`), until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from conformance.model.errors import ConfigError

from .scenarios import SCENARIOS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m conformance.measure.load",
                                description="Open-model load from Locust child processes, with HDR latency.")
    p.add_argument("--url", help="base URL (http://127.0.0.1:8080/) or tcp://host:port for tcp_echo")
    p.add_argument("--rate", type=float, help="offered requests/s (all workers together)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of paced load (default 10)")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), help="built-in scenario (default: endpoints)")
    p.add_argument("--endpoint", action="append", default=[], metavar="[NAME=][METHOD ]PATH[*WEIGHT]",
                   help='endpoints scenario, repeatable: "GET /items*3", "post=POST /orders" (default "GET /")')
    p.add_argument("--config", help="JSON file with the full load config (flags override its values)")
    p.add_argument("--users", type=int, help="concurrency cap (default: from the rate)")
    p.add_argument("--workers", type=int, help="load-generating processes on this machine (default 1)")
    p.add_argument("--remote-workers", type=int, help="workers the master waits for from other machines")
    p.add_argument("--master-bind-host", help="interface for workers to connect to (default 127.0.0.1)")
    p.add_argument("--master-port", type=int, help="master port (default: any free port)")
    p.add_argument("--allow-host", action="append", default=[], help="non-loopback host you may load")
    p.add_argument("--timeout", type=float, help="hard limit for the whole run, seconds")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--join", metavar="HOST:PORT", help="run as a worker of a master on HOST:PORT")
    p.add_argument("--again", action="store_true",
                   help="with --join: join the next master on HOST:PORT whenever one ends, until Ctrl-C")
    return p


def _endpoint(spec: str) -> dict:
    """'[NAME=][METHOD ]PATH[*WEIGHT]' -> an endpoints entry ("GET /items*3", "order=POST /orders")."""
    name = ""
    if "=" in spec.split(" ", 1)[0] and not spec.startswith("/"):
        name, spec = spec.split("=", 1)
    weight = 1.0
    if "*" in spec:
        spec, raw_weight = spec.rsplit("*", 1)
        weight = float(raw_weight)
    parts = spec.split()
    method, path = (parts[0].upper(), parts[1]) if len(parts) == 2 else ("GET", parts[0])
    return {"name": name or f"{method} {path}", "method": method, "url": path, "weight": weight}


def _config(args: argparse.Namespace) -> dict:
    data: dict = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            data = json.load(fh)
    flags = {"url": args.url, "rate": args.rate, "duration_s": args.duration, "scenario": args.scenario,
             "users": args.users, "workers": args.workers, "remote_workers": args.remote_workers,
             "master_bind_host": args.master_bind_host, "master_port": args.master_port, "timeout_s": args.timeout}
    data.update({k: v for k, v in flags.items() if v is not None})
    if args.endpoint:
        data["endpoints"] = [_endpoint(s) for s in args.endpoint]
    if not data.get("scenario") and not data.get("endpoints"):
        data["endpoints"] = [_endpoint("GET /")]
    return data


def _summary(result) -> str:
    lat = result.latency_us
    lines = [
        f"{'VALID' if result.valid else 'INVALID'}: {result.invalid_reason or 'generator kept up'}",
        f"offered {result.offered_rps:.1f}/s  achieved {result.achieved_rps:.1f}/s  "
        f"requests {result.requests}  failures {result.failures}  dropped {result.dropped}",
        f"latency ms  p50 {lat['p50'] / 1000:.3f}  p95 {lat['p95'] / 1000:.3f}  "
        f"p99 {lat['p99'] / 1000:.3f}  max {lat['max'] / 1000:.3f}",
    ]
    for name, e in result.endpoints.items():
        lines.append(f"  {e['method']:6} {name}: {e['requests']} req, {e['failures']} fail "
                     f"{e['errors'] or ''} p99 {e['latency_us']['p99'] / 1000:.3f} ms")
    return "\n".join(lines)


def _join_again(worker: list[str]) -> int:
    """One worker per master, again and again: each ends when its master quits (or gives up on it)."""
    import signal
    import subprocess
    import time

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    started = finished = 0
    try:
        while True:
            child = subprocess.Popen(worker)
            started += 1
            try:
                code = child.wait()
            finally:
                if child.poll() is None:
                    child.terminate()
                    try:
                        child.wait(5)
                    except subprocess.TimeoutExpired:
                        child.kill()
            finished += 1
            print(f"load worker: master done (worker exit {code}); joining the next one", file=sys.stderr,
                  flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"load worker: stopped ({started} worker(s) started, {finished} finished)", file=sys.stderr,
              flush=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.join:
        host, _, port = args.join.rpartition(":")
        worker = [sys.executable, "-m", "conformance.measure.load.child", "--worker",
                  "--master-host", host or "127.0.0.1", "--master-port", port or "5557"]
        if args.again:
            return _join_again(worker)
        # Become the Locust worker in a fresh interpreter: locust must be imported first (gevent).
        os.execv(sys.executable, worker)
    if args.url is None and not args.config:
        _parser().error("--url is required")
    if args.rate is None and not args.config:
        _parser().error("--rate is required")

    from .driver import LoadError, run_load

    try:
        result = run_load(_config(args), allow_hosts=args.allow_host)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result.to_dict(), indent=2) if args.json else _summary(result))
    return 0 if result.valid else 3


if __name__ == "__main__":
    sys.exit(main())
