"""Security checks on a site's hosts: nothing unexpected listens, no world-readable secrets. The hosts are
read through conformance/measure/host/."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from conformance.measure.host.disk import world_readable
from conformance.measure.host.site import host_label, scope_for, site_data_dir, site_hosts
from conformance.measure.host.sockets import DOCKER_DNS_ADDRESS, Listener, docker_dns_listener, site_listeners

# ---------------------------------------------------------------------------------------------
# security.listening_ports

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
    hosts = site_hosts(edge.site, p)
    rules = parse_allow(p.get("allow"), edge)
    if p.get("allow_endpoints", True):
        rules += endpoint_rules(edge.site)
    protos = {"both": ("tcp", "udp"), "tcp": ("tcp",), "udp": ("udp",)}.get((p.get("proto") or "both").lower())
    if protos is None:
        edge.error(f'proto must be tcp, udp or both, got {p.get("proto")!r}')
    unexpected_total, listening_total = 0, 0
    for host in hosts:
        label = host_label(hosts, host)
        scope = scope_for(edge.site, p, host)
        socks, notes = site_listeners(edge.site, host, scope)
        for n in notes:
            edge.note(label + n)
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


@pytest.mark.edge_check("security.secret_files")
def test_secret_files(edge):
    p = edge.params
    hosts = site_hosts(edge.site, p)
    patterns = [str(x) for x in (p.get("patterns") or [])]
    total, scanned_total, looked = 0, 0, False
    for host in hosts:
        data_dir = site_data_dir(edge.site, host)  # local:// (local backend) or inside the site's container
        paths = [str(x) for x in (p.get("paths") or ([data_dir] if data_dir else []))]
        if not paths:
            continue
        looked = True
        found, scanned, notes = world_readable(host, paths, patterns, int(p.get("max_files") or 200000))
        label = host_label(hosts, host)
        for n in notes:
            edge.note(label + n)
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
