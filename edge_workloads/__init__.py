"""Reference edge workloads: an aiohttp edge stack that behaves as the white paper's sites do.

These are the system under test of an emulated deployment, not part of the harness: a top-level
package of the edge-conformance distribution, next to `conformance` (the harness). Run one site per
process: `python -m edge_workloads --role edge|central ...` (see docs/workloads.md). Edge sites take
POS sales, cache content, aggregate IoT telemetry, validate tokens locally and anonymise personal
data, all while their WAN to central may be cut; central is the origin, the sinks, the registry, the
config store and the token issuer. --defects breaks one behaviour at a time so suites can prove their
checks fail on a broken deployment.

Dependencies go one way: the harness imports this package, never the reverse. The workloads define
what a site accepts (settings.py: the site settings of a topology's `config:`; defects.py: the defect
switches; defects.readiness_path), and the harness validates a topology through them
(conformance.model.topology) and starts sites by this package's command line
(conformance.emulation). Nothing here imports `conformance`, so the same code runs in a site
container that holds only this package and aiohttp (conformance.emulation.docker.images). The
version a site reports is the installed distribution's (version.py).

Keep imports here minimal: this package runs as many small processes at once.
"""
