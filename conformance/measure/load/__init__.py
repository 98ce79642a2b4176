"""Load driver: open-model load from Locust child processes, measured in microsecond HDR histograms.

Harness-side API (none of it imports locust; see docs/load.md):

    from conformance.measure.load import run_load
    result = run_load({"url": "http://127.0.0.1:8080", "rate": 200, "duration_s": 10, "scenario": "content"})
    result.valid, result.achieved_rps, result.latency_us["p99"], result.series

Names are resolved lazily so that `python -m conformance.measure.load.child` imports nothing but this
docstring before its first statement (`import locust`, which monkey-patches with gevent).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "run_load": "driver",
    "LoadError": "driver",
    "LoadConfig": "config",
    "Endpoint": "config",
    "GuardConfig": "config",
    "UnsafeTargetError": "config",
    "check_targets_allowed": "config",
    "LoadResult": "result",
    "SCENARIOS": "scenarios",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
