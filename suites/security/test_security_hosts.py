"""Security checks on a site's hosts: nothing unexpected listens, no world-readable secrets."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import stat
from urllib.parse import urlsplit

import pytest

from conformance.measure.hosts import (DOCKER_DNS_ADDRESS, EdgeHost, Listener, Scope, docker_dns_listener,
                                       no_hosts, site_data_dir, site_hosts, site_pid, site_processes)


def _hosts(edge) -> list[EdgeHost]:
    hosts = site_hosts(edge.site, edge.params)
    if not hosts:
        edge.not_measured(*no_hosts(edge.site, edge.params))
    return hosts


# ---------------------------------------------------------------------------------------------
# security.listening_ports


def _is_root(host: EdgeHost) -> bool:
    # As root every socket's owner is visible, except sockets of other pid namespaces (containers),
    # which are not the site's anyway.
    return os.geteuid() == 0 if host.uses_psutil else host.facts.uid == 0

_ALLOW = re.compile(r"^\s*(\d+)(?:\s*-\s*(\d+))?\s*(?:/\s*(tcp|udp))?\s*$", re.IGNORECASE)


def parse_allow(entries, edge) -> list[tuple[int, int, str | None]]:
    rules = []
    for entry in entries or []:
        m = _ALLOW.match(str(entry))
        if not m:
            edge.error(f'allow: cannot read {entry!r}: expected a port such as 22, "22/tcp" or "8000-8100/tcp"')
        low = int(m[1])
        rules.append((low, int(m[2] or low), (m[3] or "").lower() or None))
    return rules


def endpoint_rules(site) -> list[tuple[int, int, str | None]]:
    rules = []
    for url in site.endpoints.values():
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        if port:
            rules.append((port, port, "udp" if parts.scheme == "udp" else "tcp"))
    return rules


def allowed(sock: Listener, rules) -> bool:
    return any(low <= sock.port <= high and (proto is None or proto == sock.proto) for low, high, proto in rules)


@pytest.mark.edge_check("security.listening_ports")
def test_listening_ports(edge):
    p = edge.params
    hosts = _hosts(edge)
    rules = parse_allow(p.get("allow"), edge)
    if p.get("allow_endpoints", True):
        rules += endpoint_rules(edge.site)
    protos = {"both": ("tcp", "udp"), "tcp": ("tcp",), "udp": ("udp",)}.get((p.get("proto") or "both").lower())
    if protos is None:
        edge.error(f'proto must be tcp, udp or both, got {p.get("proto")!r}')
    unexpected_total, listening_total = 0, 0
    for host in hosts:
        label = f"{host.name}: " if len(hosts) > 1 else ""
        if p.get("process"):
            scope = Scope("pattern", f"processes matching {p['process']!r}", pattern=p["process"])
        elif host.is_local and site_pid(edge.site) is not None:
            scope = Scope("tree", f"site process tree (pid {site_pid(edge.site)})", root=site_pid(edge.site))
        else:
            scope = Scope("host", f"whole host {host.name}" if not host.container else f"container {host.container}")
        socks, notes = host.listeners()
        for n in notes:
            edge.note(n)
        if scope.kind != "host":
            procs, more = site_processes(edge.site, host, scope)
            for n in more:
                edge.note(label + n)
            if not procs:  # checking nobody's sockets would be a wrong pass
                edge.error(f"host {host.name}: no process of {scope.text} is running; "
                           "cannot tell what the site listens on")
            pids = {pr.pid for pr in procs}
            hidden = [s for s in socks if s.pid is None]
            socks = [s for s in socks if s.pid in pids]
            if hidden and not _is_root(host):
                if scope.kind == "pattern":  # the site may run as another user: its sockets may hide
                    edge.error(f"host {host.name}: the owners of {len(hidden)} listening socket(s) are hidden "
                               "(not root), so the site's sockets cannot be told apart: connect with "
                               "?sudo=true, or drop `process` to check the whole host")
                edge.note(f"{label}{len(hidden)} socket(s) whose owner is hidden were not attributed to the site")
        socks = [s for s in socks if s.proto in protos]
        dns = [s for s in socks if docker_dns_listener(host, s)]
        if dns:
            socks = [s for s in socks if s not in dns]
            edge.note(f"{label}ignored Docker's embedded DNS resolver on {DOCKER_DNS_ADDRESS} "
                      f"({', '.join(sorted({f'{s.port}/{s.proto}' for s in dns}))}): dockerd's, not the site's")
        if p.get("ignore_loopback"):
            socks = [s for s in socks if not s.loopback]
        findings = {}
        for s in socks:
            findings.setdefault((s.proto, s.port, s.pid), []).append(s)
        listening_total += len(findings)
        bad = {k: v for k, v in findings.items() if not allowed(v[0], rules)}
        unexpected_total += len(bad)
        ok_ports = sorted({f"{k[1]}/{k[0]}" for k in findings if k not in bad})
        edge.note(f"{label}{scope.text}: listening on {', '.join(ok_ports) or 'nothing allowed'}"
                  + (f" and {len(bad)} unexpected" if bad else ""))
        for socks_of in bad.values():
            addrs = " and ".join(sorted({s.address for s in socks_of}))
            s = socks_of[0]
            owner = f"{s.process or '?'} pid {s.pid}" if s.pid else "owner unknown"
            edge.note(f"{label}unexpected: {s.proto}/{s.port} on {addrs} ({owner})")
    edge.record("unexpected", unexpected_total)
    edge.record("listening", listening_total)


# ---------------------------------------------------------------------------------------------
# security.secret_files


def _default_paths(edge, host: EdgeHost) -> list[str]:
    data_dir = site_data_dir(edge.site, host)  # local:// (local backend) or inside the site's container
    return [data_dir] if data_dir else []


def _local_world_readable(paths: list[str], patterns: list[str], limit: int, edge) -> tuple[list[str], int]:
    found, scanned = [], 0
    for root in paths:
        if not os.path.exists(root):
            edge.error(f"{root}: no such file or directory")
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: edge.note(f"cannot read {e.filename}")):
            for name in filenames:
                scanned += 1
                if scanned > limit:
                    edge.error(f"more than {limit} files under {', '.join(paths)}; give narrower paths or max_files")
                if not any(fnmatch.fnmatch(name, pat) for pat in patterns):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IROTH:
                    found.append(f"{path} ({stat.S_IMODE(st.st_mode):04o})")
    return found, scanned


def _remote_world_readable(host: EdgeHost, paths: list[str], patterns: list[str], edge) -> tuple[list[str], int]:
    host.require("find", purpose="look for secret files")
    names = " -o ".join(f"-name {shlex.quote(pat)}" for pat in patterns)
    roots = " ".join(shlex.quote(p) for p in paths)
    # Count every file, print the matching world-readable ones with their mode.
    script = (f"find {roots} -type f 2>/dev/null | wc -l; echo __found__; "
              f"find {roots} -type f \\( {names} \\) -perm -0004 2>/dev/null")
    out = host.run(script, timeout=max(host.timeout, 30.0), what="find secret files")
    head, _, found = out.stdout.partition("__found__")
    scanned = int(head.strip().splitlines()[-1]) if head.strip().splitlines() and \
        head.strip().splitlines()[-1].strip().isdigit() else 0
    for root in paths:
        check = host.run(f"test -e {shlex.quote(root)} && echo yes", what=f"test -e {root}")
        if "yes" not in check.stdout:
            edge.error(f"host {host.name}: {root}: no such file or directory")
    return [line.strip() for line in found.splitlines() if line.strip()], scanned


@pytest.mark.edge_check("security.secret_files")
def test_secret_files(edge):
    p = edge.params
    hosts = _hosts(edge)
    patterns = [str(x) for x in (p.get("patterns") or [])]
    total, scanned_total, looked = 0, 0, False
    for host in hosts:
        paths = [str(x) for x in (p.get("paths") or _default_paths(edge, host))]
        if not paths:
            continue
        looked = True
        if host.uses_psutil:
            found, scanned = _local_world_readable(paths, patterns, int(p.get("max_files") or 200000), edge)
        else:
            found, scanned = _remote_world_readable(host, paths, patterns, edge)
        label = f"{host.name}: " if len(hosts) > 1 else ""
        edge.note(f"{label}looked at {scanned} files under {', '.join(paths)}")
        for f in found:
            edge.note(f"{label}world-readable: {f}")
        total += len(found)
        scanned_total += scanned
    if not looked:
        edge.not_measured("no `paths` given and the site declares no data dir (labels.data_dir)",
                          "give the requirement a `paths` param (where the site keeps its secrets), or the "
                          "site a labels.data_dir in the target file")
    edge.record("world_readable", total)
    edge.record("scanned", scanned_total)
