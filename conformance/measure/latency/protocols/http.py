"""HTTP/1.1 GET/POST over raw asyncio streams.

Why not aiohttp's client: it is a general client (cookie jar, redirects, connector bookkeeping) and
costs noticeably more CPU per request than the ~40 lines below; every microsecond the prober spends is
added to the measurement floor (see docs/latency.md, Benchmarks). We only need: send a fixed request,
read one response completely (Content-Length, chunked, or until close), honour keep-alive.
"""

from __future__ import annotations

import asyncio
import ssl

from ..errors import HTTPStatusError, ProtocolViolation
from .base import ConnectionPool, Protocol, pick_address

_MAX_HEAD = 64 * 1024


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


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, bool]:
    """Read one full response. Returns (status, connection reusable)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ProtocolViolation(f"bad status line {status_line[:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and other interim responses precede the real one
        break
    headers: dict[bytes, bytes] = {}
    for line in header_block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    connection = headers.get(b"connection", b"")
    reusable = (b"close" not in connection) if parts[0] == b"HTTP/1.1" else (b"keep-alive" in connection)

    if method == "HEAD" or status in (204, 304):
        pass
    elif b"chunked" in headers.get(b"transfer-encoding", b""):
        await _read_chunked(reader)
    elif b"content-length" in headers:
        try:
            length = int(headers[b"content-length"])
        except ValueError:
            raise ProtocolViolation("bad Content-Length") from None
        await reader.readexactly(length)
    else:
        await reader.read()  # body runs until the server closes
        reusable = False
    return status, reusable


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolViolation(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the final empty line
                pass
            return
        await reader.readexactly(size + 2)


class _HttpBase(Protocol):
    keep_alive = True

    def __init__(self, config):
        super().__init__(config)
        self._request = build_request(config.method, self.target.host_header, self.target.path,
                                      config.headers, config.body, close=not self.keep_alive)
        self._ssl: ssl.SSLContext | None = None
        if self.target.tls:
            self._ssl = ssl.create_default_context()
            if not config.verify_tls:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._address: tuple = (self.target.host, self.target.port)

    async def connect(self) -> None:
        _, self._address = await pick_address(self.target.host, self.target.port, self.config.timeout)

    async def _open(self):
        return await asyncio.open_connection(
            self._address[0], self._address[1], ssl=self._ssl,
            server_hostname=self.target.host if self._ssl else None, limit=_MAX_HEAD)

    async def _exchange(self, reader, writer) -> bool:
        writer.write(self._request)
        status, reusable = await read_response(reader, self.config.method)
        if status >= 400:
            raise HTTPStatusError(status)
        return reusable


class HttpKeepAlive(_HttpBase):
    """HTTP(S) over a small pool of persistent connections: the latency a warm client sees."""

    name = "http"

    def __init__(self, config):
        super().__init__(config)
        self._pool: ConnectionPool = ConnectionPool(self._open, lambda conn: conn[1].close())

    async def request(self) -> None:
        reader, writer = await self._pool.acquire()
        reusable = False
        try:
            reusable = await self._exchange(reader, writer)
        finally:  # also on timeout (cancellation): a half-read connection is never reused
            self._pool.release((reader, writer), reusable)

    async def close(self) -> None:
        self._pool.close()


class HttpNewConnection(_HttpBase):
    """HTTP(S) with a fresh TCP (and TLS) connection per request: includes connection setup."""

    name = "http-newconn"
    keep_alive = False

    async def request(self) -> None:
        reader, writer = await self._open()
        try:
            await self._exchange(reader, writer)
        finally:
            writer.close()
