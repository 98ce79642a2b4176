"""Checks of the latency suite: open-loop request latency to a site, the WAN as a site sees it, jitter.

All three run the open-loop prober (conformance.measure.latency, docs/latency.md): requests on a fixed
or Poisson schedule, latency counted from the intended send time (coordinated omission corrected), HDR
histograms in microseconds, a self-check that makes the verdict inconclusive when the prober itself fell
behind. Percentiles count failed requests (timeouts, errors) as slower than any answer, so a site that
drops requests cannot pass a latency bound on the ones it answered. A percentile is only judged with
enough samples (p90: 100, p99: 1,000, p99.9: 10,000); fewer make the verdict inconclusive.
"""

from . import CheckSpec, Param
from ..units import COUNT, RATIO, TIME


METRICS = {
    "p50": TIME, "p90": TIME, "p99": TIME, "p999": TIME, "max": TIME, "mean": TIME,
    "jitter": TIME,  # standard deviation of the latency
    "spread": TIME,  # p99 - p50
    "error_ratio": RATIO, "timeout_ratio": RATIO,
    "samples": COUNT,  # measured requests: answered + failed (warm-up excluded)
}


def _probe_params(endpoint: str, endpoint_doc: str) -> dict[str, Param]:
    return {
        "endpoint": Param("str", endpoint_doc, default=endpoint),
        "path": Param("str", "path appended to the endpoint URL (http protocols)", default="/health"),
        "protocol": Param("str", "http (keep-alive), http-newconn (a new connection per request), "
                                 "tcp-connect (the TCP handshake), tcp-echo or udp-echo (an echo server "
                                 "at the endpoint's host and port)", default="http"),
        "method": Param("str", "HTTP method", default="GET"),
        "body": Param("any", "request body: a mapping or list is sent as JSON, a string as is", default=None),
        "headers": Param("dict", "request headers (values may use ${ENV} references)", default=None),
        "rate": Param("number", "requests per second, open loop (sent on schedule whatever the answers)",
                      default=200),
        "duration": Param("duration", "measured part of the schedule (ignored when count is given)",
                          default="6 s"),
        "count": Param("int", "measure exactly this many requests instead of a duration", default=None),
        "warmup": Param("duration", "schedule sent first and not measured (connections, caches)",
                        default="0.5 s"),
        "max_in_flight": Param("int", "requests in flight at most (and pooled connections); a request "
                                      "that waits for a slot still counts from its intended time",
                               default=64),
        "timeout": Param("duration", "a request not answered within this failed (counted in "
                                     "timeout_ratio, ranked slower than any answer)", default="2 s"),
        "arrivals": Param("str", "fixed (every 1/rate) or poisson (exponential gaps, seeded)",
                          default="fixed"),
        "lag_limit": Param("duration", "the prober's self-check: more than 1 % of sends this late by the "
                                       "prober's own fault, or an event loop this late at p99, makes the "
                                       "verdict inconclusive. Keep it well below the budget checked",
                           default="5 ms"),
        "realtime": Param("bool", "run the probing thread under SCHED_FIFO while it probes (needs root "
                                  "or CAP_SYS_NICE; otherwise it runs normally and says so)", default=True),
        "pin_cpu": Param("bool", "pin the probing thread to the CPU it runs on while it probes. Off by "
                                 "default: on a 2-core VM it measured no better, in one run worse "
                                 "(docs/latency.md); for a harness machine with CPUs set aside for probing",
                         default=False),
        "payload_size": Param("int", "bytes per tcp-echo/udp-echo request", default=64),
    }


CHECKS = [
    CheckSpec(
        name="latency.request",
        summary="Request latency from a client to the site's endpoint (through its access link when "
                "emulated): percentiles, jitter and failure ratios of an open-loop probe.",
        metrics=dict(METRICS),
        params=_probe_params("api", "name of the site endpoint its clients use (from the target file)"),
    ),
    CheckSpec(
        name="latency.wan",
        summary="Latency from an edge site to its uplink (central) as the site experiences it: the "
                "site's `wan` endpoint (central through the site's WAN link); skipped on sites that "
                "declare none.",
        metrics=dict(METRICS),
        params=_probe_params("wan", "name of the site endpoint that reaches central the way the site "
                                    "does (emulated edge sites: wan)"),
    ),
    CheckSpec(
        name="latency.jitter",
        summary="Latency variation of the same probe as latency.request: standard deviation (jitter) "
                "and p99 - p50 (spread).",
        metrics=dict(METRICS),
        params=_probe_params("api", "name of the site endpoint its clients use (from the target file)"),
    ),
]
