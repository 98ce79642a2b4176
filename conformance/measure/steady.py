"""Steady traffic to a site while a fault lasts: the open-loop latency prober (HDR histograms, from the
intended send time, conformance.measure.latency) in a thread, and what it measured as figures.

Under SCHED_FIFO where permitted (root or CAP_SYS_NICE), as the latency suite's: its sends stay on
schedule beside busy neighbours, so a busy runner does not turn its self-check invalid. A probe whose
own self-check failed is an invalid measurement of what it measured (PROBE_METRICS), never a fail."""

from __future__ import annotations

from typing import Any

from ..model.errors import MeasurementError
from .pacing import spawn

# What the steady probe measures: a probe whose own self-check failed leaves these undecided.
PROBE_METRICS = frozenset({"availability", "p99", "probes"})


class SteadyProbe:
    def __init__(self, edge, url: str, rate: float, duration: float, timeout: float):
        from .latency import ProbeConfig

        self.config = ProbeConfig(url, rate=rate, duration=duration, timeout=timeout, max_in_flight=64,
                                  lag_limit_us=50_000, max_late_ratio=0.05, realtime=True,
                                  allow_hosts=frozenset(edge.allowed_hosts))
        self.result = None
        self.error: BaseException | None = None

    def start(self) -> SteadyProbe:
        def run() -> None:
            from .latency import run_probe

            try:
                self.result = run_probe(self.config)
            except BaseException as exc:  # noqa: BLE001 - a probe thread: any failure is handed to the check
                self.error = exc

        self.thread = spawn(run)
        return self

    def join(self) -> Any:
        self.thread.join(self.config.duration + self.config.timeout + 10)
        if self.error is not None:
            raise MeasurementError(f"steady probe of {self.config.target}: {self.error}")
        if self.result is None:
            raise MeasurementError(f"steady probe of {self.config.target} did not finish")
        return self.result


def invalid_evidence(result: Any) -> list[dict[str, Any]]:
    """The `invalid` evidence of a probe whose own self-check failed, naming what the probe measured: a
    shared experiment also measured things an invalid probe does not touch (sales, cache, tokens), and
    the verdict rule leaves only a requirement judging one of PROBE_METRICS undecided."""
    if result.valid:
        return []
    return [{"kind": "invalid", "reason": f"steady probe self-check: {result.invalid_reason}",
             "metrics": sorted(PROBE_METRICS)}]


def figures(result: Any, probe_timeout: float) -> tuple[list[tuple[str, float, str]], list[str]]:
    """(metric, value, unit) of a probe's result and the notes that explain them."""
    if result.sent == 0:
        raise MeasurementError("the steady probe sent nothing during the cut")
    metrics: list[tuple[str, float, str]] = [("availability", result.samples / result.sent, "ratio"),
                                             ("probes", result.sent, "")]
    notes = []
    if result.samples:
        # the median too: the verdict rule excuses a p99 stretched by a starved machine only while the
        # median is within the same bound
        metrics += [("p50", result.latency["p50_us"] / 1000.0, "ms"), ("p99", result.latency["p99_us"] / 1000.0, "ms")]
    else:
        metrics += [("p50", probe_timeout * 1000.0, "ms"), ("p99", probe_timeout * 1000.0, "ms")]
        notes.append("no probe succeeded during the cut: p50 and p99 recorded as the probe timeout")
    if result.samples < result.sent:
        failures = dict(result.errors, **({"timeout": result.timeouts} if result.timeouts else {}))
        notes.append(f"steady probe: {result.sent - result.samples} of {result.sent} requests failed {failures}")
    return metrics, notes


def latency_raw(result: Any) -> dict[str, Any]:
    """The probe's histograms (latency from the intended send time, service time), kept as raw data."""
    return {"histogram": result.histograms.get("latency"), "service_histogram": result.histograms.get("service"),
            "unit": "us"}
