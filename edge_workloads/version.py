"""The version a site reports (heartbeats, /metrics, the management interface): the installed
edge-conformance distribution's, whose metadata also ships in the site image (docker/images.py).

Read from the distribution's metadata rather than imported from the harness: the workloads import
nothing of `conformance` (see the package docstring). "unknown" when run from a bare source tree.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "edge-conformance"


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


VERSION = _version()
