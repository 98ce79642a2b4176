"""Sample results.json dicts, shaped like the engine writes them (schema edge-conformance/results/v1)."""

from __future__ import annotations

import copy
import functools
import random

import pytest
from hdrh.histogram import HdrHistogram

XSS_TAG = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(2)>'
HOSTILE = f"{XSS_TAG}{XSS_ATTR}"


def req(rid: str, site: str = "store-1", status: str = "pass", level: str = "must", **extra) -> dict:
    r = {
        "id": rid, "title": f"{rid} title", "profile": "edge-baseline", "site": site, "role": "edge",
        "level": level, "check": "functional.http", "suite": "functional", "status": status,
        "advisory": status == "fail" and level != "must",
        "expect": "status == 200 and latency <= 500 ms",
        "measured": {"status": {"value": 200, "unit": ""}, "latency": {"value": 12.3, "unit": "ms"}},
        "message": f"{rid} {site}: {status}",
        "source": "OSF-2018 §Operational requirements", "rationale": "Remote sites must be observable.",
        "duration": 0.123, "params": {"endpoint": "api", "path": "/health"}, "waiver": None, "notes": [],
    }
    r.update(extra)
    return r


def results(requirements: list[dict], verdict: str, state: str = "finished", **extra) -> dict:
    counts = {s: 0 for s in ("pass", "fail", "error", "inconclusive", "skip", "waived", "not-run")}
    for r in requirements:
        counts[r["status"]] += 1
    doc = {
        "schema": "edge-conformance/results/v1",
        "harness": {"name": "edge-conformance", "version": "0.1.0"},
        "run_id": "20261126T235900Z-ab12cd",
        "started": "2026-11-26T23:59:00.000Z",
        "finished": None if state == "running" else "2026-11-27T00:03:10.500Z",
        "state": state,
        "host": {"hostname": "ci-runner", "platform": "Linux-6.1-x86_64", "python": "3.11.7", "cpus": 2,
                 "memory_bytes": 24 * 1024 ** 3},
        "profiles": [{"id": "edge-baseline", "version": "0.1", "title": "Edge baseline",
                      "sha256": "ab" * 32, "source": "builtin:edge-baseline"}],
        "target": {"name": "lab", "kind": "emulated", "topology": "three-site",
                   "sites": [{"name": "store-1", "role": "edge", "endpoints": {"api": "http://127.0.0.1:8081"},
                              "hosts": ["local://"]},
                             {"name": "store-2", "role": "edge", "endpoints": {"api": "http://127.0.0.1:8082"},
                              "hosts": []}]},
        "options": {"strict": False, "suites": [], "sites": [], "waivers": None},
        "verdict": verdict,
        "counts": counts,
        "calibration": None,
        "requirements": requirements,
        "waivers": {"applied": [], "expired": []},
    }
    doc.update(extra)
    return doc


@functools.lru_cache(maxsize=None)  # recording 20k values takes a while; the encoding is immutable
def histogram(median_us: float, spread: float = 0.5, n: int = 20000, seed: int = 1) -> str:
    """A real HDR histogram of lognormal latencies, encoded as results.json stores it."""
    rng = random.Random(seed)
    h = HdrHistogram(1, 60_000_000, 3)
    for _ in range(n):
        h.record_value(max(1, int(rng.lognormvariate(0, spread) * median_us)))
    return h.encode().decode("ascii")


def _conformant() -> dict:
    return results([req("BASE-FUN-01"), req("BASE-FUN-01", site="store-2"),
                    req("BASE-FUN-03", level="should")], "conformant")


def _non_conformant() -> dict:
    waiver = {"reason": "vendor fix due in 4.2", "who": "jane.doe@example.com", "expires": "2027-01-31"}
    reqs = [
        req("BASE-FUN-01"),
        req("BASE-FUN-02", site="store-2", status="fail",
            measured={"status": {"value": 503, "unit": ""}, "latency": {"value": 12.3, "unit": "ms"}},
            expect="status == 200", message="BASE-FUN-02 store-2: status = 503, expected == 200"),
        req("BASE-LAT-01", status="error", message="BASE-LAT-01 store-1: connection refused", measured={}),
        req("BASE-LAT-02", status="inconclusive", message="BASE-LAT-02 store-1: generator saturated"),
        req("BASE-SEC-01", status="skip", message="no TLS endpoint declared for this site"),
        req("BASE-FUN-04", status="waived", waiver=waiver, message="BASE-FUN-04 store-1: status = 500"),
        req("BASE-FUN-03", level="should", status="fail",
            measured={"status": {"value": 200, "unit": ""}, "latency": {"value": 812.0, "unit": "ms"}},
            message="BASE-FUN-03 store-1: latency = 812 ms, expected <= 500 ms"),
        req("BASE-FOO-01", level="may", status="not-run", message="", measured={}),
    ]
    return results(reqs, "non-conformant", waivers={
        "applied": [{"id": "BASE-FUN-04", "site": "store-1", **waiver}],
        "expired": [{"id": "BASE-FUN-09", "site": "all", "reason": "old exemption", "who": "ops",
                     "expires": "2026-01-01"}]})


