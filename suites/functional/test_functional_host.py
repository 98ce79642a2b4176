"""Functional checks on a site's hosts (pytest-testinfra): processes, services, ports, packages,
files, sysctls, clock and disk space.

Every check runs on each of the site's hosts and combines the answers (booleans must hold on every
host, counts add up). A site without hosts is not measured (the remedy: give it a host in the target
file); a host that cannot be reached, or that lacks what a check needs (no init system, no
`ss`/`netstat`, no package database ...), gives an error naming the cause, never a pass.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time

import pytest

from conformance.measure.hosts import (EdgeHost, HostLacks, HostUnavailable, Scope, container_state, matches,
                                       no_hosts, site_data_dir, site_hosts, site_pid, site_processes,
                                       workload_scope)
from conformance.measure.pkgversion import parse_constraint, satisfies
from conformance.model.errors import MeasurementError


def _hosts(edge) -> list[EdgeHost]:
    hosts = site_hosts(edge.site, edge.params)
    if not hosts:
        edge.not_measured(*no_hosts(edge.site, edge.params))
    return hosts


def _label(hosts: list[EdgeHost], host: EdgeHost) -> str:
    return f"{host.name}: " if len(hosts) > 1 else ""


# ---------------------------------------------------------------------------------------------


@pytest.mark.edge_check("functional.process")
def test_process(edge):
    hosts = _hosts(edge)
    pattern = edge.params.get("process")
    running_all, count = True, 0
    for host in hosts:
        if pattern:
            scope = Scope("pattern", f"processes matching {pattern!r}", pattern=pattern)
        elif host.is_local and site_pid(edge.site) is not None:
            scope = Scope("tree", f"site process (pid {site_pid(edge.site)})", root=site_pid(edge.site))
        elif workload_scope(edge.site, host) is not None:
            scope = workload_scope(edge.site, host)  # docker backend: the container's workload
        else:
            edge.not_measured("no `process` param given, and the site names no process of its own "
                              "(labels.pid, or labels.command on its docker:// host)",
                              "give the requirement a `process` param (a name or command-line pattern of "
                              "the site's processes)")
        try:
            found, notes = site_processes(edge.site, host, scope)
        except HostUnavailable:
            gone = _container_gone(edge.site, host) if scope.kind == "workload" else None
            if gone is None:
                raise
            # `docker exec` cannot enter a container that is not running: its workload is gone.
            found, notes = [], [gone]
        for n in notes:
            edge.note(_label(hosts, host) + n)
        if scope.kind == "pattern":
            found = [p for p in found if matches(pattern, p)]
        count += len(found)
        running_all &= bool(found)
        shown = ", ".join(p.describe() for p in found[:5]) + (" ..." if len(found) > 5 else "")
        edge.note(f"{_label(hosts, host)}{scope.text}: {shown or 'none running'}")
    edge.record("running", running_all)
    edge.record("count", count)


def _container_gone(site, host: EdgeHost) -> str | None:
    """Why the site's container runs no workload (it is exited, dead, removed ...), or None when it
    is running or paused, or Docker cannot be asked (the caller's error stands then)."""
    state = container_state(host.container or "")
    if not state or state.get("Status") in ("running", "paused"):
        return None
    code = f" (exit {state.get('ExitCode')})" if state.get("Status") in ("exited", "dead") else ""
    return f"container {host.container} is {state.get('Status') or '?'}{code}: the site's workload is not running"


# ---------------------------------------------------------------------------------------------


def _service_state(host: EdgeHost, name: str) -> tuple[bool, bool | None, str]:
    """(running, enabled or None, how it was asked)."""
    f = host.facts
    t = host.host
    if f.systemd_running or f.has("rc-service") or (f.has("initctl") and f.has("status")):
        svc = host.call(lambda: t.service(name), f"service {name}")
        running = host.call(lambda: svc.is_running, f"service {name} is running")
        try:
            enabled = host.call(lambda: svc.is_enabled, f"service {name} is enabled")
        except MeasurementError:
            enabled = None
        kind = "systemd" if f.systemd_running else "OpenRC" if f.has("rc-service") else "upstart"
        return bool(running), enabled, kind
    script = f"/etc/init.d/{name}"
    if f.has("service") and re.fullmatch(r"[A-Za-z0-9@._-]+", name) and \
            host.call(lambda: t.file(script).exists, f"test -e {script}"):
        out = host.run(f"service {shlex.quote(name)} status >/dev/null 2>&1; echo rc=$?",
                       what=f"service {name} status")
        m = re.search(r"rc=(\d+)", out.stdout)
        rc = int(m[1]) if m else -1
        if rc == 4 or rc < 0:
            raise MeasurementError(f"host {host.name}: `service {name} status` cannot tell (exit {rc})")
        links = host.run(f"ls /etc/rc[2345].d/S*{shlex.quote(name)} 2>/dev/null | head -n 1", what="rc links")
        return rc == 0, bool(links.stdout.strip()), f"SysV init script {script}"
    if f.has("systemctl"):
        raise HostLacks(f"host {host.name}: systemd is installed but not running (PID 1 is "
                        f"`{f.pid1 or '?'}`), and there is no {script}: cannot query service {name}; "
                        "check its process with functional.process")
    raise HostLacks(f"host {host.name} lacks an init system testinfra can query (no systemd, OpenRC, "
                    f"upstart or SysV `service`): cannot query service {name}; check its process with "
                    "functional.process")


@pytest.mark.edge_check("functional.service")
def test_service(edge):
    hosts = _hosts(edge)
    name = edge.params["name"]
    running_all, enabled_all = True, True
    for host in hosts:
        running, enabled, how = _service_state(host, name)
        edge.note(f"{_label(hosts, host)}{name} via {how}: {'running' if running else 'not running'}"
                  + ("" if enabled is None else f", {'enabled' if enabled else 'not enabled'}"))
        running_all &= running
        enabled_all = None if enabled is None or enabled_all is None else (enabled_all and enabled)
    edge.record("running", running_all)
    if enabled_all is not None:
        edge.record("enabled", enabled_all)


# ---------------------------------------------------------------------------------------------


def _port_param(edge) -> int:
    port = edge.params.get("port")
    if port:
        return int(port)
    from urllib.parse import urlsplit

    url = edge.endpoint(edge.params.get("endpoint") or "api")
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    if not port:
        edge.error(f"endpoint {url} names no port; give the `port` param")
    return port


@pytest.mark.edge_check("functional.port")
def test_port(edge):
    hosts = _hosts(edge)
    port = _port_param(edge)
    proto = (edge.params.get("proto") or "tcp").lower()
    if proto not in ("tcp", "udp"):
        edge.error(f'proto must be "tcp" or "udp", got {proto!r}')
    pattern = edge.params.get("process")
    listening_all, owner_all = True, True
    for host in hosts:
        listeners, notes = host.listeners()
        for n in notes:
            edge.note(n)
        mine = [s for s in listeners if s.proto == proto and s.port == port]
        label = _label(hosts, host)
        if not mine:
            edge.note(f"{label}nothing listens on {proto}/{port}")
            listening_all = owner_all = False
            continue
        edge.note(f"{label}{proto}/{port}: " + ", ".join(s.describe() for s in mine))
        if pattern:
            scope = Scope("pattern", f"processes matching {pattern!r}", pattern=pattern)
        elif host.is_local and site_pid(edge.site) is not None:
            scope = Scope("tree", "site process tree", root=site_pid(edge.site))
        else:
            edge.note(f"{label}no owner required (no `process` param)")
            continue
        if any(s.pid is None for s in mine):
            edge.error(f"host {host.name}: cannot see which process owns {proto}/{port} "
                       "(socket owners are hidden: run with root rights, e.g. ?sudo=true)")
        owners, more = site_processes(edge.site, host, scope)
        for n in more:
            edge.note(label + n)
        owner_pids = {p.pid for p in owners}
        ok = all(s.pid in owner_pids for s in mine)
        if not ok:
            edge.note(f"{label}{proto}/{port} is not owned by {scope.text}")
        owner_all &= ok
    edge.record("listening", listening_all)
    edge.record("owner_ok", owner_all)


# ---------------------------------------------------------------------------------------------


def _package_tool(host: EdgeHost, module_name: str) -> None:
    """Refuse testinfra's Package module where it would answer from the wrong (or no) database."""
    f = host.facts
    need = {"DebianPackage": "dpkg-query", "RpmPackage": "rpm", "AlpinePackage": "apk",
            "ArchPackage": "pacman"}.get(module_name)
    if need is None:
        return
    if not f.has(need):
        raise HostLacks(f"host {host.name} lacks a package database testinfra can read (no dpkg-query, rpm, "
                        "apk or pacman): cannot check packages")
    if f.busybox(need):
        raise HostLacks(f"host {host.name}: its `{need}` is a BusyBox applet, not a package database "
                        "(no dpkg-query, rpm, apk or pacman): cannot check packages")


@pytest.mark.edge_check("functional.package")
def test_package(edge):
    hosts = _hosts(edge)
    name = edge.params["name"]
    constraint_text = edge.params.get("version")
    try:
        constraint = parse_constraint(constraint_text) if constraint_text else []
    except ValueError as exc:
        edge.error(f"version: {exc}")
    installed_all, version_all = True, True
    for host in hosts:
        if not host.facts.has("dpkg-query") and not any(
                host.facts.has(t) and not host.facts.busybox(t) for t in ("rpm", "apk", "pacman")):
            raise HostLacks(f"host {host.name} lacks a package database (no dpkg-query, rpm, apk or pacman): "
                            f"cannot check package {name}")
        t = host.host
        pkg = host.call(lambda: t.package(name), f"package {name}")
        _package_tool(host, type(pkg).__name__)
        installed = bool(host.call(lambda: pkg.is_installed, f"package {name} installed"))
        label = _label(hosts, host)
        if not installed:
            edge.note(f"{label}{name} is not installed")
            installed_all = version_all = False
            continue
        version = str(host.call(lambda: pkg.version, f"package {name} version"))
        ok = satisfies(version, constraint) if constraint else True
        edge.note(f"{label}{name} {version} installed"
                  + (f" ({'satisfies' if ok else 'does not satisfy'} {constraint_text})" if constraint else ""))
        version_all &= ok
    edge.record("installed", installed_all)
    edge.record("version_ok", version_all)


# ---------------------------------------------------------------------------------------------

MAX_CONTENT = 1 << 20


def _mode(text: str, name: str, edge) -> int:
    try:
        return int(str(text), 8)
    except ValueError:
        edge.error(f'{name}: expected octal permission bits such as "0640", got {text!r}')


@pytest.mark.edge_check("functional.file")
def test_file(edge):
    hosts = _hosts(edge)
    p = edge.params
    path = p["path"]
    contains, regex = p.get("contains"), p.get("regex")
    want_mode = _mode(p["mode"], "mode", edge) if p.get("mode") else None
    max_mode = _mode(p["max_mode"], "max_mode", edge) if p.get("max_mode") else None
    if regex:
        try:
            pattern = re.compile(regex, re.MULTILINE)
        except re.error as exc:
            edge.error(f"regex: {exc}")
    results = {"exists": True}
    if contains is not None or regex:
        results["content_ok"] = True
    if want_mode is not None or max_mode is not None:
        results["mode_ok"] = True
    if p.get("owner"):
        results["owner_ok"] = True
    for host in hosts:
        label = _label(hosts, host)
        t = host.host
        f = host.call(lambda: t.file(path), f"file {path}")
        if not host.call(lambda: f.exists, f"test -e {path}"):
            edge.note(f"{label}{path} does not exist")
            for k in results:
                results[k] = False
            continue
        if "content_ok" in results:
            out = host.run(f"head -c {MAX_CONTENT} -- {shlex.quote(path)}", what=f"read {path}")
            if out.rc != 0:
                edge.error(f"host {host.name}: cannot read {path}: {out.stderr.strip()[:200]}")
            text = out.stdout
            ok = True
            if contains is not None and contains not in text:
                edge.note(f"{label}{path} does not contain {contains!r}")
                ok = False
            if regex and not pattern.search(text):
                edge.note(f"{label}{path} does not match /{regex}/")
                ok = False
            results["content_ok"] &= ok
        if "mode_ok" in results:
            target = f
            if host.call(lambda: f.is_symlink, f"test -L {path}"):
                real = host.call(lambda: f.linked_to, f"readlink -f {path}")
                target = host.call(lambda: t.file(real), f"file {real}")
            mode = int(host.call(lambda: target.mode, f"stat {path}"))
            ok = (want_mode is None or mode == want_mode) and (max_mode is None or not mode & ~max_mode)
            edge.note(f"{label}{path} mode {mode:04o}" + ("" if ok else
                      f", expected {'exactly ' + format(want_mode, '04o') if want_mode is not None else ''}"
                      f"{' and ' if want_mode is not None and max_mode is not None else ''}"
                      f"{'at most ' + format(max_mode, '04o') if max_mode is not None else ''}"))
            results["mode_ok"] &= ok
        if "owner_ok" in results:
            user = str(host.call(lambda: f.user, f"owner of {path}"))
            ok = user == p["owner"]
            if not ok:
                edge.note(f"{label}{path} is owned by {user}, expected {p['owner']}")
            results["owner_ok"] &= ok
    for k, v in results.items():
        edge.record(k, v)


# ---------------------------------------------------------------------------------------------


@pytest.mark.edge_check("functional.sysctl")
def test_sysctl(edge):
    hosts = _hosts(edge)
    key = edge.params["key"]
    want = edge.params.get("value")
    if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", key):
        edge.error(f"key: {key!r} is not a sysctl key")
    proc_path = "/proc/sys/" + key.replace(".", "/")
    values = []
    match_all = True
    for host in hosts:
        out = host.run(f"cat {shlex.quote(proc_path)} 2>/dev/null", what=f"read {proc_path}")
        text = out.stdout.strip() if out.rc == 0 else None
        if text is None and host.facts.has("sysctl"):
            t = host.host
            try:
                text = str(host.call(lambda: t.sysctl(key), f"sysctl {key}")).strip()
            except MeasurementError:
                text = None
        if text is None:
            if not host.facts.proc and not host.facts.has("sysctl"):
                raise HostLacks(f"host {host.name} lacks /proc/sys and `sysctl`: cannot read {key}")
            edge.error(f"host {host.name}: no sysctl {key} ({proc_path} does not exist)")
        normalized = " ".join(text.split())
        edge.note(f"{_label(hosts, host)}{key} = {normalized}")
        if re.fullmatch(r"-?\d+(\.\d+)?", normalized):
            values.append(float(normalized))
        if want is not None:
            expected = " ".join(str(want).split())
            if isinstance(want, bool):
                expected = "1" if want else "0"
            match_all &= normalized == expected
    if len(values) == len(hosts):
        if len(set(values)) > 1:
            edge.note("hosts differ; value is the first host's")
        edge.record("value", values[0])
    if want is not None:
        edge.record("match", match_all)


# ---------------------------------------------------------------------------------------------


def _clock_sample(host: EdgeHost) -> tuple[float, float]:
    """(host clock - harness clock, uncertainty) in seconds, from `date +%s.%N` bracketed by our clock."""
    before = time.time()
    out = host.run("date +%s.%N", what="date")
    after = time.time()
    text = out.stdout.strip()
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?", text)
    if out.rc != 0 or not m:
        m2 = re.match(r"(\d+)", text)
        if not m2:
            raise MeasurementError(f"host {host.name}: `date +%s.%N` answered {text[:60]!r}")
        host_time, extra = int(m2[1]) + 0.5, 0.5  # whole seconds only (BusyBox date without %N)
    else:
        host_time, extra = float(f"{m[1]}.{m[2] or 0}"), (0.0 if m[2] else 0.5)
    middle = (before + after) / 2
    return host_time - middle, (after - before) / 2 + extra


@pytest.mark.edge_check("functional.time_sync")
def test_time_sync(edge):
    hosts = _hosts(edge)
    worst, worst_u = 0.0, 0.0
    ntp_offsets, synced = [], []
    for host in hosts:
        samples = [_clock_sample(host) for _ in range(3)]
        offset, uncertainty = min(samples, key=lambda s: s[1])  # the tightest bracket, as NTP does
        label = _label(hosts, host)
        edge.note(f"{label}clock {'ahead' if offset >= 0 else 'behind'} by {abs(offset) * 1000:.1f} ms "
                  f"(± {uncertainty * 1000:.1f} ms)")
        if abs(offset) >= worst:
            worst, worst_u = abs(offset), uncertainty
        if host.facts.has("chronyc"):
            out = host.run("chronyc -n tracking", what="chronyc tracking")
            m = re.search(r"System time\s*:\s*([\d.]+)\s+seconds\s+(fast|slow)", out.stdout)
            if m:
                ntp_offsets.append(float(m[1]))
                edge.note(f"{label}chrony: system time {m[1]} s {m[2]} of NTP time")
            leap = re.search(r"Leap status\s*:\s*(.+)", out.stdout)
            if leap:
                synced.append("not synchron" not in leap[1].lower())
        elif host.facts.has("timedatectl") and host.facts.systemd_running:
            out = host.run("timedatectl show -p NTPSynchronized --value", what="timedatectl")
            if out.rc == 0 and out.stdout.strip() in ("yes", "no"):
                synced.append(out.stdout.strip() == "yes")
                edge.note(f"{label}timedatectl: NTPSynchronized={out.stdout.strip()}")
    edge.record("offset", worst * 1000.0, "ms")
    edge.record("uncertainty", worst_u * 1000.0, "ms")
    if len(ntp_offsets) == len(hosts):
        edge.record("ntp_offset", max(ntp_offsets) * 1000.0, "ms")
    if len(synced) == len(hosts):
        edge.record("synchronized", all(synced))


# ---------------------------------------------------------------------------------------------


@pytest.mark.edge_check("functional.disk_free")
def test_disk_free(edge):
    hosts = _hosts(edge)
    free_min, ratio_min = None, None
    for host in hosts:
        path = edge.params.get("path") or site_data_dir(edge.site, host) or "/"
        label = _label(hosts, host)
        if host.uses_psutil:
            try:
                usage = shutil.disk_usage(path)
            except OSError as exc:
                edge.error(f"{path}: {exc.strerror or exc}")
            free, total = usage.free, usage.total
        else:
            host.require("df", purpose="measure free disk space")
            out = host.run(f"df -Pk {shlex.quote(path)}", what=f"df {path}")
            rows = [ln.split() for ln in out.stdout.splitlines()[1:] if ln.strip()]
            if out.rc != 0 or not rows or len(rows[-1]) < 4:
                edge.error(f"host {host.name}: df {path}: {out.stderr.strip()[:200] or 'no answer'}")
            row = rows[-1]
            total, free = int(row[1]) * 1024, int(row[3]) * 1024
        ratio = free / total if total else 0.0
        edge.note(f"{label}{path}: {free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB ({ratio:.1%})")
        free_min = free if free_min is None else min(free_min, free)
        ratio_min = ratio if ratio_min is None else min(ratio_min, ratio)
    edge.record("free", free_min, "B")
    edge.record("free_ratio", ratio_min)

