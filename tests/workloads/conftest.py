"""Fixtures for the reference workload tests: real site processes, and a controllable WAN link.

Sites are started through the process contract (python -m edge_workloads ...) on
ephemeral ports with temporary data dirs, and are always killed at teardown. A WanLink is a tiny TCP
proxy between an edge and central that the test can switch between pass, blackhole (accept, never
answer), refuse (reset every connection: a closed port) and ack-loss (requests reach central, answers
are dropped). Traffic only ever goes to 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers.waits import wait_for

MODULE = "edge_workloads"
READY_TIMEOUT_S = 20.0

# Fast loops so scenarios settle within a second or two (defaults are also short, but not this short).
FAST = {
    "forward_interval_s": 0.05,
    "forward_retry_max_s": 0.3,
    "heartbeat_interval_s": 0.2,
    "config_poll_interval_s": 0.2,
    "telemetry_window_s": 0.3,
    "wan_timeout_s": 1.0,
    "wan_connect_timeout_s": 0.5,
    "cache_fetch_timeout_s": 0.5,
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> Reply:
    """One request to 127.0.0.1; never raises on HTTP status."""
    assert url.startswith("http://127.0.0.1:"), url
    host_port, _, path = url[len("http://"):].partition("/")
    host, port = host_port.split(":")
    data = None
    send_headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        send_headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request(method, "/" + path, body=data, headers=send_headers)
        resp = conn.getresponse()
        payload = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload,
                     time.perf_counter() - started)
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SiteProcess:
    def __init__(self, role: str, name: str, data_dir: str, central_url: str | None = None,
                 defects: tuple[str, ...] = (), site_config: dict[str, Any] | None = None, port: int = 0):
        self.role, self.name, self.data_dir = role, name, data_dir
        self.args = [sys.executable, "-m", MODULE, "--role", role, "--name", name, "--data-dir", data_dir,
                     "--port", str(port)]
        if central_url:
            self.args += ["--central-url", central_url]
        if defects:
            self.args += ["--defects", ",".join(defects)]
        if site_config:
            self.args += ["--site-config", json.dumps(site_config)]
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ready: dict[str, Any] = {}
        self._stderr_path = os.path.join(data_dir + ".stderr")

    def spawn(self) -> SiteProcess:
        self._stderr = open(self._stderr_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        return self

    def wait_ready(self) -> SiteProcess:
        assert self.proc is not None and self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT_S)
        line = self.proc.stdout.readline() if readable else b""
        if not line:
            self.kill()
            raise AssertionError(f"{self.name} did not become ready: {self.stderr()}")
        self.ready = json.loads(line)
        self.port = self.ready["port"]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw: Any) -> Reply:
        return call("GET", self.url + path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return call("POST", self.url + path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return call("PUT", self.url + path, body, **kw)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def restart(self) -> SiteProcess:
        """Same arguments (and so the same data dir) again, on the same port."""
        self.kill()
        self.args[self.args.index("--port") + 1] = str(self.port)
        return self.spawn().wait_ready()

    def stderr(self) -> str:
        try:
            with open(self._stderr_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        self.kill()
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream:
                    stream.close()
        if getattr(self, "_stderr", None):
            self._stderr.close()


class WanLink:
    """A switchable TCP proxy on 127.0.0.1 standing in for the WAN link relay."""

    MODES = ("pass", "blackhole", "refuse", "ack-loss")

    def __init__(self, upstream_port: int | None = None):
        self.mode = "pass"
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        assert mode in self.MODES, mode
        self.mode = mode
        if mode in ("refuse",):
            self._drop_all()   # a cut cable: established connections die too

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._drop_all()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _reset(sock)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "refuse" or self.upstream_port is None:
                _reset(client)
                continue
            threading.Thread(target=self._connect, args=(self._track(client),), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        if self.mode == "blackhole":
            self._pump(client, None, "up")   # swallow everything, answer nothing
            return
        try:
            upstream = self._track(socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5))
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        threading.Thread(target=self._pump, args=(upstream, client, "down"), daemon=True).start()
        self._pump(client, upstream, "up")

    def _pump(self, src: socket.socket, dst: socket.socket | None, direction: str) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for sock in (src, dst):
                    if sock is not None:
                        _reset(sock)
                return
            mode = self.mode
            if mode == "blackhole" or dst is None:
                continue
            if mode == "refuse" or (mode == "ack-loss" and direction == "down"):
                _reset(src)
                _reset(dst)
                return
            try:
                dst.sendall(data)
            except OSError:
                _reset(src)
                return


def _reset(sock: socket.socket) -> None:
    """Abort a connection now. shutdown() first: close() alone does not wake (or end) a recv()
    blocked on the same socket in another pump thread, so the peer would never notice."""
    for step in (lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
                 lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
        try:
            step()
        except OSError:
            pass


class WorkloadEnv:
    """Starts sites and links for one test, and tears all of them down.

    Also carries the helpers (env.http, env.wait_until, env.free_port: wait_until is
    tests.helpers.waits.wait_for).
    """

    http = staticmethod(call)
    wait_until = staticmethod(wait_for)
    free_port = staticmethod(free_port)

    def __init__(self, tmp_path, shared_central: SiteProcess | None):
        self.tmp_path = tmp_path
        self.shared_central = shared_central
        self.sites: list[SiteProcess] = []
        self.links: list[WanLink] = []

    def spawn(self, role: str, name: str, **kw: Any) -> SiteProcess:
        site = SiteProcess(role, name, str(self.tmp_path / name), **kw)
        self.sites.append(site)
        return site.spawn()

    def central(self, name: str = "central", **kw: Any) -> SiteProcess:
        return self.spawn("central", name, **kw).wait_ready()

    def central_and_edge(self, central_name: str, edge_name: str, **edge_kw: Any):
        """A private central and an edge behind a WanLink, started side by side (saves a start-up)."""
        central = self.spawn("central", central_name)
        link = self.link()
        edge = self.edge(edge_name, link.url, wait=False, **edge_kw)
        central.wait_ready()
        link.upstream_port = central.port
        return central, link, edge.wait_ready()

    def edge(self, name: str, central_url: str, config: dict[str, Any] | None = None,
             defects: tuple[str, ...] = (), wait: bool = True) -> SiteProcess:
        """An edge with fast loops; its name gets a unique suffix (several tests share a central)."""
        name = f"{name}-{os.urandom(3).hex()}"
        site = self.spawn("edge", name, central_url=central_url, defects=defects,
                          site_config={**FAST, **(config or {})})
        return site.wait_ready() if wait else site

    def link(self, upstream: SiteProcess | None = None) -> WanLink:
        link = WanLink(upstream.port if upstream else None)
        self.links.append(link)
        return link

    def close(self) -> None:
        for site in self.sites:
            site.close()
        for link in self.links:
            link.close()


@pytest.fixture(scope="session")
def shared_central(tmp_path_factory):
    """One central for the tests that neither kill it nor change its global config."""
    site = SiteProcess("central", "central", str(tmp_path_factory.mktemp("shared") / "central"))
    site.spawn().wait_ready()
    yield site
    site.close()


@pytest.fixture
def env(tmp_path, shared_central):
    workload_env = WorkloadEnv(tmp_path, shared_central)
    yield workload_env
    workload_env.close()
