"""Probe deployment for a run (`run --deploy-probes`): the reference workloads installed on the real
sites whose target file gives them a `probes:` section, for the length of the run (docs/real-targets.md,
"Probes").

The plan: central probes first, then each edge probe with its uplink's central probe as its central
URL (the site's `probes.central_url`, else the central probe's address and port). Each probe's
endpoints replace the site's in the run's Target: `api` (the probe), and on an edge `wan` (its central
as it reaches it), so every check that needs the reference API measures the probes. Whatever was
deployed is removed when the context ends, whatever ends it (an error, Ctrl-C, SIGTERM: the plugin's
ExitStack); when the harness dies, the runtime's own tie ends the probes (probes/ssh.py).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from pathlib import Path

from ..model.errors import ConfigError
from ..model.target import ProcessGrant, Site, Target
from ..probes import Deployed, ProbeError, ProbeRequest, Runtime, runtime_class

OPTION = "--deploy-probes"
HEALTH_TIMEOUT_S = 15.0


def probe_sites(target: Target) -> list[Site]:
    """The sites a run with --deploy-probes installs probes on, central ones first."""
    sites = [s for s in target.sites if s.probes is not None]
    if not sites:
        raise ConfigError(target.path or None, None, OPTION,
                          f"no site of target {target.name} has a probes: section (docs/real-targets.md, Probes)")
    return sorted(sites, key=lambda s: s.role != "central")


@contextlib.contextmanager
def deployed_probes(target: Target, *, run_id: str, log_dir: Path) -> Iterator[Target]:
    """The target with its probe sites' endpoints pointing at freshly deployed probes."""
    sites = probe_sites(target)
    deployed: list[tuple[Runtime, Deployed]] = []
    try:
        urls: dict[str, str] = {}
        for site in sites:
            spec = site.probes
            assert spec is not None
            runtime = runtime_class(spec.runtime)()
            central_url = None
            if site.role != "central":
                central_url = spec.central_url or urls[site.uplink or ""]
            request = ProbeRequest(site=site.name, workload="central" if site.role == "central" else "edge",
                                   spec=spec, run_id=run_id, log_dir=log_dir, central_url=central_url)
            d = runtime.deploy(request)
            deployed.append((runtime, d))
            _wait_healthy(runtime, d)
            urls[site.name] = d.url
        yield _with_probes(target, {d.request.site: d for _, d in deployed})
    finally:
        for runtime, d in reversed(deployed):
            runtime.remove(d)


def _wait_healthy(runtime: Runtime, d: Deployed) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while not runtime.health(d):
        if time.monotonic() > deadline:
            raise ProbeError(f"probe of site {d.request.site}: ready at the site, but {d.url} does not answer "
                             f"from here within {HEALTH_TIMEOUT_S:g} s (probes.address, probes.listen, a firewall?)")
        time.sleep(0.2)


def _with_probes(target: Target, deployed: dict[str, Deployed]) -> Target:
    out = copy.deepcopy(target)
    for site in out.sites:
        d = deployed.get(site.name)
        if d is None:
            continue
        site.endpoints = {**site.endpoints, "api": d.url}
        if d.request.central_url:
            site.endpoints["wan"] = d.request.central_url
        # the probe is the site's own process and data for the host checks, unless the file says otherwise
        own = {k: d.info[k] for k in ("process", "data_dir") if d.info.get(k)}
        if own:  # on the probe's host only: the site's other hosts do not run it (measure/host/site.py)
            own["probe_host"] = d.request.spec.host
        if site.faults is not None and site.faults.process is not None and site.faults.process.probe:
            site.faults.process = _probe_grant(site.name, d)
        site.labels = {**own, **site.labels, "probe": {"runtime": site.probes.runtime if site.probes else "",
                                                       "run_id": d.request.run_id, "pid": d.info.get("pid")}}
    out.probes_deployed = sorted(deployed)
    return out


def _probe_grant(site: str, d: Deployed) -> ProcessGrant:
    """A `process: {probe: true}` grant made concrete: the probe's workload by its command line, started
    again through its keeper (a runtime without a keeper cannot take the grant)."""
    pattern, start, stop = d.info.get("fault_pattern"), d.info.get("fault_start"), d.info.get("fault_stop")
    if not pattern or not start or not stop:  # the target file refuses such a grant on load already
        raise ProbeError(f"site {site}: faults.process names the probe, but the {d.request.spec.runtime} probe "
                         "runtime has no keeper to stop and start it (use the ssh runtime, or a pattern grant)")
    return ProcessGrant(pattern=str(pattern), start=str(start), stop=str(stop))
