"""Latency checks: open-loop request latency to a site, the WAN as the site sees it, and jitter.

Every check runs the open-loop prober (conformance.measure.latency; docs/latency.md): requests go out
on schedule whatever the answers, latency counts from the intended send time, values land in HDR
histograms of microseconds. How a measurement becomes a verdict (docs/latency.md, "Suite"):

* Percentiles count failed requests (timeouts and errors) as slower than every answer, at the
  timeout: a site that drops a tenth of its requests has a p99 of "the timeout", not of its answers.
* The check decides no status itself. It records the figures and the evidence about them, and the one
  verdict rule (conformance/model/verdict.py) judges: the sample count (`samples` evidence: a
  percentile needs 10 / (1 - q) samples, a ratio bound X needs 1 / X), the pressure on the harness's
  machine during the probe with the emulated site's own CPU use (`pressure` evidence: a tail miss
  while the machine was starved and the median within budget is inconclusive).
* A prober that marks itself invalid (it fell behind its own schedule) is an invalid measurement:
  inconclusive, with its reason.
* Requirements of these checks whose probe would be the same (same site, URL and probe settings) share
  one probe: it runs once and each requirement judges it by its own expectation.

* The harness's own floor (the `edge_calibration` fixture: the same protocol and rate against a
  loopback server, once per run for each) is named in every verdict's notes and recorded as `floor`
  evidence for each latency metric: a budget under 3x its floor is inconclusive, one within 10x is
  judged and its message says how close. The first floor measured is results.json "calibration".
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.measure.once import measured_once
from conformance.measure.pressure import record_pressure
from conformance.model import units as U
from conformance.model.errors import ConfigError, MeasurementError
from conformance.model.target import expand_env

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
_PROBER_KEYS = {"p50": "p50_us", "p90": "p90_us", "p99": "p99_us", "p999": "p99_9_us"}  # LatencyResult.latency
THRESHOLD_METRICS = ("p99", "p999", "p90")  # the bound drawn as raw.latency.threshold_us, first found
HTTP_PROTOCOLS = ("http", "http-newconn")


# ---------------------------------------------------------------------------------------------
# the checks


@pytest.mark.edge_check("latency.request")
def test_request(edge, edge_calibration, request):
    url = _url(edge, edge.endpoint(edge.params.get("endpoint") or "api"))
    _judge(edge, request, edge_calibration, url, threshold=True)


@pytest.mark.edge_check("latency.wan")
def test_wan(edge, edge_calibration, request):
    name = edge.params.get("endpoint") or "wan"
    if name not in edge.site.endpoints:
        if edge.site.role == "central" and not edge.site.uplink:
            # The top of the tree has no WAN to a central site: nothing to measure, as a fact of the site.
            edge.not_applicable(f"site {edge.site.name} is the central site: it has no WAN to central")
        # Any other site has a way to central; the target file just does not say where it is.
        edge.not_measured(f"site declares no {name} endpoint (central as the site sees it)",
                          f"declare a `{name}` endpoint for site {edge.site.name} in the target file: "
                          "central's address as the site reaches it, through its WAN")
    url = _url(edge, edge.endpoint(name))
    _judge(edge, request, edge_calibration, url, threshold=True)


@pytest.mark.edge_check("latency.jitter")
def test_jitter(edge, edge_calibration, request):
    url = _url(edge, edge.endpoint(edge.params.get("endpoint") or "api"))
    _judge(edge, request, edge_calibration, url, threshold=False)


# ---------------------------------------------------------------------------------------------
# probing


def _url(edge, endpoint: str) -> str:
    protocol = edge.params.get("protocol") or "http"
    if protocol in HTTP_PROTOCOLS:
        path = edge.params.get("path") or "/"
        return endpoint.rstrip("/") + "/" + path.lstrip("/")
    return endpoint  # tcp-connect, tcp-echo, udp-echo: the endpoint's host and port


def _body_and_headers(edge) -> tuple[bytes, dict[str, str]]:
    try:
        headers = {str(k): expand_env(str(v)) for k, v in (edge.params.get("headers") or {}).items()}
    except LookupError as exc:
        raise MeasurementError(f"headers: {exc}") from None
    body = edge.params.get("body")
    if body is None:
        return b"", headers
    if isinstance(body, str):
        return body.encode(), headers
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(body).encode(), headers


def _param(edge, name: str, default: Any) -> Any:
    value = edge.params.get(name)
    return default if value is None else value


def _config(edge, url: str):
    from conformance.measure.latency import ProbeConfig

    body, headers = _body_and_headers(edge)
    count = edge.params.get("count")
    try:
        return ProbeConfig(
            url, protocol=_param(edge, "protocol", "http"), rate=float(_param(edge, "rate", 200)),
            duration=None if count is not None else float(_param(edge, "duration", 6.0)), count=count,
            warmup=float(_param(edge, "warmup", 0.5)), arrivals=_param(edge, "arrivals", "fixed"),
            max_in_flight=_param(edge, "max_in_flight", 64), timeout=float(_param(edge, "timeout", 2.0)),
            method=_param(edge, "method", "GET"), body=body, headers=tuple(headers.items()),
            payload_size=_param(edge, "payload_size", 64),
            lag_limit_us=float(_param(edge, "lag_limit", 0.005)) * 1e6,
            realtime=bool(_param(edge, "realtime", True)), pin_cpu=bool(_param(edge, "pin_cpu", False)),
            allow_hosts=frozenset(edge.allowed_hosts))
    except ConfigError as exc:  # a bad param value (or a host nobody declared): could not measure
        raise MeasurementError(f"probe settings: {exc}") from None


def _probe(edge, request, config, url: str):
    """(probe result, pressure while it ran, the emulated site's own CPU use in cores or None), shared by
    every requirement that would run the very same probe on this site."""
    return measured_once(edge, request, "latency " + repr(config), "endpoint and probe settings",
                         lambda: _run_probe(config, url))


def _run_probe(config, url: str):
    from conformance.measure.latency import run_probe

    try:
        return run_probe(config)
    except ConfigError as exc:
        raise MeasurementError(f"probe of {url}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - anything the prober could not survive: could not measure
        raise MeasurementError(f"probe of {url}: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# from a probe to metrics and evidence for the verdict rule


def _judge(edge, request, floors, url: str, threshold: bool) -> None:
    config = _config(edge, url)
    result, pressure, site_cores = _probe(edge, request, config, url)
    floor = floors.for_probe(config)
    stats = _Stats(result)
    _record(edge, stats)
    raw = {"histogram": result.histograms["latency"], "service_histogram": result.histograms["service"],
           "unit": "us"}
    if threshold:
        bound = _threshold(edge)
        if bound is not None:
            raw["threshold_us"], raw["threshold_metric"] = bound[1], bound[0]
    edge.attach("latency", raw)
    edge.attach("probe", {k: v for k, v in result.to_dict().items() if k != "histograms"})
    edge.note(_floor_note(floor))
    edge.note(_probe_note(result, stats, realtime_asked=bool(_param(edge, "realtime", True))))
    # Evidence for the verdict rule, recorded before the self-check so an invalid probe keeps it too.
    edge.evidence("samples", count=stats.total)
    _record_floor(edge, floor)
    record_pressure(edge, pressure, site_cores)
    if not result.valid:
        edge.inconclusive(f"prober self-check: {result.invalid_reason}")


class _Stats:
    """Percentiles over every measured request, failed ones ranked last at the timeout."""

    def __init__(self, result):
        from conformance.measure.latency import decode

        self.result = result
        self.answered = int(result.samples)
        self.timeouts = int(result.timeouts)
        self.errors = int(sum(result.errors.values()))
        self.failed = self.timeouts + self.errors
        self.total = self.answered + self.failed
        self.timeout_us = float(result.timeout_s) * 1e6
        self.hist = decode(result.histograms["latency"]) if self.answered else None
        self.in_failures: list[str] = []  # percentiles that fall among the failed requests

    def percentile_us(self, metric: str) -> float | None:
        if self.total == 0:
            return None
        q = PERCENTILES[metric]
        if self.failed == 0:  # the prober's own figures, exactly
            return float(self.result.latency[_PROBER_KEYS[metric]])
        rank = max(int(q * self.total / 100 + 0.5), 1)  # hdrh's rule for the target count
        if rank > self.answered:
            self.in_failures.append(metric)
            return self.timeout_us
        return float(self.hist.get_value_at_percentile(100.0 * rank / self.answered))

    def max_us(self) -> float | None:
        if self.total == 0:
            return None
        if self.failed:
            return max(self.timeout_us, float(self.result.latency["max_us"] or 0))
        return float(self.result.latency["max_us"])


def _record(edge, s: _Stats) -> None:
    ms = lambda us: us / 1000.0  # noqa: E731
    values = {m: s.percentile_us(m) for m in PERCENTILES}
    for metric, us in values.items():
        if us is not None:
            edge.record(metric, ms(us), "ms")
    if s.max_us() is not None:
        edge.record("max", ms(s.max_us()), "ms")
    lat = s.result.latency
    if s.answered:  # mean and standard deviation of the answers (failures have no latency)
        edge.record("mean", ms(float(lat["mean_us"])), "ms")
        edge.record("jitter", ms(float(lat["stdev_us"])), "ms")
        edge.record("spread", ms(values["p99"] - values["p50"]), "ms")
    sent = s.result.sent or 0
    edge.record("error_ratio", (s.errors / sent if sent else 0.0) * 100, "%")
    edge.record("timeout_ratio", (s.timeouts / sent if sent else 0.0) * 100, "%")
    edge.record("samples", s.total)


# What each metric reads against a loopback server that answers at once (calibrate.Floor's keys), and
# the quantile behind it: a percentile floor is recorded only from enough samples (FLOOR_MIN_TAIL
# beyond it), so a short calibration at a slow rate gives no p99 floor rather than a noisy one.
_FLOOR_KEYS = {"p50": ("p50_us", 0.5), "p90": ("p90_us", 0.9), "p99": ("p99_us", 0.99), "mean": ("mean_us", 0.5)}
# These are bias: the harness's share of every value (strict: a budget under 3x is undecidable, a miss by
# less than one floor too). The floor's p99.9, max and spread are its scatter, not a shift of every value
# (a bias cancels out of p99 - p50; the max and p99.9 of a few hundred samples are one or two of them),
# so they are recorded as scatter: under 3x inconclusive unless the value is over by more than 3 floors.
_FLOOR_SCATTER_KEYS = {"p999": ("p99_9_us", 0.999), "max": ("max_us", None)}
FLOOR_MIN_TAIL = 2


def _record_floor(edge, floor: dict) -> None:
    """`floor` evidence per latency metric, from a valid floor only."""
    if not isinstance(floor, dict) or floor.get("valid") is not True:
        return
    reason = (f"the harness's own floor: {floor.get('protocol', 'http')} at {float(floor.get('rate') or 0):g}/s "
              "against a loopback server")
    samples = floor.get("samples") or 0

    def enough(q: float | None) -> bool:
        return q is None or samples * (1 - q) >= FLOOR_MIN_TAIL

    def record(metric: str, us: Any, strict: bool) -> None:
        if isinstance(us, (int, float)) and us > 0:
            edge.evidence("floor", metric=metric, value=round(us / 1000.0, 4), unit="ms", strict=strict,
                          reason=reason)

    for metric, (key, q) in _FLOOR_KEYS.items():
        if enough(q):
            record(metric, floor.get(key), True)
    for metric, (key, q) in _FLOOR_SCATTER_KEYS.items():
        if enough(q):
            record(metric, floor.get(key), False)
    p50, p99 = floor.get("p50_us"), floor.get("p99_us")
    if enough(0.99) and isinstance(p50, (int, float)) and isinstance(p99, (int, float)):
        record("spread", p99 - p50, False)


def _threshold(edge) -> tuple[str, float] | None:
    """The expectation's upper bound on p99 (else p999, else p90), in microseconds."""
    bound = edge.requirement.expect.upper_bound(THRESHOLD_METRICS, U.TIME)
    return None if bound is None else (bound[0], round(bound[1] * 1e6, 3))


# ---------------------------------------------------------------------------------------------
# notes


def _us(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    return f"{value:.0f} us" if value < 1000 else f"{value / 1000:.3g} ms"


def _floor_note(floor: dict) -> str:
    if not isinstance(floor, dict) or floor.get("p50_us") is None:
        reason = (floor or {}).get("invalid_reason") if isinstance(floor, dict) else None
        return f"measurement floor unknown ({reason or 'not calibrated'})"
    text = (f"measurement floor p50 {_us(floor['p50_us'])}, p99 {_us(floor.get('p99_us'))} "
            f"({floor.get('protocol', 'http')}, {float(floor.get('rate') or 0):g}/s, loopback server)")
    if floor.get("valid") is False:
        text += f"; the calibration itself was invalid: {floor.get('invalid_reason')}"
    return text


def _probe_note(result, s: _Stats, realtime_asked: bool) -> str:
    text = (f"{s.total} requests to {result.target} ({result.protocol}) at {result.rate:g}/s "
            f"({result.arrivals}): {s.answered} answered")
    if s.timeouts:
        text += f", {s.timeouts} timed out (> {result.timeout_s:g} s)"
    if s.errors:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.errors.items(), key=lambda kv: -kv[1]))
        example = next(iter(result.error_examples.values()), "")
        text += f", {s.errors} failed ({kinds}{': ' + example[:120] if example else ''})"
    if s.in_failures:
        text += (f"; {', '.join(s.in_failures)} fall among the failed requests and count as the timeout "
                 f"({result.timeout_s:g} s)")
    lag = result.send_lag or {}
    loop = result.loop_lag or {}
    if result.realtime:
        scheduling = "SCHED_FIFO"
    else:
        scheduling = "normal scheduling" + (" (SCHED_FIFO not permitted)" if realtime_asked else "")
    where = "".join([f" on {result.loop}" if getattr(result, "loop", "") else "",
                     f", pinned to CPU {result.cpu}" if getattr(result, "cpu", None) is not None else ""])
    text += (f"; prober {scheduling}{where}, send lag p99 "
             f"{_us(lag.get('p99_us'))}, loop lag p99 {_us(loop.get('p99_us'))}")
    return text
