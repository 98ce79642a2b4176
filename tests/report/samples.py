"""Sample results.json dicts, shaped like the engine writes them (schema edge-conformance/results/v2),
and one from an older harness (v1: "skip", no `ended`, `validity` or `scope`) that must still render;
`req`, `not_measured` and `results` build others. The fixtures that hand them out: conftest.py."""

from __future__ import annotations

import copy
import functools
import random

from hdrh.histogram import HdrHistogram

from conformance.model import results as R
from conformance.model import verdict as MV

XSS_TAG = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(2)>'
HOSTILE = f"{XSS_TAG}{XSS_ATTR}"


# How a check of each status ended, as the plugin records it (model/verdict.py ENDINGS).
ENDED = {"pass": {"how": "measured"}, "fail": {"how": "measured"}, "waived": {"how": "measured"},
         "inconclusive": {"how": "measured"},
         "error": {"how": "error", "reason": "could not measure: connection refused"},
         "not-measured": {"how": "not-measured", "reason": "the site has no host to check",
                          "remedy": "add a host to the site"},
         "not-applicable": {"how": "not-applicable", "reason": "no endpoint asks for credentials"},
         "not-run": {"how": "not-run", "reason": "not run"}}


def req(rid: str, site: str = "store-1", status: str = "pass", level: str = "must", **extra) -> dict:
    r = {
        "id": rid, "title": f"{rid} title", "profile": "edge-baseline", "site": site, "role": "edge",
        "level": level, "check": "functional.http", "suite": "functional", "status": status,
        "advisory": MV.is_advisory(level, status),
        "expect": "status == 200 and latency <= 500 ms",
        "measured": {"status": {"value": 200, "unit": ""}, "latency": {"value": 12.3, "unit": "ms"}},
        "message": f"{rid} {site}: {status}",
        "ended": dict(ENDED.get(status, {"how": "measured"})),
        "validity": [{"kind": "invalid", "reason": "generator saturated"}] if status == "inconclusive" else [],
        "source": "OSF-2018 §Operational requirements", "rationale": "Remote sites must be observable.",
        "duration": 0.123, "params": {"endpoint": "api", "path": "/health"}, "waiver": None, "notes": [],
        "raw": {},
    }
    r.update(extra)
    return r


def not_measured(rid: str, site: str = "store-1", level: str = "must", reason: str = "", remedy: str = "",
                 **extra) -> dict:
    """A not-measured entry with the message model/verdict.py writes for it."""
    reason = reason or f"site {site} has no host to check"
    remedy = remedy or f"add a host to {site}"
    return req(rid, site=site, status="not-measured", level=level, measured={},
               ended={"how": "not-measured", "reason": reason, "remedy": remedy},
               message=f"{rid} {site}: {MV.not_measured_text(reason, remedy)}", **extra)


FULL_SCOPE = {"full": True, "narrowed_by": [], "changed_by": [], "requirements": [], "suites": [], "sites": [],
              "only": [], "keyword": "", "markers": "", "deselect": [], "last_failed": False,
              "collect_only": False, "tests": [], "defects": [], "backend": "process", "topology": "retail",
              "emulated": True, "allow_faults": False, "strict": False, "waivers": None}


def results(requirements: list[dict], verdict: str, state: str = "finished", **extra) -> dict:
    counts = {s: 0 for s in R.STATUSES}
    for r in requirements:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    doc = {
        "schema": "edge-conformance/results/v2",
        "harness": {"name": "edge-conformance", "version": "0.1.0"},
        "run_id": "20261126T235900Z-ab12cd",
        "started": "2026-11-26T23:59:00.000Z",
        "finished": None if state == "running" else "2026-11-27T00:03:10.500Z",
        "state": state,
        "host": {"hostname": "ci-runner", "platform": "Linux-6.1-x86_64", "python": "3.11.7", "cpus": 2,
                 "memory_bytes": 24 * 1024 ** 3},
        "profiles": [{"id": "edge-baseline", "version": "0.1", "title": "Edge baseline",
                      "sha256": "ab" * 32, "source": "builtin:edge-baseline", "extends": []}],
        "target": {"name": "lab", "kind": "emulated", "topology": "three-site",
                   "sites": [{"name": "store-1", "role": "edge", "endpoints": {"api": "http://127.0.0.1:8081"},
                              "hosts": ["local://"]},
                             {"name": "store-2", "role": "edge", "endpoints": {"api": "http://127.0.0.1:8082"},
                              "hosts": []}]},
        "options": {"strict": False, "suites": [], "sites": [], "waivers": None},
        "scope": copy.deepcopy(FULL_SCOPE),
        "verdict": verdict,
        "counts": counts,
        "calibration": None,
        "requirements": requirements,
        "waivers": {"applied": [], "expired": []},
    }
    doc.update(extra)
    return doc


@functools.cache  # recording 20k values takes a while; the encoding is immutable
def histogram(median_us: float, spread: float = 0.5, n: int = 20000, seed: int = 1) -> str:
    """A real HDR histogram of lognormal latencies, encoded as results.json stores it."""
    rng = random.Random(seed)
    h = HdrHistogram(1, 60_000_000, 3)
    for _ in range(n):
        h.record_value(max(1, int(rng.lognormvariate(0, spread) * median_us)))
    return h.encode().decode("ascii")


