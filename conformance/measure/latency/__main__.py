"""`python -m conformance.measure.latency URL --rate 200 --duration 5 [--protocol ...] [--json]`

Manual probing. Exit status: 0 measured and valid, 3 measured but invalid (the prober could not keep
its schedule: the numbers are not trustworthy), 2 bad arguments or a refused target.
"""

from __future__ import annotations

import argparse
import json
import sys

from conformance.model.errors import ConfigError

from .config import ProbeConfig
from .protocols import PROTOCOLS
from .prober import run_probe


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m conformance.measure.latency",
                                description="Open-loop latency probe (coordinated-omission corrected, HDR, us).")
    p.add_argument("url", help="http(s)://host[:port]/path, tcp://host:port or udp://host:port")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), help="default: from the URL scheme")
    p.add_argument("--rate", type=float, default=100.0, help="requests per second (default 100)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="measured seconds (default 5)")
    group.add_argument("--count", type=int, help="measured requests instead of a duration")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds sent but not recorded (default 0.5)")
    p.add_argument("--arrivals", choices=["fixed", "poisson"], default="fixed")
    p.add_argument("--seed", type=int, default=0, help="seed for poisson arrivals")
    p.add_argument("--max-in-flight", type=int, default=64)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per request (default 2)")
    p.add_argument("--method", default="GET")
    p.add_argument("--data", default="", help="request body (POST)")
    p.add_argument("-H", "--header", action="append", default=[], metavar="NAME:VALUE")
    p.add_argument("--payload-size", type=int, default=64, help="echo payload bytes")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--lag-limit-us", type=float, default=1000.0, help="self-check: late-send limit")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="permit this non-loopback host (repeatable); without it only loopback is probed")
    p.add_argument("--calibrate", action="store_true", help="measure the harness floor first")
    p.add_argument("--realtime", action="store_true",
                   help="probe under SCHED_FIFO (root): timing immune to busy neighbours")
    p.add_argument("--pin-cpu", action="store_true",
                   help="pin the probing thread to the CPU it runs on while it probes")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        headers = tuple(tuple(part.strip() for part in h.split(":", 1)) for h in args.header)
        if any(len(h) != 2 for h in headers):
            raise ConfigError(None, None, "--header", "use NAME:VALUE")
        config = ProbeConfig(
            target=args.url, protocol=args.protocol, rate=args.rate,
            duration=None if args.count else (args.duration or 5.0), count=args.count, warmup=args.warmup,
            arrivals=args.arrivals, seed=args.seed, max_in_flight=args.max_in_flight, timeout=args.timeout,
            method=args.method, body=args.data.encode(), headers=headers, payload_size=args.payload_size,
            verify_tls=not args.insecure, lag_limit_us=args.lag_limit_us,
            allow_hosts=frozenset(args.allow_host), calibrate=args.calibrate, realtime=args.realtime,
            pin_cpu=args.pin_cpu)
        result = run_probe(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary_line())
        lag = result.send_lag
        print(f"send lag p50 {lag['p50_us']} us, p99 {lag['p99_us']} us; loop lag p99 {result.loop_lag['p99_us']} us; "
              f"prober CPU {result.prober_cpu_percent}%{' (SCHED_FIFO)' if result.realtime else ''} on {result.loop}"
              f"{f', CPU {result.cpu}' if result.cpu is not None else ''}")
        if result.errors:
            print("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(result.errors.items())))
    return 0 if result.valid else 3


if __name__ == "__main__":
    sys.exit(main())
