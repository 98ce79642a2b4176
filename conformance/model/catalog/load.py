"""Checks of the load suite: does a site hold a request rate, and where is its knee.

Both run the load driver (conformance.measure.load, docs/load.md): open-model load (a fixed arrival
rate, whatever the site answers) from Locust child processes, latencies in microsecond HDR histograms.
A run the driver's saturation guard marks invalid (the *generator* could not deliver the load: CPU,
event-loop lag, users exhausted, a worker missing) is never judged: the verdict is inconclusive, with
the guard's reason. Percentiles count failed requests as slower than every answer (at the request
timeout), as the latency suite does, so a site that drops requests cannot pass a latency bound on the
ones it answered.
"""

from . import CheckSpec, Param
from ..units import COUNT, RATE, RATIO, TIME


LATENCY = {"p50": TIME, "p90": TIME, "p95": TIME, "p99": TIME, "max": TIME}

_SCENARIO_PARAMS = {
    "endpoint": Param("str", "name of the site endpoint the load goes to (from the target file)", default="api"),
    "scenario": Param("str", "endpoints (the weighted `endpoints` list), pos (a sale: POST "
                             "/pos/transactions then GET it back, 2 requests), content (GET /content/{key} "
                             "over 64 keys), telemetry (POST /telemetry) or tcp_echo (raw TCP echo at the "
                             "endpoint's host and port)", default="endpoints"),
    "endpoints": Param("list", "the endpoints scenario's requests: [{name, method, path, weight, body}], "
                               "paths relative to the site endpoint; a mapping or list body is sent as JSON "
                               "(default: GET /health)", default=None),
    "users": Param("int", "concurrency cap of the generator (default: enough users for the rate at 1 s of "
                          "latency, or 5x the expectation's latency bound if larger; at most 2000)",
                   default=None),
    "workers": Param("int", "load-generating processes on this machine (more than 1 adds a Locust master)",
                     default=1),
    "timeout": Param("duration", "a request not answered within this failed (a timeout)", default="5 s"),
    "payload_bytes": Param("int", "bytes per tcp_echo message", default=64),
    "guard": Param("dict", "saturation guard thresholds (docs/load.md): cpu_percent, cpu_sustained_share, "
                           "rate_tolerance, dropped_tolerance, error_tolerance, loop_lag_p99_ms",
                   default=None),
}

CHECKS = [
    CheckSpec(
        name="load.sustained",
        summary="Offer a fixed request rate to the site for a while (open model) and measure what it "
                "achieved, its error ratio and its latency percentiles; inconclusive when the load "
                "generator, not the site, was the bottleneck.",
        metrics={"achieved": RATE, "offered": RATE, "error_ratio": RATIO, "requests": COUNT, **LATENCY},
        params={
            "rate": Param("number", "offered requests per second (a pos sale counts 2)", default=100),
            "duration": Param("duration", "length of the paced, measured window", default="6 s"),
            **_SCENARIO_PARAMS,
        },
    ),
    CheckSpec(
        name="load.capacity",
        summary="Step the offered rate up (start, then + step or x factor, up to max_rate) until the p99 "
                "or the error ratio breaks its budget; max_rps is the highest step that held it (the "
                "knee). A step the generator could not deliver ends the sweep: max_rps is then only a "
                "lower bound, and inconclusive when the expectation asks for more.",
        metrics={"max_rps": RATE, "steps": COUNT},
        params={
            "start": Param("number", "first offered rate, requests per second", default=50),
            "step": Param("number", "add this many requests per second per step (default: start, unless "
                                    "factor is given)", default=None),
            "factor": Param("number", "multiply the rate by this per step instead (> 1)", default=None),
            "max_rate": Param("number", "last rate tried, requests per second", required=True),
            "step_duration": Param("duration", "measured window of each step", default="5 s"),
            "p99_budget": Param("duration", "a step holds while its p99 (failures ranked last) stays "
                                            "within this", default="100 ms"),
            "error_budget": Param("any", 'a step holds while its error ratio stays within this ("1 %", '
                                         'or a fraction such as 0.01)', default="1 %"),
            **_SCENARIO_PARAMS,
        },
    ),
]