def sample_conformant() -> dict:
    return results([req("BASE-FUN-01"), req("BASE-FUN-01", site="store-2"),
                    req("BASE-FUN-03", level="should")], "conformant")


def sample_non_conformant() -> dict:
    """Every v2 status at least once: a must failure, undecided musts, an advisory failure and error."""
    waiver = {"reason": "vendor fix due in 4.2", "who": "jane.doe@example.com", "expires": "2027-01-31"}
    reqs = [
        req("BASE-FUN-01"),
        req("BASE-FUN-02", site="store-2", status="fail",
            measured={"status": {"value": 503, "unit": ""}, "latency": {"value": 12.3, "unit": "ms"}},
            expect="status == 200", message="BASE-FUN-02 store-2: status = 503, expected == 200"),
        req("BASE-LAT-01", status="error", message="BASE-LAT-01 store-1: could not measure: connection refused",
            measured={}),
        req("BASE-LAT-02", status="inconclusive", message="BASE-LAT-02 store-1: inconclusive: generator saturated"),
        req("BASE-SEC-01", status="not-applicable", measured={},
            message="BASE-SEC-01 store-1: not applicable: no endpoint asks for credentials"),
        not_measured("BASE-HOST-01", site="store-2"),
        req("BASE-FUN-04", status="waived", waiver={"id": "BASE-FUN-04", "site": "store-1", **waiver},
            message="BASE-FUN-04 store-1: status = 500"),
        req("BASE-FUN-03", level="should", status="fail",
            measured={"status": {"value": 200, "unit": ""}, "latency": {"value": 812.0, "unit": "ms"}},
            message="BASE-FUN-03 store-1: latency = 812 ms, expected <= 500 ms"),
        req("BASE-LAT-03", site="store-2", level="should", status="error", measured={},
            message="BASE-LAT-03 store-2: could not measure: timed out after 5 s"),
        req("BASE-FOO-01", level="may", status="not-run", message="", measured={}),
    ]
    return results(reqs, "non-conformant", waivers={
        "applied": [{"id": "BASE-FUN-04", "site": "store-1", **waiver}],
        "expired": [{"id": "BASE-FUN-09", "site": "all", "reason": "old exemption", "who": "ops",
                     "expires": "2026-01-01"}]})


LEFT_OUT = "suite latency left out of this run (--suite functional security)"


def sample_partial() -> dict:
    """A narrowed run with a defect: what it left out is not measured, so it can only be incomplete."""
    left_out = [not_measured(f"BASE-LAT-{i:02d}", site=site, level="should" if i == 6 else "must",
                             reason=LEFT_OUT, remedy="add --suite latency", check="latency.request", suite="latency")
                for i in range(1, 7) for site in ("store-1", "store-2")]
    reqs = [req("BASE-FUN-01"), req("BASE-FUN-01", site="store-2"), *left_out,
            not_measured("BASE-HOST-01", site="store-1"), not_measured("BASE-HOST-01", site="store-2"),
            not_measured("BASE-SEC-02", reason="fault hooks not allowed", remedy="pass --allow-faults"),
            req("BASE-SEC-03", site="store-2", status="not-applicable", measured={},
                message="BASE-SEC-03 store-2: not applicable: no endpoint asks for credentials")]
    scope = {**copy.deepcopy(FULL_SCOPE), "full": False, "suites": ["functional", "security"],
             "narrowed_by": ["--suite functional security"], "defects": ["store-1:slow-path"],
             "waivers": "waivers.yaml", "changed_by": ["--defect store-1:slow-path", "--waivers waivers.yaml"]}
    return results(reqs, "incomplete", scope=scope)


def sample_legacy_v1() -> dict:
    """A results.json of the v1 harness: "skip", no `ended`, `validity` or `scope`."""
    reqs = [req("BASE-FUN-01"), req("BASE-SEC-01", status="skip", message="BASE-SEC-01 store-1: skipped: no TLS"),
            req("BASE-FUN-02", site="store-2", status="fail", message="BASE-FUN-02 store-2: status = 503")]
    for r in reqs:
        del r["ended"], r["validity"], r["raw"]
        r["advisory"] = False
    doc = results(reqs, "non-conformant", schema="edge-conformance/results/v1")
    del doc["scope"]
    doc["counts"] = {"pass": 1, "fail": 1, "error": 0, "inconclusive": 0, "skip": 1, "waived": 0, "not-run": 0}
    return doc


def sample_interrupted() -> dict:
    reqs = [req("BASE-FUN-01"), req("BASE-FUN-01", site="store-2", status="not-run", measured={}, message="")]
    doc = results(reqs, "incomplete", state="interrupted")
    del doc["calibration"], doc["waivers"], doc["counts"]  # a partial file from an older harness
    return doc


def sample_with_raw() -> dict:
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


SAMPLES = {"conformant": sample_conformant, "non_conformant": sample_non_conformant, "interrupted": sample_interrupted,
           "with_raw": sample_with_raw, "partial": sample_partial, "legacy_v1": sample_legacy_v1}
