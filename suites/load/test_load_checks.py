"""Load checks: does a site hold a request rate (load.sustained), and where is its knee (load.capacity).

Both drive the load driver (conformance.measure.load, docs/load.md): open-model load from Locust child
processes (never imported here), latencies in microsecond HDR histograms. How a measurement becomes a
verdict:

* The saturation guard decides first. A run it marks invalid (the generator's CPU, event-loop lag,
  users exhausted, a worker report missing) says nothing about the site: the verdict is inconclusive
  with the guard's reason, never pass or fail. The numbers are still recorded and attached.
* Percentiles count failed requests (errors, timeouts, requests still unfinished at the end) as slower
  than every answer, at the request timeout, as the latency suite does: a site that drops requests
  cannot pass a latency bound on the ones it answered.
* The generator gets enough users (concurrency) for the offered rate at 1 s of latency, or 5x the
  latency bound being judged if that is more: a slow site then shows as a slow p99 (a verdict), not as
  users running out (inconclusive).
* Requirements of load.sustained with the very same load (site, URL, scenario, rate, duration, users
  ...) share one run; each judges it by its own expectation.
* The checks decide no status themselves: they record the figures and the evidence about them, and the
  one verdict rule (conformance/model/verdict.py) judges. load.sustained records the pressure on the
  harness's machine during the run (PSI: CPU, I/O, memory) and the emulated site's own CPU use
  (`pressure` evidence), so its p50..p99 are judged by the same contention rule as the latency suite's.
  load.capacity records `max_rps` as a `lower_bound` when the sweep stopped before the knee (max_rate
  reached, or the generator could not deliver the next step), or when the step that broke the budget
  broke it on a starved machine (the rule itself, asked about the step's own figures and pressure,
  calls that break inconclusive); the rule decides what the bound settles.

Raw data kept in results.json: `timeseries` (per second: t, rps, p95_ms, users, errors_per_s, ...),
`latency` (the HDR histogram in us, with the expectation's bound as threshold_us), `load` (endpoints,
errors by kind, generator processes) and, for load.capacity, `sweep` and `capacity` (every step).
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.measure.load.figures import LATENCY_METRICS, Stats, load_summary, ms, run_note, show_ms, timeseries
from conformance.measure.load.plan import capacity_rates, load_config, run
from conformance.measure.once import measured_once
from conformance.measure.pressure import PressureWindow, TreeCpu, own_site_pid, record_pressure
from conformance.model import expect as E
from conformance.model import units as U
from conformance.model import verdict as V

THRESHOLD_METRICS = ("p99", "p95", "p90", "p50")  # the bound drawn as raw.latency.threshold_us, first found


# ---------------------------------------------------------------------------------------------
# load.sustained


@pytest.mark.edge_check("load.sustained")
def test_sustained(edge, request):
    rate = _number(edge, "rate", 100.0)
    duration = _number(edge, "duration", 6.0)
    bound = _latency_bound(edge)
    config = _config(edge, rate, duration, latency_bound_s=bound[1] if bound else None)
    result, pressure, site_cores = _shared_run(edge, request, config)
    stats = Stats(result, config.request_timeout_s)

    edge.record("achieved", result.achieved_rps, "rps")
    edge.record("offered", result.offered_rps, "rps")
    edge.record("requests", stats.total)
    edge.record("error_ratio", stats.error_ratio * 100.0, "%")
    for metric in LATENCY_METRICS:
        us = stats.latency_us(metric)
        if us is not None:
            edge.record(metric, us / 1000.0, "ms")

    edge.attach("timeseries", timeseries(result.series))
    latency = {"histogram": result.histogram, "unit": "us"}
    if bound is not None:
        latency["threshold_us"], latency["threshold_metric"] = round(bound[1] * 1e6, 3), bound[0]
    edge.attach("latency", latency)
    edge.attach("load", load_summary(result))
    edge.note(run_note(result, stats))
    if stats.never_sent:
        edge.note(f"{stats.never_sent} requests of the offered load were never sent: the site held every one "
                  f"of the {config.total_users} users (median {result.latency_us.get('p50', 0) / 1000:.0f} ms); "
                  "they count as failed requests, ranked at the timeout")
    # Evidence for the verdict rule, recorded before the guard's verdict so an invalid run keeps it too.
    record_pressure(edge, pressure, site_cores)
    if not result.valid:
        edge.inconclusive(result.invalid_reason or "load generator saturated")
    if stats.total == 0:
        edge.error("no request completed in the measured window")


# ---------------------------------------------------------------------------------------------
# load.capacity


@pytest.mark.edge_check("load.capacity")
def test_capacity(edge):
    rates = _rates(edge)
    step_duration = _number(edge, "step_duration", 5.0)
    p99_budget = _number(edge, "p99_budget", 0.1)
    error_budget = _ratio(edge, "error_budget", "1 %")

    rows, steps, series, notes = [], [], [], []
    held_rate, held_result, broke, broke_result, saturated = None, None, None, None, None
    first_epoch = None
    capacity = {"rates": rates, "p99_budget_ms": p99_budget * 1000, "error_budget": error_budget,
                "max_rps": None, "broke_at": None, "saturated_at": None, "stopped": None, "steps": steps}
    # attached first and filled in as the sweep goes: a step that cannot be measured keeps the others
    edge.attach("sweep", {"param": "offered_rps", "unit": "rps", "rows": rows})
    edge.attach("timeseries", series)
    edge.attach("capacity", capacity)
    site_pid = own_site_pid(edge)
    window, site_cpu = PressureWindow(), TreeCpu(site_pid)  # the whole sweep, for the record
    machine_break = None  # (rate, why) when the step that broke the budget may have broken it on the machine
    for rate in rates:
        config = _config(edge, rate, step_duration, latency_bound_s=p99_budget)
        step_window, step_cpu = PressureWindow(), TreeCpu(site_pid)
        result = _run(edge, config)
        step_pressure, step_cores = step_window.stop(), step_cpu.cores()
        stats = Stats(result, config.request_timeout_s)
        p99_us = stats.latency_us("p99")
        step = {"rate": rate, "valid": result.valid, "invalid_reason": result.invalid_reason,
                "achieved_rps": result.achieved_rps, "offered_rps": result.offered_rps,
                "requests": stats.total, "failures": stats.failed, "error_ratio": round(stats.error_ratio, 6),
                "p95_ms": ms(stats.latency_us("p95")), "p99_ms": ms(p99_us), "errors": dict(result.errors),
                "users": config.total_users,
                "machine": {**step_pressure.to_dict(), "target_cores": step_cores} if step_pressure else None}
        if result.series:
            first_epoch = result.series[0]["epoch"] if first_epoch is None else first_epoch
            series.extend({**row, "t": row["epoch"] - first_epoch, "step": len(steps), "offered_rps": rate}
                          for row in timeseries(result.series))
        steps.append(step)
        if not result.valid:
            saturated = (rate, result.invalid_reason or "load generator saturated")
            step["held"] = None
            break
        if stats.total == 0:
            edge.error(f"no request completed at {rate:g}/s")
        held = p99_us <= p99_budget * 1e6 and stats.error_ratio <= error_budget
        step["held"] = held
        rows.append({"value": rate, "success_ratio": round(1.0 - stats.error_ratio, 6),
                     "duration_s": round(p99_us / 1e6, 6), "achieved_rps": result.achieved_rps,
                     "held": held})
        if not held:
            why = []
            if p99_us > p99_budget * 1e6:
                why.append(f"p99 {show_ms(p99_us)} > {show_ms(p99_budget * 1e6)}")
            if stats.error_ratio > error_budget:
                why.append(f"errors {stats.error_ratio * 100:.3g} % > {error_budget * 100:.3g} %")
            broke, broke_result = (rate, ", ".join(why)), result
            if _starved_break(stats.latency_us("p50"), p99_us, stats.error_ratio, p99_budget, error_budget,
                              step_pressure, step_cores):
                machine_break = (rate, step_pressure.text())
            break
        held_rate, held_result = rate, result

    record_pressure(edge, window.stop(), site_cpu.cores())
    max_rps = held_rate if held_rate is not None else 0.0
    capacity.update({"max_rps": max_rps if (held_rate is not None or saturated is None) else None,
                     "broke_at": broke[0] if broke else None, "saturated_at": saturated[0] if saturated else None,
                     "stopped": "budget" if broke else "generator" if saturated else "max_rate"})
    # the latency at the knee (the highest step that held), else at the step that broke the budget
    shown = (held_rate, held_result) if held_result is not None else (broke[0], broke_result) if broke else None
    if shown is not None:
        edge.attach("latency", {"histogram": shown[1].histogram, "unit": "us",
                                "threshold_us": round(p99_budget * 1e6, 3), "threshold_metric": "p99",
                                "step_rps": shown[0]})
        edge.attach("load", load_summary(shown[1]))
    edge.record("steps", len(steps))

    budget = f"p99 <= {show_ms(p99_budget * 1e6)}, errors <= {error_budget * 100:g} %"
    if saturated is not None and held_rate is None:
        edge.inconclusive(f"the first step ({saturated[0]:g}/s) was not delivered: {saturated[1]}")
    edge.record("max_rps", max_rps, "rps")
    if broke is not None:
        if held_rate is None:
            notes.append(f"the first step, {broke[0]:g}/s, already broke the budget ({broke[1]})")
        else:
            notes.append(f"held the budget ({budget}) up to {held_rate:g}/s; {broke[0]:g}/s broke it ({broke[1]})")
    elif saturated is not None:
        notes.append(f"held the budget ({budget}) up to {held_rate:g}/s; the generator could not deliver "
                     f"{saturated[0]:g}/s ({saturated[1]}), so max_rps is a lower bound")
    else:
        notes.append(f"held the budget ({budget}) at every step up to max_rate {held_rate:g}/s: the knee is "
                     "beyond it, so max_rps is a lower bound")
    for note in notes:
        edge.note(note)
    if broke is None:  # the knee was not reached: the true max_rps is at least this; the rule decides
        edge.evidence("lower_bound", metric="max_rps", reason="the last step delivered" if saturated is not None
                      else "max_rate reached; raise max_rate")
    elif machine_break is not None:  # the knee may be the starved machine's: the true one is at least this
        edge.note(f"{machine_break[0]:g}/s broke the budget in its tail only, while the machine was starved "
                  f"({machine_break[1]}): the knee may be the machine's")
        edge.evidence("lower_bound", metric="max_rps",
                      reason=f"{machine_break[0]:g}/s broke the budget on a starved machine; rerun on a quieter one")


def _rates(edge) -> list[float]:
    return capacity_rates(_number(edge, "start", 50.0), edge.params.get("max_rate"), edge.params.get("step"),
                          edge.params.get("factor"))


def _starved_break(p50_us: float | None, p99_us: float, error_ratio: float, p99_budget: float,
                   error_budget: float, pressure, cores: float | None) -> bool:
    """Whether the one verdict rule reads a step's miss of the budget as the starved machine's tail
    (inconclusive) rather than the site's. The step is judged as a requirement `p99 <= budget and
    error_ratio <= budget` on its own figures and pressure, so no second contention rule lives here:
    a median over the budget, errors, or a busy site make the break the site's, as they would a verdict."""
    if pressure is None or p50_us is None:
        return False
    step = SimpleNamespace(id="step", level="must",
                           expect=E.parse(f"p99 <= {p99_budget * 1000:g} ms "
                                          f"and error_ratio <= {error_budget * 100:g} %"),
                           metric_dimensions={"p50": U.TIME, "p99": U.TIME, "error_ratio": U.RATIO})
    evidence = {"kind": "pressure", **{r: pressure.percent(r) for r in V.PRESSURE_RESOURCES},
                "window_s": round(pressure.seconds, 3), "target_cores": cores}
    measured = {"p50": (p50_us / 1000.0, "ms"), "p99": (p99_us / 1000.0, "ms"),
                "error_ratio": (error_ratio * 100.0, "%")}
    return V.decide(step, "step", measured=measured, validity=[evidence]).status == "inconclusive"


# ---------------------------------------------------------------------------------------------
# running the driver


def _config(edge, rate: float, duration: float, latency_bound_s: float | None):
    return load_config(edge.params, edge.endpoint(edge.params.get("endpoint") or "api"), rate, duration,
                       timeout=_number(edge, "timeout", 5.0), latency_bound_s=latency_bound_s,
                       spread=edge.load_spread)


def _run(edge, config):
    return run(config, edge.allowed_hosts)


def _shared_run(edge, request, config):
    """Every requirement that would offer the very same load to this site shares one run (its result, the
    pressure on this machine meanwhile and the emulated site's own CPU use in cores, or None)."""
    key = "load " + json.dumps(config.to_dict(), sort_keys=True, default=str)
    return measured_once(edge, request, key, "site and load settings", lambda: _run(edge, config))


# ---------------------------------------------------------------------------------------------
# params


def _number(edge, name: str, default: float) -> float:
    value = edge.params.get(name)
    if value is None:
        return float(default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        edge.error(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _ratio(edge, name: str, default: Any) -> float:
    value = edge.params.get(name)
    value = default if value is None else value
    try:
        if isinstance(value, str):
            number, _, unit = value.strip().partition(" ")
            if not unit and number.endswith("%"):
                number, unit = number[:-1], "%"
            ratio = U.to_base(float(number), unit.strip(), U.RATIO)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            ratio = float(value)
        else:
            raise ValueError(value)
    except (ValueError, U.UnitError):
        edge.error(f'{name} must be a ratio such as "1 %" or 0.01, got {value!r}')
    if not 0 <= ratio <= 1:
        edge.error(f"{name} must be between 0 and 100 %, got {value!r}")
    return ratio


def _latency_bound(edge) -> tuple[str, float] | None:
    """The expectation's upper bound on p99 (else p95, p90, p50), in seconds."""
    return edge.requirement.expect.upper_bound(THRESHOLD_METRICS, U.TIME)
