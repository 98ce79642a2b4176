"""A host's listening sockets: listening TCP and bound UDP sockets, with their owners when visible.

`Sockets.of(host)` chooses how the host is read, once: psutil for local:// (LocalSockets), else
commands (CommandSockets: `ss`, or `netstat` where `ss` is missing or fails). `site_listeners` gives the
sockets of one site's processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...model.errors import MeasurementError
from .edgehost import EdgeHost, HostLacks
from .processes import Proc
from .site import Scope, site_processes

DOCKER_DNS_ADDRESS = "127.0.0.11"


@dataclass(frozen=True)
class Listener:
    proto: str  # tcp | udp
    address: str
    port: int
    pid: int | None = None
    process: str | None = None

    @property
    def loopback(self) -> bool:
        a = self.address.strip("[]").split("%", 1)[0]
        return a.startswith("127.") or a in ("::1", "localhost") or a.startswith("::ffff:127.")

    def describe(self) -> str:
        addr = f"[{self.address}]" if ":" in self.address and not self.address.startswith("[") else self.address
        owner = f"{self.process or '?'} pid {self.pid}" if self.pid else "owner unknown"
        return f"{self.proto} {addr}:{self.port} ({owner})"


class Sockets:
    """The listening sockets of one host."""

    def __init__(self, host: EdgeHost):
        self.host = host

    @staticmethod
    def of(host: EdgeHost) -> Sockets:
        return LocalSockets(host) if host.uses_psutil else CommandSockets(host)

    def listeners(self) -> tuple[list[Listener], list[str]]:
        """Listening TCP sockets and bound UDP sockets, with their owners when visible; plus notes."""
        raise NotImplementedError


class CommandSockets(Sockets):
    def listeners(self) -> tuple[list[Listener], list[str]]:
        host, facts = self.host, self.host.facts
        if facts.has("ss"):
            out = host.run("ss -ltunp 2>/dev/null || ss -ltun", what="list sockets with ss")
            if out.rc == 0 and out.stdout.strip():
                found = parse_ss(out.stdout)
                notes = [] if "users:" in out.stdout or not found else \
                    [f"host {host.name}: ss shows no socket owners (not root?)"]
                return found, notes
        if facts.has("netstat"):
            out = host.run("netstat -ltunp 2>/dev/null", what="list sockets with netstat")
            notes = []
            if out.rc != 0 or not out.stdout.strip():
                out = host.run("netstat -ltun", what="list sockets with netstat")
                notes.append(f"host {host.name}: its netstat cannot show socket owners (-p)")
            if out.rc == 0 and ("Proto" in out.stdout or out.stdout.strip() == ""):
                return parse_netstat(out.stdout), notes
            raise HostLacks(f"host {host.name}: netstat failed: {out.stderr.strip()[:200]}")
        raise HostLacks(f"host {host.name} lacks `ss` and `netstat`: cannot list listening sockets")


class LocalSockets(Sockets):
    """This machine, through psutil."""

    def listeners(self) -> tuple[list[Listener], list[str]]:
        import psutil

        try:
            conns = psutil.net_connections(kind="inet")
        except psutil.AccessDenied as exc:
            raise HostLacks(f"host local://: not allowed to list sockets ({exc})") from None
        names: dict[int, str] = {}
        found = []
        for c in conns:
            if c.pid and c.pid not in names:
                try:
                    names[c.pid] = psutil.Process(c.pid).name()
                except psutil.Error:
                    names[c.pid] = "?"
            sock = _listener(c, c.pid, names.get(c.pid) if c.pid else None)
            if sock:
                found.append(sock)
        return _sorted(found), []

    def listeners_of(self, procs: list[Proc]) -> list[Listener]:
        """The sockets of these processes only.

        Why not filter `listeners()`: psutil finds a socket's owner by reading every process's file
        descriptors, which beside a thousand emulated sites takes over a second per check; reading
        only the site's own processes takes milliseconds. A process that ended meanwhile has no
        sockets; one this user may not read is a MeasurementError (its sockets would go unseen).
        """
        import psutil

        found = []
        for proc in procs:
            try:
                conns = psutil.Process(proc.pid).net_connections(kind="inet")
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                raise MeasurementError(f"host local://: not allowed to read the sockets of pid {proc.pid} "
                                       f"({proc.name}); run as its user or as root") from None
            found += [s for c in conns if (s := _listener(c, proc.pid, proc.name))]
        return _sorted(found)


def _listener(conn: Any, pid: int | None, name: str | None) -> Listener | None:
    """A psutil connection as a Listener when it is a listening TCP or a bound, unconnected UDP socket."""
    import socket

    import psutil

    if not conn.laddr:
        return None
    if conn.type == socket.SOCK_STREAM:
        if conn.status != psutil.CONN_LISTEN:
            return None
        proto = "tcp"
    elif conn.type == socket.SOCK_DGRAM:
        if conn.raddr:
            return None
        proto = "udp"
    else:
        return None
    return Listener(proto, conn.laddr.ip, conn.laddr.port, pid, name)


def _sorted(found: list[Listener]) -> list[Listener]:
    return sorted(set(found), key=lambda s: (s.proto, s.port, s.address, s.pid or 0))


def docker_dns_listener(host: EdgeHost, sock: Listener) -> bool:
    """Docker's embedded DNS resolver inside a container on a user-defined network.

    dockerd answers the container's DNS at 127.0.0.11 (tcp and udp, random ports that iptables
    redirects :53 to) from sockets it opens in the container's network namespace; their owner is in
    another pid namespace, so no owner shows. It is Docker's, not the site's. A process of the
    container listening on 127.0.0.11 has a visible owner (as root) and is not excused. The host is a
    container when reached as docker://, or when it says so (/.dockerenv) however it is reached (a
    container with its own sshd, as the SSH lab's sites).
    """
    if sock.address != DOCKER_DNS_ADDRESS or sock.pid is not None:
        return False
    return host.container is not None or (not host.uses_psutil and host.facts.in_docker)


# ---------------------------------------------------------------------------------------------
# parsers (pure, unit-tested with sample outputs)


def split_address(text: str) -> tuple[str, int] | None:
    """'0.0.0.0:22', '[::]:80', '*:53', ':::22', '127.0.0.53%lo:53' -> (address, port)."""
    text = text.strip()
    if ":" not in text:
        return None
    addr, _, port = text.rpartition(":")
    if not port.isdigit():
        return None
    addr = addr.strip("[]")
    if addr in ("*", ""):
        addr = "0.0.0.0"
    return addr, int(port)


_SS_USERS = re.compile(r'\("([^"]*)",pid=(\d+)')


def parse_ss(text: str) -> list[Listener]:
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] not in ("tcp", "udp"):
            continue
        where = split_address(parts[4])
        if where is None:
            continue
        if parts[0] == "tcp" and parts[1] != "LISTEN":
            continue
        owners = _SS_USERS.findall(line)
        if owners:
            for name, pid in dict.fromkeys(owners):
                found.append(Listener(parts[0], where[0], where[1], int(pid), name))
        else:
            found.append(Listener(parts[0], where[0], where[1]))
    return list(dict.fromkeys(found))


def parse_netstat(text: str) -> list[Listener]:
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].startswith(("tcp", "udp")):
            continue
        proto = "tcp" if parts[0].startswith("tcp") else "udp"
        where = split_address(parts[3])
        if where is None:
            continue
        rest = parts[5:]
        if proto == "tcp":
            if "LISTEN" not in rest:
                continue
            rest = rest[rest.index("LISTEN") + 1:]
        elif rest and rest[0] in ("ESTABLISHED", "CLOSE", "UNCONN"):
            rest = rest[1:]
        pid, name = None, None
        if rest and "/" in rest[0]:
            p, _, n = rest[0].partition("/")
            if p.isdigit():
                pid, name = int(p), n or None
        found.append(Listener(proto, where[0], where[1], pid, name))
    return list(dict.fromkeys(found))


def _running_processes(site: Any, host: EdgeHost, scope: Scope) -> tuple[list[Proc], list[str]]:
    """The processes of `scope`, and notes; MeasurementError when none runs (checking nobody's sockets
    would be a wrong pass)."""
    procs, notes = site_processes(site, host, scope)
    if not procs:
        raise MeasurementError(f"host {host.name}: no process of {scope.text} is running; "
                               "cannot tell what the site listens on")
    return procs, notes


def owned_by_site(site: Any, host: EdgeHost, scope: Scope, socks: list[Listener]) -> tuple[list[Listener], list[str]]:
    """The sockets of `socks` that processes of `scope` own (all of them for the whole host), and notes.

    MeasurementError where that cannot be told: no process of the scope runs (checking nobody's sockets
    would be a wrong pass), or, not as root, owners are hidden and the site is a `process` pattern (the
    site may run as another user, so its sockets may be among the hidden ones).
    """
    if scope.kind == "host":
        return list(socks), []
    procs, notes = _running_processes(site, host, scope)
    pids = {p.pid for p in procs}
    hidden = [s for s in socks if s.pid is None]
    if hidden and not host.is_root:
        if scope.kind == "pattern":
            raise MeasurementError(f"host {host.name}: the owners of {len(hidden)} listening socket(s) are "
                                   "hidden (not root), so the site's sockets cannot be told apart: connect "
                                   "with ?sudo=true, or drop `process` to check the whole host")
        notes.append(f"{len(hidden)} socket(s) whose owner is hidden were not attributed to the site")
    return [s for s in socks if s.pid in pids], notes


def site_listeners(site: Any, host: EdgeHost, scope: Scope) -> tuple[list[Listener], list[str]]:
    """The listening sockets of `scope`'s processes on `host` (every socket for the whole host), and notes.

    On this machine a site's own processes are read directly (see LocalSockets.listeners_of); other
    hosts are listed whole and the site's sockets picked by owner (owned_by_site).
    """
    reader = Sockets.of(host)
    if scope.kind != "host" and isinstance(reader, LocalSockets):
        procs, notes = _running_processes(site, host, scope)
        return reader.listeners_of(procs), notes
    socks, notes = reader.listeners()
    mine, more = owned_by_site(site, host, scope, socks)
    return mine, notes + more
