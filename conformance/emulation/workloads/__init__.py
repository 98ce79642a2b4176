"""Reference edge workloads: an aiohttp edge stack that behaves as the white paper's sites do.

Run one site per process: `python -m conformance.emulation.workloads --role edge|central ...` (see
docs/workloads.md). Edge sites take POS sales, cache content, aggregate IoT telemetry, validate tokens
locally and anonymise personal data, all while their WAN to central may be cut; central is the origin,
the sinks, the registry, the config store and the token issuer. --defects breaks one behaviour at a
time so suites can prove their checks fail on a broken deployment.

Keep imports here minimal: this package runs as many small processes at once.
"""

from conformance import __version__ as VERSION

__all__ = ["VERSION"]