def _interrupted() -> dict:
    reqs = [req("BASE-FUN-01"), req("BASE-FUN-01", site="store-2", status="not-run", measured={}, message="")]
    doc = results(reqs, "incomplete", state="interrupted")
    del doc["calibration"], doc["waivers"], doc["counts"]  # a partial file from an older harness
    return doc


def _with_raw() -> dict:
    lat = dict(check="latency.request", suite="latency", expect="p99 <= 20 ms")
    reqs = [
        req("RCB-LAT-01", site="store-1", status="pass", **lat,
            measured={"p99": {"value": 9.1, "unit": "ms"}, "p50": {"value": 4.0, "unit": "ms"}},
            raw={"latency": {"histogram": histogram(4000), "unit": "us", "threshold_us": 20000,
                             "service_histogram": histogram(3000, seed=2)}}),
        req("RCB-LAT-01", site="store-2", status="fail", **lat,
            measured={"p99": {"value": 38.2, "unit": "ms"}},
            message="RCB-LAT-01 store-2: p99 = 38.2 ms, expected <= 20 ms",
            raw={"latency": {"histogram": histogram(15000), "unit": "us", "threshold_us": 20000}}),
        req("RCB-LOAD-01", site="store-1", check="load.http", suite="load", expect="throughput >= 90 rps",
            measured={"throughput": {"value": 98.0, "unit": "rps"}},
            raw={"timeseries": [{"t": float(t), "rps": 90.0 + t % 7, "p95_ms": 10.0 + t % 5, "users": 10,
                                 "errors_per_s": 0.0} for t in range(60)]}),
        req("RES-PART-01", site="store-1", check="resilience.partition", suite="resilience",
            expect="success_ratio >= 0.99", measured={"success_ratio": {"value": 0.98, "unit": ""}},
            status="fail", level="should",
            raw={"sweep": {"param": "delay_ms", "unit": "ms",
                           "rows": [{"value": v, "success_ratio": r, "duration_s": d}
                                    for v, r, d in ((5, 1.0, 0.4), (50, 0.99, 0.9), (200, 0.9, 2.5))]}}),
    ]
    return results(reqs, "non-conformant", calibration={"floor_p50_us": 80, "floor_p99_us": 310})


SAMPLES = {"conformant": _conformant, "non_conformant": _non_conformant, "interrupted": _interrupted,
           "with_raw": _with_raw}


@pytest.fixture
def conformant() -> dict:
    return _conformant()


@pytest.fixture
def non_conformant() -> dict:
    return _non_conformant()


@pytest.fixture
def interrupted() -> dict:
    return _interrupted()


@pytest.fixture
def with_raw() -> dict:
    return _with_raw()


@pytest.fixture(params=sorted(SAMPLES))
def any_results(request) -> dict:
    return SAMPLES[request.param]()


@pytest.fixture
def injection() -> str:
    """The markup `hostile` puts into every target-controlled string."""
    return HOSTILE


@pytest.fixture
def hostile() -> dict:
    """A non-conformant run whose target-controlled text tries to break out of every format."""
    doc = copy.deepcopy(_with_raw())
    doc["requirements"] += _non_conformant()["requirements"]
    doc["target"]["name"] = HOSTILE
    doc["target"]["sites"][0]["name"] = HOSTILE
    doc["target"]["sites"][0]["endpoints"] = {"api": f"http://127.0.0.1:8081/{HOSTILE}"}
    for r in doc["requirements"]:
        r["site"] = HOSTILE
        r["message"] = f"{r['message']} {HOSTILE}\x1b[31m\x00\x07"
        r["notes"] = [HOSTILE]
    doc["waivers"] = {"applied": [{"id": "X", "site": HOSTILE, "reason": HOSTILE, "who": HOSTILE,
                                   "expires": "2027-01-01"}], "expired": []}
    return doc
