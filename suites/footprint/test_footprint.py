"""Footprint checks: does the edge stack fit a small box (memory, CPU, disk, processes)?

Whose footprint: an emulated local site's process tree (labels.pid; every site shares this machine),
processes matching the `process` param, the container of a docker:// host, or the whole host
(`scope: site` leaves the requirement not measured instead of measuring the whole host).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from conformance.measure import footprint as F
from conformance.measure.hosts import (EdgeHost, NotScoped, Scope, no_hosts, scope_for, site_data_dir,
                                       site_hosts, site_processes)


def _hosts(edge) -> list[EdgeHost]:
    hosts = site_hosts(edge.site, edge.params)
    if not hosts:
        edge.not_measured(*no_hosts(edge.site, edge.params))
    return hosts


def _scope(edge, host: EdgeHost):
    mode = (edge.params.get("scope") or "auto").lower()
    if mode not in ("auto", "site", "host"):
        edge.error(f'scope must be auto, site or host, got {mode!r}')
    if mode == "host":
        return Scope("host", f"whole host {host.name}")
    try:
        return scope_for(edge.site, edge.params, host, require_site=mode == "site")
    except NotScoped as exc:
        edge.not_measured(exc.reason, exc.remedy)


def _label(hosts, host) -> str:
    return f"{host.name}: " if len(hosts) > 1 else ""


def _site_procs(edge, host, scope):
    procs, notes = site_processes(edge.site, host, scope)
    for n in notes:
        edge.note(n)
    if not procs:
        edge.error(f"host {host.name}: no process of {scope.text} is running")
    return procs


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


# ---------------------------------------------------------------------------------------------


@pytest.mark.edge_check("footprint.memory")
def test_memory(edge):
    hosts = _hosts(edge)
    total = 0
    for host in hosts:
        scope = _scope(edge, host)
        label = _label(hosts, host)
        if scope.kind == "host":
            container = F.docker_container(host.container) if host.container else None
            stats = F.docker_stats(container) if container is not None else None
            used = F.docker_memory(stats) if stats else None
            if used is not None:
                edge.note(f"{label}container {host.container}: {used / 2**20:.1f} MiB (docker stats)")
            else:
                used = host.host_memory_used()
                edge.note(f"{label}{scope.text}: {used / 2**20:.1f} MiB in use (MemTotal - MemAvailable)")
            total += used
            continue
        procs = _site_procs(edge, host, scope)
        rss = sum(p.rss or 0 for p in procs)
        if any(p.rss is None for p in procs):
            edge.note(f"{label}RSS of {sum(p.rss is None for p in procs)} process(es) not visible")
        top = sorted(procs, key=lambda p: p.rss or 0, reverse=True)[:3]
        edge.note(f"{label}{scope.text}: {len(procs)} process(es), RSS {rss / 2**20:.1f} MiB; largest: "
                  + ", ".join(f"{p.describe()} {(p.rss or 0) / 2**20:.1f} MiB" for p in top))
        total += rss
    _budget_note(edge)
    edge.record("rss", total / 2**20, "MiB")


# ---------------------------------------------------------------------------------------------


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
    hosts = _hosts(edge)
    window = float(edge.params.get("window") or 3.0)
    if not 0.2 <= window <= 120:
        edge.error(f"window must be between 0.2 s and 2 min, got {window:g} s")
    rps = edge.params.get("load_rps")
    if rps is not None and not 0 < float(rps) <= F.MAX_LOAD_RPS:
        edge.error(f"load_rps must be between 0 and {F.MAX_LOAD_RPS:g}, got {rps}")
    plans = []
    for host in hosts:
        scope = _scope(edge, host)
        plans.append((host, scope))
    load = F.SteadyLoad(_load_url(edge), float(rps), timeout=min(2.0, window)) if rps else None
    total = 0.0
    if load is not None:
        load.__enter__()
    try:
        # Hosts are measured one after another; under load each gets its own window.
        for host, scope in plans:
            label = _label(hosts, host)
            if scope.kind == "host":
                container = F.docker_container(host.container) if host.container else None
                cores = F.docker_cpu_over(container, window) if container is not None else None
                if cores is None:
                    cores = F.host_cpu_over(host, window)
                edge.note(f"{label}{scope.text}: {cores:.3f} cores over {window:g} s")
                total += cores
                continue
            _site_procs(edge, host, scope)  # fails early when the site is not running
            root_scope = scope

            def pick(host=host, scope=root_scope):
                procs, _ = site_processes(edge.site, host, scope)
                return [p.pid for p in procs]

            cores, count, notes = F.tree_cpu_over(host, pick, window)
            for n in notes:
                edge.note(label + n)
            edge.note(f"{label}{scope.text}: {cores:.3f} cores over {window:g} s ({count} process(es))")
            total += cores
    finally:
        if load is not None:
            load.__exit__(None, None, None)
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


# ---------------------------------------------------------------------------------------------


@pytest.mark.edge_check("footprint.disk")
def test_disk(edge):
    hosts = _hosts(edge)
    total, measured = 0, False
    for host in hosts:
        # The site's data dir where this host sees it: on local:// or inside the site's container.
        data_dir = site_data_dir(edge.site, host)
        paths = [str(p) for p in (edge.params.get("paths") or ([data_dir] if data_dir else []))]
        if not paths:
            continue
        measured = True
        if host.uses_psutil:
            used = sum(F.local_disk_used(p) for p in paths)
        else:
            used = F.remote_disk_used(host, paths)
        edge.note(f"{_label(hosts, host)}{', '.join(paths)}: {used / 2**20:.1f} MiB on disk")
        total += used
    if not measured:
        edge.not_measured("no `paths` given and the site declares no data dir (labels.data_dir)",
                          "give the requirement a `paths` param (the site's data directories), or the site "
                          "a labels.data_dir in the target file")
    edge.record("used", total / 2**20, "MiB")


# ---------------------------------------------------------------------------------------------


def _threads(pids: list[int]) -> int | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return None
    n = 0
    for pid in pids:
        try:
            n += psutil.Process(pid).num_threads()
        except psutil.Error:
            continue
    return n


@pytest.mark.edge_check("footprint.processes")
def test_processes(edge):
    hosts = _hosts(edge)
    count, threads = 0, 0
    threads_known = True
    for host in hosts:
        scope = _scope(edge, host)
        procs = host.processes() if scope.kind == "host" else _site_procs(edge, host, scope)
        count += len(procs)
        if host.uses_psutil:
            threads += _threads([p.pid for p in procs]) or 0
        else:
            threads_known = False
        names = sorted({p.name for p in procs})
        edge.note(f"{_label(hosts, host)}{scope.text}: {len(procs)} process(es): "
                  + ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""))
    edge.record("count", count)
    if threads_known:
        edge.record("threads", threads)

