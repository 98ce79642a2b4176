"""Operations through a degraded WAN, step by step: at each value of a sweep (delay, loss, bandwidth) the
caller's fault holds the link there while sales (until central has them) and content misses (fetched
from central while the user waits) run side by side. Every operation has a timeout."""

from __future__ import annotations

import contextlib
import statistics
import threading
from collections.abc import Callable
from typing import Any

from ..model.errors import MeasurementError
from ..model.units import UnitError, parse_quantity
from .http import Client
from .pacing import spawn
from .sales import sale_until_forwarded

OPERATIONS = ("pos", "content")


def _parse_list(name: str, values: Any, dimension: str, bare_unit: str) -> list[float]:
    """Profile values -> base units (s for time, fraction for ratio, bit/s); a bare number is `bare_unit`."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise MeasurementError(f"{name}: expected a list, got {values!r}")
    out = []
    for v in values:  # profiles are validated on load (catalog QuantityItems); this guards custom callers
        try:
            out.append(parse_quantity(v, dimension, bare_unit))
        except (ValueError, UnitError) as exc:
            raise MeasurementError(f"{name}: {v!r} is not valid ({exc})") from None
    return out


def sweeps_of(params: dict) -> list[tuple[str, str, str, list[float]]]:
    """The sweeps a check's params ask for: (label, unit shown, fault field, values in the fault's units)."""
    sweeps = [
        ("delay_ms", "ms", "delay_ms",
         [v * 1000.0 for v in _parse_list("delays_ms", params.get("delays_ms"), "time", "ms")]),
        ("loss", "%", "loss", _parse_list("losses", params.get("losses"), "ratio", "")),
        ("bandwidth", "kbit/s", "bandwidth_bps",
         [int(v) for v in _parse_list("bandwidths", params.get("bandwidths"), "bitrate", "bit/s")]),
    ]
    sweeps = [s for s in sweeps if s[3]]
    if not sweeps:
        raise MeasurementError("nothing to sweep: delays_ms, losses and bandwidths are all empty")
    return sweeps


def content_miss(site: Client, key: str, size: int, timeout: float) -> tuple[bool, float, str]:
    """A content miss: the site fetches it from central while the user waits."""
    r = site.call("GET", f"/content/{key}?size={size}", timeout=timeout)
    if r.status == 200 and len(r.body) == size:
        return True, r.elapsed, ""
    return False, r.elapsed, f"content miss: {r.describe()}"


def sweep(site: Client, sweeps: list[tuple[str, str, str, list[float]]], ops: list[str], per_step: int,
          timeout: float, size: int, tag: str,
          degraded: Callable[..., contextlib.AbstractContextManager]) -> dict[str, Any]:
    """Every step of every sweep (label, unit, fault field, values) under `degraded(**{field: value})`.

    Returns the tables (one per sweep, a row per step), the worst success ratio, the longest successful
    operation, the number of steps and the first failure seen."""
    tables, worst, longest, steps, counter, first_failure = [], 1.0, 0.0, 0, 0, None
    for label, unit, field_name, values in sweeps:
        rows = []
        for value in values:
            outcomes: list[tuple[bool, float, str]] = []
            lock = threading.Lock()

            # This step's list and lock, bound now: an operation still running after its join below
            # (past timeout + 5 s) must not add its outcome to the next step's.
            def run(op: str, n: int, outcomes: list = outcomes, lock: threading.Lock = lock) -> None:
                if op == "pos":
                    out = sale_until_forwarded(site, f"{tag}-{n}", timeout)
                else:
                    out = content_miss(site, f"{tag}-{n}", size, timeout)
                with lock:
                    outcomes.append(out)

            with degraded(**{field_name: value}):
                threads = []
                for op in ops:
                    for _ in range(per_step):
                        counter += 1
                        threads.append(spawn(run, op, counter))
                for t in threads:
                    t.join(timeout + 5)
            ok = [d for good, d, _ in outcomes if good]
            ratio = len(ok) / max(1, len(threads))
            worst = min(worst, ratio)
            longest = max([longest] + ok)
            steps += 1
            shown = {"delay_ms": value, "loss": value * 100.0, "bandwidth": value / 1000.0}[label]
            rows.append({"value": round(shown, 6), "success_ratio": round(ratio, 4),
                         "duration_s": round(statistics.mean(ok), 4) if ok else None,
                         "max_s": round(max(ok), 4) if ok else None, "operations": len(threads)})
            failures = [why for good, _, why in outcomes if not good]
            if failures and first_failure is None:
                first_failure = f"{label} {shown:g} {unit}: {failures[0]}"
        tables.append({"param": label, "unit": unit, "rows": rows})
    return {"tables": tables, "worst": worst, "longest": longest, "steps": steps, "first_failure": first_failure}


def sweep_figures(out: dict[str, Any], timeout: float) -> tuple[list[tuple[str, Any, str]], list[str]]:
    """(metric, value, unit) of a sweep and the notes that explain them: a line per sweep."""
    metrics: list[tuple[str, Any, str]] = [("min_success_ratio", out["worst"], "ratio"), ("steps", out["steps"], "")]
    notes = []
    if out["longest"] > 0:
        metrics.append(("max_duration", out["longest"], "s"))
    else:
        metrics.append(("max_duration", timeout, "s"))
        notes.append("no operation succeeded: max_duration recorded as the operation timeout")
    if out["first_failure"]:
        notes.append(f"first failed operation: {out['first_failure']}")
    for t in out["tables"]:
        notes.append(f"{t['param']} ({t['unit']}): " + ", ".join(
            f"{r['value']:g} -> {r['success_ratio'] * 100:.0f} %"
            + (f" {r['duration_s']:.2f} s" if r["duration_s"] is not None else "") for r in t["rows"]))
    return metrics, notes
