"""Emulated edge deployments: topology -> running sites behind emulated WAN and access links.

The harness needs only `start_deployment` (and `list_running`/`stop_run`/`stop_all` for `emulate
status|down`). They are loaded lazily: a docker site container imports this package (siteinit, in
conformance.emulation.docker) without the harness-side modules, and linkd should not pay for them.

The sites themselves run the reference workloads, a package of their own (edge_workloads). Which
backend runs them is conformance.emulation.backends; docs/emulation.md says how the modules are cut.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Deployment", "EmulationError", "RunInfo", "start_deployment", "list_running", "stop_run", "stop_all"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import deployment

        return getattr(deployment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
