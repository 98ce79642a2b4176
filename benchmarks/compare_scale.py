"""How long, and how much memory, does `edge-conformance compare` take on fleet-scale results? Prints JSON.

Generates two results.json files of SITES x REQUIREMENTS entries (default 1,000 x 30, about 36 MB each,
written with indent=2 as the engine writes them): every entry with its measured values, `ended` and
`validity`, and on latency requirements (one in three) the raw latency HDR histogram. NEW differs from
BASE by a few changes (p99 up on some sites, other values down, a status flip, one entry removed), so
the comparison has rows of several kinds to sort and render. Then runs the real command in a child
process, `python -m conformance.cli compare BASE NEW` (markdown, then `--format json`), and reports
its wall time and peak RSS (from wait4).

Run: python benchmarks/compare_scale.py [--sites 1000] [--requirements 30] [--timeout 600]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hdrh.histogram import HdrHistogram


def _histograms(n: int, rng: random.Random) -> list[str]:
    out = []
    for i in range(n):
        h = HdrHistogram(1, 60_000_000, 2)
        for _ in range(5_000):
            h.record_value(int(rng.lognormvariate(8.5 + i * 0.05, 0.3)))
        encoded = h.encode()
        out.append(encoded.decode("ascii") if isinstance(encoded, bytes) else encoded)
    return out


def _entry(rid: str, site: str, kind: int, hists: list[str], rng: random.Random) -> dict:
    latency = kind % 3 == 0
    measured = ({"p50": {"value": round(rng.uniform(4, 6), 3), "unit": "ms"},
                 "p99": {"value": round(rng.uniform(10, 14), 3), "unit": "ms"},
                 "error_ratio": {"value": 0.0, "unit": "%"}} if latency else
                {"status": {"value": 200, "unit": ""},
                 "latency": {"value": round(rng.uniform(5, 30), 3), "unit": "ms"}})
    expect = "p99 <= 20 ms and error_ratio < 0.1 %" if latency else "status == 200 and latency <= 500 ms"
    raw = {}
    if latency:
        raw = {"latency": {"histogram": hists[kind % len(hists)],
                           "unit": "us", "threshold_us": 20_000, "threshold_metric": "p99"}}
    return {
        "id": rid, "title": f"{rid}: a requirement of the benchmark profile", "profile": "bench", "site": site,
        "role": "edge", "level": "must" if kind % 4 else "should",
        "check": "latency.request" if latency else "functional.http",
        "suite": "latency" if latency else "functional", "status": "pass", "advisory": False,
        "expect": expect, "measured": measured, "message": f"{rid} {site}: pass",
        "ended": {"how": "measured"},
        "validity": [{"kind": "samples", "count": 20000, "metric": "p99"}] if latency else [],
        "source": "OSF-2018 Operational requirements", "rationale": "Remote sites must be observable.",
        "duration": round(rng.uniform(0.1, 3.0), 3), "params": {"endpoint": "api", "path": "/health"},
        "waiver": None, "notes": [], "raw": raw,
    }


def generate(sites: int, requirements: int, seed: int = 1) -> tuple[dict, dict]:
    rng = random.Random(seed)
    hists = _histograms(6, rng)
    entries = [_entry(f"BENCH-{k:02d}", f"store-{s:04d}", k, hists, rng)
               for s in range(sites) for k in range(requirements)]
    counts = {s: 0 for s in ("pass", "fail", "error", "inconclusive", "not-applicable", "not-measured",
                             "waived", "not-run")}
    counts["pass"] = len(entries)
    base = {
        "schema": "edge-conformance/results/v2", "harness": {"name": "edge-conformance", "version": "0.1.0"},
        "run_id": "20260101T000000Z-base00", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T01:00:00Z",
        "state": "finished",
        "host": {"hostname": "bench", "platform": "Linux", "python": "3.11", "cpus": 2, "memory_bytes": 2**33},
        "profiles": [{"id": "bench", "version": "1", "title": "Benchmark", "sha256": "ab" * 32,
                      "source": "bench.yaml", "extends": []}],
        "target": {"name": "fleet", "kind": "real",
                   "sites": [{"name": f"store-{s:04d}", "role": "edge"} for s in range(sites)]},
        "options": {"strict": False},
        "scope": {"full": True, "narrowed_by": [], "changed_by": []},
        "verdict": "conformant", "counts": counts, "calibration": None, "requirements": entries,
        "waivers": {"applied": [], "expired": []},
    }
    new = copy.deepcopy(base)
    new["run_id"] = "20260102T000000Z-new000"
    for i, e in enumerate(new["requirements"]):
        if i % 97 == 0 and "p99" in e["measured"]:
            e["measured"]["p99"]["value"] = round(e["measured"]["p99"]["value"] * 1.4, 3)  # regression
        elif i % 89 == 0:
            e["measured"]["latency" if "latency" in e["measured"] else "p50"]["value"] *= 0.5  # improvement
    worse = new["requirements"][5]
    worse.update(status="error", measured={}, ended={"how": "error", "reason": "connection refused"},
                 message="could not measure: connection refused")
    new["counts"]["pass"] -= 2
    new["counts"]["error"] += 1
    del new["requirements"][7]
    new["verdict"] = "incomplete"
    return base, new


def _run(cmd: list[str], timeout: float) -> dict:
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                return {"seconds": None, "timed_out_after_s": timeout, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines() if proc.stderr else []
    proc.stderr.close()
    return {"seconds": round(seconds, 2), "exit": os.waitstatus_to_exitcode(status),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stderr_tail": err[-1:] if err else []}


def write_files(directory: Path, sites: int, requirements: int) -> None:
    base, new = generate(sites, requirements)
    (directory / "base.json").write_text(json.dumps(base, indent=2), encoding="utf-8")
    (directory / "new.json").write_text(json.dumps(new, indent=2), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=1000)
    ap.add_argument("--requirements", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--generate", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        write_files(Path(args.generate), args.sites, args.requirements)
        return
    with tempfile.TemporaryDirectory(prefix="compare-bench-") as d:
        # generated in a child: a child's peak RSS counts the parent's pages it was forked with
        subprocess.run([sys.executable, __file__, "--generate", d, "--sites", str(args.sites),
                        "--requirements", str(args.requirements)], check=True)
        bp, np_ = Path(d) / "base.json", Path(d) / "new.json"
        cli = [sys.executable, "-m", "conformance.cli", "compare", str(bp), str(np_)]
        out = {"benchmark": "compare_scale", "sites": args.sites, "requirements": args.requirements,
               "entries": args.sites * args.requirements, "file_mb": round(bp.stat().st_size / 1e6, 1),
               "md": _run(cli, args.timeout), "json": _run(cli + ["--format", "json"], args.timeout)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
