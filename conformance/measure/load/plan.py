"""From a load check's params to the driver: the LoadConfig for one rate (enough users for it), and one
run of it. A bad setting is a MeasurementError (the check could not measure), as is a failed run.
Imports no Locust (conformance.measure.load's rule)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from ...model.errors import ConfigError, MeasurementError

MAX_USERS = 2000
MAX_STEPS = 40
ENDPOINT_KEYS = {"name", "method", "path", "weight", "body"}


def load_config(params: dict, base: str, rate: float, duration: float, *, timeout: float,
                latency_bound_s: float | None, spread: dict | None = None):
    """The driver's settings for `rate`/s over `duration` s at the site endpoint `base`; users cover
    the rate at 1 s of latency, or 5x the latency bound judged (`users` in params overrides). `spread`:
    the run's Locust workers (engine/loadspread.py), over the requirement's `workers` param."""
    from . import LoadConfig
    from .scenarios import SCENARIOS

    scenario = params.get("scenario") or "endpoints"
    if scenario not in SCENARIOS:
        raise MeasurementError(f"unknown scenario {scenario!r} (scenarios: {', '.join(SCENARIOS)})")
    parts = urlsplit(base)
    if scenario == "tcp_echo":
        if not parts.hostname or not parts.port:
            raise MeasurementError(f"tcp_echo needs an endpoint with a host and a port, {base} has none")
        url = f"tcp://{parts.netloc.rsplit('@', 1)[-1]}"
    else:
        if parts.scheme not in ("http", "https"):
            raise MeasurementError(f"scenario {scenario} needs an http(s) endpoint, {base} is not")
        url = base.rstrip("/")
    endpoints = endpoints_of(params.get("endpoints")) if scenario == "endpoints" else ()
    if scenario != "endpoints" and params.get("endpoints"):
        raise MeasurementError(f"endpoints are only used by the endpoints scenario, not by {scenario}")
    data: dict[str, Any] = {"url": url, "rate": float(rate), "duration_s": float(duration), "scenario": scenario,
                            "endpoints": endpoints, "workers": params.get("workers") or 1,
                            "request_timeout_s": timeout, "guard": params.get("guard") or {}}
    if scenario == "tcp_echo":
        data["payload_bytes"] = params.get("payload_bytes") or 64
    data.update(spread or {})
    try:
        probe = LoadConfig.from_dict({**data, "users": None})  # for requests per iteration and workers
        data["users"] = params.get("users") or users_for(probe, latency_bound_s)
        return LoadConfig.from_dict(data)
    except ConfigError as exc:  # a bad param value: could not measure
        raise MeasurementError(f"load settings: {exc}") from None


def users_for(config, latency_bound_s: float | None) -> int:
    """Enough users for the arrival rate at 1 s of latency (or 5x the bound judged), Little's law."""
    cover = max(1.0, 5.0 * (latency_bound_s or 0.0))
    wanted = math.ceil(config.iteration_rate * cover)
    return int(min(MAX_USERS, max(config.total_users, wanted, config.total_workers)))


def endpoints_of(raw: Any) -> tuple[dict, ...]:
    """The `endpoints` param as the driver's endpoints: paths relative to the site endpoint."""
    if raw is None:
        return ({"name": "health", "url": "/health", "method": "GET", "weight": 1},)
    if not raw:
        raise MeasurementError("endpoints is empty: give at least one {name, method, path, weight, body}")
    out = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            raise MeasurementError(f"endpoints[{i}]: expected a mapping with name, method, path, weight, body")
        unknown = sorted(set(e) - ENDPOINT_KEYS)
        if unknown:
            raise MeasurementError(f"endpoints[{i}]: unknown key {unknown[0]!r} "
                                   f"(keys: {', '.join(sorted(ENDPOINT_KEYS))})")
        path = e.get("path")
        if not isinstance(path, str) or not path or "://" in path or path.startswith("//"):
            raise MeasurementError(f"endpoints[{i}].path: expected a path relative to the site endpoint, "
                                   f"got {path!r}")
        item = {"name": str(e.get("name") or path), "url": "/" + path.lstrip("/"),
                "method": str(e.get("method") or "GET"), "weight": e.get("weight", 1)}
        if e.get("body") is not None:
            item["body"] = e["body"]
        out.append(item)
    return tuple(out)


def run(config, allow_hosts) -> Any:
    """One run of the driver; what stops it (unsafe target, settings, the driver) is a MeasurementError."""
    from . import LoadError, run_load

    try:
        return run_load(config, allow_hosts=tuple(sorted(allow_hosts)))
    except (ConfigError, LoadError) as exc:  # UnsafeTargetError included: nothing was sent
        raise MeasurementError(f"load of {config.url}: {exc}") from None


def capacity_rates(start: float, max_rate: Any, step: Any, factor: Any) -> list[float]:
    """The offered rates of a capacity sweep: from `start` by `step` (default: start) or by `factor`, up
    to `max_rate`, which is always the last step."""
    if not isinstance(max_rate, (int, float)) or isinstance(max_rate, bool) or not max_rate >= start > 0:
        raise MeasurementError(f"start and max_rate must be numbers with 0 < start <= max_rate, got {start:g} "
                               f"and {max_rate!r}")
    if step is not None and factor is not None:
        raise MeasurementError("give step or factor, not both")
    if factor is not None and not float(factor) > 1:
        raise MeasurementError(f"factor must be > 1, got {factor}")
    if factor is None and step is None:
        step = start
    if step is not None and not float(step) > 0:
        raise MeasurementError(f"step must be > 0, got {step}")
    rates, rate = [], float(start)
    while rate <= max_rate * (1 + 1e-9):
        rates.append(round(rate, 6))
        rate = rate * float(factor) if factor is not None else rate + float(step)
        if len(rates) > MAX_STEPS:
            raise MeasurementError(f"more than {MAX_STEPS} steps from {start:g} to {max_rate:g}/s: "
                                   "raise step or factor")
    if rates[-1] < max_rate * (1 - 1e-9):
        rates.append(float(max_rate))
    return rates
