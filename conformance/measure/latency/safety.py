"""Which hosts the prober may send traffic to.

Latency probing is traffic generation. By default it may only reach this machine (loopback). A real
target is reachable only when the caller names its host in `allow_hosts` (the harness passes the
addresses of the sites it started and the endpoints the user's target file declares). We compare the
host *as written* and never resolve it here: a name that resolves to loopback today may not tomorrow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from conformance.model.errors import ConfigError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


class TargetRefused(ConfigError):
    """The target host is neither loopback nor explicitly allowed."""


def normalize_host(host: str) -> str:
    """Lower-case a name, strip IPv6 brackets and canonicalize IP literals ('::0001' -> '::1')."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped ::ffff:127.x) and the name localhost."""
    host = normalize_host(host)
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return mapped.is_loopback
    return address.is_loopback


def check_target(host: str, allow_hosts: Iterable[str] = ()) -> None:
    """Raise TargetRefused unless `host` is loopback or listed in `allow_hosts`."""
    if is_loopback_host(host):
        return
    allowed = {normalize_host(h) for h in allow_hosts}
    if normalize_host(host) in allowed:
        return
    raise TargetRefused(
        None,
        None,
        "target",
        f"host {host!r} is not loopback; latency traffic to it needs an explicit allow_hosts entry "
        "(the harness allows only the sites it started and the endpoints the target file declares)",
    )
