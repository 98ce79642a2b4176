"""Functional checks on a site's hosts (pytest-testinfra): processes, services, ports, packages,
files, sysctls, clock and disk space.

Every check runs on each of the site's hosts and combines the answers (booleans must hold on every
host, counts add up). A site without hosts is not measured (the remedy: give it a host in the target
file); a host that cannot be reached, or that lacks what a check needs (no init system, no
`ss`/`netstat`, no package database ...), gives an error naming the cause, never a pass. The hosts are
read through conformance/measure/host/.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from conformance.measure.host.clock import Clock
from conformance.measure.host.container import gone_reason
from conformance.measure.host.disk import free_space
from conformance.measure.host.edgehost import HostUnavailable
from conformance.measure.host.file import File
from conformance.measure.host.package import Package
from conformance.measure.host.pkgversion import parse_constraint, satisfies
from conformance.measure.host.service import Service
from conformance.measure.host.site import (host_label, matches, scope_for, site_data_dir, site_hosts,
                                           site_processes, workload_scope)
from conformance.measure.host.sockets import Sockets
from conformance.measure.host.sysctl import Sysctl, as_number, same_value


@pytest.mark.edge_check("functional.process")
def test_process(edge):
    hosts = site_hosts(edge.site, edge.params)
    running_all, count = True, 0
    for host in hosts:
        label = host_label(hosts, host)
        scope = scope_for(edge.site, edge.params, host)
        if scope.kind == "host":  # docker backend: the container's workload; else nothing is the site's
            scope = workload_scope(edge.site, host)
        if scope is None:
            edge.not_measured("no `process` param given, and the site names no process of its own "
                              "(labels.process, labels.pid, or labels.command on its docker:// host)",
                              "give the requirement a `process` param (a name or command-line pattern of "
                              "the site's processes)")
        try:
            found, notes = site_processes(edge.site, host, scope)
        except HostUnavailable:
            # `docker exec` cannot enter a container that is not running: its workload is gone.
            gone = gone_reason(host.container or "") if scope.kind == "workload" else None
            if gone is None:
                raise
            found, notes = [], [gone]
        for n in notes:
            edge.note(label + n)
        if scope.kind == "pattern":
            found = [p for p in found if matches(scope.pattern or "", p)]
        count += len(found)
        running_all &= bool(found)
        shown = ", ".join(p.describe() for p in found[:5]) + (" ..." if len(found) > 5 else "")
        edge.note(f"{label}{scope.text}: {shown or 'none running'}")
    edge.record("running", running_all)
    edge.record("count", count)


@pytest.mark.edge_check("functional.service")
def test_service(edge):
    hosts = site_hosts(edge.site, edge.params)
    name = edge.params["name"]
    running_all, enabled_all = True, True
    for host in hosts:
        state = Service.of(host, name).state()
        edge.note(f"{host_label(hosts, host)}{name} via {state.how}: "
                  f"{'running' if state.running else 'not running'}"
                  + ("" if state.enabled is None else f", {'enabled' if state.enabled else 'not enabled'}"))
        running_all &= state.running
        enabled_all = None if state.enabled is None or enabled_all is None else (enabled_all and state.enabled)
    edge.record("running", running_all)
    if enabled_all is not None:
        edge.record("enabled", enabled_all)


def _port_param(edge) -> int:
    if edge.params.get("port"):
        return int(edge.params["port"])
    url = edge.endpoint(edge.params.get("endpoint") or "api")
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    if not port:
        edge.error(f"endpoint {url} names no port; give the `port` param")
    return port


@pytest.mark.edge_check("functional.port")
def test_port(edge):
    hosts = site_hosts(edge.site, edge.params)
    port = _port_param(edge)
    proto = (edge.params.get("proto") or "tcp").lower()
    if proto not in ("tcp", "udp"):
        edge.error(f'proto must be "tcp" or "udp", got {proto!r}')
    listening_all, owner_all = True, True
    for host in hosts:
        label = host_label(hosts, host)
        listeners, notes = Sockets.of(host).listeners()
        for n in notes:
            edge.note(n)
        mine = [s for s in listeners if s.proto == proto and s.port == port]
        if not mine:
            edge.note(f"{label}nothing listens on {proto}/{port}")
            listening_all = owner_all = False
            continue
        edge.note(f"{label}{proto}/{port}: " + ", ".join(s.describe() for s in mine))
        scope = scope_for(edge.site, edge.params, host)
        if scope.kind == "host":
            edge.note(f"{label}no owner required (no `process` param)")
            continue
        if any(s.pid is None for s in mine):
            edge.error(f"host {host.name}: cannot see which process owns {proto}/{port} "
                       "(socket owners are hidden: run with root rights, e.g. ?sudo=true)")
        owners, more = site_processes(edge.site, host, scope)
        for n in more:
            edge.note(label + n)
        ok = all(s.pid in {p.pid for p in owners} for s in mine)
        if not ok:
            edge.note(f"{label}{proto}/{port} is not owned by {scope.text}")
        owner_all &= ok
    edge.record("listening", listening_all)
    edge.record("owner_ok", owner_all)


@pytest.mark.edge_check("functional.package")
def test_package(edge):
    hosts = site_hosts(edge.site, edge.params)
    name, wanted = edge.params["name"], edge.params.get("version")
    try:
        constraint = parse_constraint(wanted) if wanted else []
    except ValueError as exc:
        edge.error(f"version: {exc}")
    installed_all, version_all = True, True
    for host in hosts:
        label = host_label(hosts, host)
        pkg = Package(host, name)
        if not pkg.installed:
            edge.note(f"{label}{name} is not installed")
            installed_all = version_all = False
            continue
        version = pkg.version
        ok = satisfies(version, constraint) if constraint else True
        edge.note(f"{label}{name} {version} installed"
                  + (f" ({'satisfies' if ok else 'does not satisfy'} {wanted})" if constraint else ""))
        version_all &= ok
    edge.record("installed", installed_all)
    edge.record("version_ok", version_all)


def _mode(edge, name: str) -> int | None:
    text = edge.params.get(name)
    try:
        return int(str(text), 8) if text else None
    except ValueError:
        edge.error(f'{name}: expected octal permission bits such as "0640", got {text!r}')


def _expected_mode(want: int | None, most: int | None) -> str:
    return " and ".join(([f"exactly {want:04o}"] if want is not None else [])
                        + ([f"at most {most:04o}"] if most is not None else []))


@pytest.mark.edge_check("functional.file")
def test_file(edge):
    hosts = site_hosts(edge.site, edge.params)
    p = edge.params
    path, contains, regex, owner = p["path"], p.get("contains"), p.get("regex"), p.get("owner")
    want_mode, max_mode = _mode(edge, "mode"), _mode(edge, "max_mode")
    try:
        pattern = re.compile(regex, re.MULTILINE) if regex else None
    except re.error as exc:
        edge.error(f"regex: {exc}")
    results = {"exists": True}
    results.update({"content_ok": True} if contains is not None or regex else {})
    results.update({"mode_ok": True} if want_mode is not None or max_mode is not None else {})
    results.update({"owner_ok": True} if owner else {})
    for host in hosts:
        label, f = host_label(hosts, host), File(host, path)
        if not f.exists:
            edge.note(f"{label}{path} does not exist")
            results = dict.fromkeys(results, False)
            continue
        if "content_ok" in results:
            text = f.content
            if contains is not None and contains not in text:
                edge.note(f"{label}{path} does not contain {contains!r}")
                results["content_ok"] = False
            if pattern and not pattern.search(text):
                edge.note(f"{label}{path} does not match /{regex}/")
                results["content_ok"] = False
        if "mode_ok" in results:
            mode = f.mode
            ok = (want_mode is None or mode == want_mode) and (max_mode is None or not mode & ~max_mode)
            edge.note(f"{label}{path} mode {mode:04o}"
                      + ("" if ok else f", expected {_expected_mode(want_mode, max_mode)}"))
            results["mode_ok"] &= ok
        if "owner_ok" in results and (user := f.user) != owner:
            edge.note(f"{label}{path} is owned by {user}, expected {owner}")
            results["owner_ok"] = False
    for k, v in results.items():
        edge.record(k, v)


@pytest.mark.edge_check("functional.sysctl")
def test_sysctl(edge):
    hosts = site_hosts(edge.site, edge.params)
    key, want = edge.params["key"], edge.params.get("value")
    values, match_all = [], True
    for host in hosts:
        value = Sysctl(host, key).value
        edge.note(f"{host_label(hosts, host)}{key} = {value}")
        if as_number(value) is not None:
            values.append(as_number(value))
        if want is not None:
            match_all &= same_value(value, want)
    if len(values) == len(hosts):
        if len(set(values)) > 1:
            edge.note("hosts differ; value is the first host's")
        edge.record("value", values[0])
    if want is not None:
        edge.record("match", match_all)


@pytest.mark.edge_check("functional.time_sync")
def test_time_sync(edge):
    hosts = site_hosts(edge.site, edge.params)
    worst, worst_u = 0.0, 0.0
    ntp_offsets, synced = [], []
    for host in hosts:
        label, clock = host_label(hosts, host), Clock(host)
        offset, uncertainty = clock.offset()
        edge.note(f"{label}clock {'ahead' if offset >= 0 else 'behind'} by {abs(offset) * 1000:.1f} ms "
                  f"(± {uncertainty * 1000:.1f} ms)")
        if abs(offset) >= worst:
            worst, worst_u = abs(offset), uncertainty
        ntp = clock.ntp()
        for n in ntp.notes:
            edge.note(label + n)
        ntp_offsets += [] if ntp.offset is None else [ntp.offset]
        synced += [] if ntp.synchronized is None else [ntp.synchronized]
    edge.record("offset", worst * 1000.0, "ms")
    edge.record("uncertainty", worst_u * 1000.0, "ms")
    if len(ntp_offsets) == len(hosts):
        edge.record("ntp_offset", max(ntp_offsets) * 1000.0, "ms")
    if len(synced) == len(hosts):
        edge.record("synchronized", all(synced))


@pytest.mark.edge_check("functional.disk_free")
def test_disk_free(edge):
    hosts = site_hosts(edge.site, edge.params)
    free_min, ratio_min = None, None
    for host in hosts:
        path = edge.params.get("path") or site_data_dir(edge.site, host) or "/"
        free, total = free_space(host, path)
        ratio = free / total if total else 0.0
        edge.note(f"{host_label(hosts, host)}{path}: {free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB "
                  f"({ratio:.1%})")
        free_min = free if free_min is None else min(free_min, free)
        ratio_min = ratio if ratio_min is None else min(ratio_min, ratio)
    edge.record("free", free_min, "B")
    edge.record("free_ratio", ratio_min)
