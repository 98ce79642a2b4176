"""HTTP/1.1 GET/POST over asyncio transports: keep-alive pool, or a new connection per request.

Why not aiohttp's client: it is a general client (cookie jar, redirects, connector bookkeeping) and
in the overhead benchmark it cost ~1.8x the CPU per request and over twice our p50; every
microsecond the prober spends is added to the measurement floor. We only need: send a fixed request,
know when one response is complete (http1: httptools where installed, else our own parser), honour
keep-alive.
"""

from __future__ import annotations

import asyncio
import ssl

from ...failures import HTTPStatusError
from .base import CallbackProtocol, Connection, ConnectionPool, pick_address
from .http1 import make_response_parser


def build_request(method: str, host_header: str, path: str, headers, body: bytes, close: bool) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", "User-Agent: edge-conformance-prober",
             "Accept: */*"]
    names = set()
    for name, value in headers:
        lines.append(f"{name}: {value}")
        names.add(name.lower())
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    if close and "connection" not in names:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpConnection(Connection):
    def __init__(self, pool: ConnectionPool, method: str):
        super().__init__(pool)
        self.parser = make_response_parser(method)

    def begin(self) -> None:
        self.parser.reset()

    def received(self, data: bytes) -> bool:
        if not self.parser.feed(data):
            return False
        if self.parser.status >= 400:
            raise HTTPStatusError(self.parser.status)
        return True

    def reusable(self) -> bool:
        return self.parser.reusable

    def complete_on_eof(self) -> bool:
        return self.parser.eof() and self.parser.status < 400


class _Http(CallbackProtocol):
    reuse = True

    def __init__(self, config):
        super().__init__(config)
        self._request = build_request(config.method, self.target.host_header, self.target.path,
                                      config.headers, config.body, close=not self.reuse)
        self._ssl: ssl.SSLContext | None = None
        if self.target.tls:
            self._ssl = ssl.create_default_context()
            if not config.verify_tls:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._pool = self._make_pool(self.target.host)

    def _make_pool(self, host: str) -> ConnectionPool:
        method = self.config.method
        return ConnectionPool(lambda pool: HttpConnection(pool, method), host, self.target.port, ssl=self._ssl,
                              server_hostname=self.target.host, reuse=self.reuse)

    async def connect(self) -> None:
        _, address = await pick_address(self.target.host, self.target.port, self.config.timeout)
        self._pool = self._make_pool(address[0])

    def start(self) -> asyncio.Future:
        return self._pool.start(self._request)

    async def close(self) -> None:
        self._pool.close()


class HttpKeepAlive(_Http):
    """HTTP(S) over a small pool of persistent connections: the latency a warm client sees."""

    name = "http"


class HttpNewConnection(_Http):
    """HTTP(S) with a fresh TCP (and TLS) connection per request: includes connection setup."""

    name = "http-newconn"
    reuse = False
