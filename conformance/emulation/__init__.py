"""Emulated edge deployments: topology -> running sites behind emulated WAN and access links.

The harness needs only `start_deployment` (and `list_running`/`stop_run`/`stop_all` for `emulate
status|down`). They are loaded lazily: every site process imports this package, and must not pay
for the harness-side modules.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Deployment", "EmulationError", "RunInfo", "start_deployment", "list_running", "stop_run", "stop_all"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import deployment

        return getattr(deployment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
