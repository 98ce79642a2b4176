"""Footprint checks: does the edge stack fit a small box (memory, CPU, disk, processes)?

Whose footprint: an emulated local site's process tree (labels.pid; every site shares this machine),
processes matching the `process` param, the container of a docker:// host, or the whole host
(`scope: site` leaves the requirement not measured instead of measuring the whole host). Measured
through conformance/measure/footprint.py and conformance/measure/host/.
"""

from __future__ import annotations

from contextlib import nullcontext
from urllib.parse import urlsplit

import pytest

from conformance.measure import footprint as F
from conformance.measure.host.disk import disk_used
from conformance.measure.host.processes import Processes
from conformance.measure.host.site import Scope, host_label, scope_for, site_data_dir, site_hosts


def _scope(edge, host) -> Scope:
    mode = (edge.params.get("scope") or "auto").lower()
    if mode not in ("auto", "site", "host"):
        edge.error(f'scope must be auto, site or host, got {mode!r}')
    if mode == "host":
        return Scope("host", f"whole host {host.name}")
    return scope_for(edge.site, edge.params, host, require_site=mode == "site")


def _budget_note(edge) -> None:
    labels = edge.site.labels or {}
    memory, cpus = labels.get("resources_memory"), labels.get("resources_cpus")
    parts = []
    if isinstance(memory, (int, float)) and memory:
        parts.append(f"memory {memory / 2**20:g} MiB")
    if isinstance(cpus, (int, float)) and cpus:
        parts.append(f"{cpus:g} cpus")
    if parts:
        edge.note("the emulated site's declared resources: " + ", ".join(parts))


@pytest.mark.edge_check("footprint.memory")
def test_memory(edge):
    hosts = site_hosts(edge.site, edge.params)
    total = 0
    for host in hosts:
        used, notes = F.memory_used(edge.site, host, _scope(edge, host))
        for n in notes:
            edge.note(host_label(hosts, host) + n)
        total += used
    _budget_note(edge)
    edge.record("rss", total / 2**20, "MiB")


def _load_url(edge) -> str:
    url = edge.endpoint(edge.params.get("endpoint") or "api")
    path = edge.params.get("path") or "/health"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        edge.error(f"load_rps needs an http(s) endpoint, {url} is not")
    if (parts.hostname or "") not in edge.allowed_hosts:  # pragma: no cover - declared endpoints are allowed
        edge.error(f"{url} is not one of the target's declared endpoints")
    return url.rstrip("/") + "/" + path.lstrip("/")


@pytest.mark.edge_check("footprint.cpu")
def test_cpu(edge):
    hosts = site_hosts(edge.site, edge.params)
    window = float(edge.params.get("window") or 3.0)
    if not 0.2 <= window <= 120:
        edge.error(f"window must be between 0.2 s and 2 min, got {window:g} s")
    rps = edge.params.get("load_rps")
    if rps is not None and not 0 < float(rps) <= F.MAX_LOAD_RPS:
        edge.error(f"load_rps must be between 0 and {F.MAX_LOAD_RPS:g}, got {rps}")
    plans = [(host, _scope(edge, host)) for host in hosts]
    load = F.SteadyLoad(_load_url(edge), float(rps), timeout=min(2.0, window)) if rps else None
    total = 0.0
    with load if load is not None else nullcontext():
        for host, scope in plans:  # one after another; under load each gets its own window
            cores, notes = F.cpu_used(edge.site, host, scope, window)
            for n in notes:
                edge.note(host_label(hosts, host) + n)
            total += cores
    _budget_note(edge)
    edge.record("cpu", total, "cores")
    if load is not None:
        res = load.result
        edge.record("achieved_rps", res.achieved_rps, "rps")
        edge.note(f"load: {res.ok} ok, {res.errors} failed of {res.sent} requests to {load.url} "
                  f"({res.achieved_rps:.1f} rps, asked {load.rps:g})"
                  + (f"; last error: {res.last_error}" if res.last_error else ""))
        if res.achieved_rps < 0.8 * load.rps:
            edge.inconclusive(f"the load reached only {res.achieved_rps:.1f} of {load.rps:g} rps "
                              f"({res.errors} failed): the CPU figure is not the one asked for")


@pytest.mark.edge_check("footprint.disk")
def test_disk(edge):
    hosts = site_hosts(edge.site, edge.params)
    total, measured = 0, False
    for host in hosts:
        # The site's data dir where this host sees it: on local:// or inside the site's container.
        data_dir = site_data_dir(edge.site, host)
        paths = [str(p) for p in (edge.params.get("paths") or ([data_dir] if data_dir else []))]
        if not paths:
            continue
        measured = True
        used = disk_used(host, paths)
        edge.note(f"{host_label(hosts, host)}{', '.join(paths)}: {used / 2**20:.1f} MiB on disk")
        total += used
    if not measured:
        edge.not_measured("no `paths` given and the site declares no data dir (labels.data_dir)",
                          "give the requirement a `paths` param (the site's data directories), or the site "
                          "a labels.data_dir in the target file")
    edge.record("used", total / 2**20, "MiB")


@pytest.mark.edge_check("footprint.processes")
def test_processes(edge):
    hosts = site_hosts(edge.site, edge.params)
    count, threads = 0, 0
    for host in hosts:
        scope, table = _scope(edge, host), Processes.of(host)
        if scope.kind == "host":
            procs = table.snapshot()
        else:
            procs, notes = F.running_processes(edge.site, host, scope)
            for n in notes:
                edge.note(n)
        count += len(procs)
        seen = table.threads(p.pid for p in procs)
        threads = None if seen is None or threads is None else threads + seen
        names = sorted({p.name for p in procs})
        edge.note(f"{host_label(hosts, host)}{scope.text}: {len(procs)} process(es): "
                  + ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""))
    edge.record("count", count)
    if threads is not None:
        edge.record("threads", threads)
