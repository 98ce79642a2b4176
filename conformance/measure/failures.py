"""Failures of one request to a site, and the one set of short kind names they are counted under.

Every way of talking to a site (the HTTP client, the latency prober, Locust's users in the load child)
names a failure with `classify`, so `connection_refused` means the same in a latency result, a load
result and a resilience note. A failed request is never dropped: it is counted by kind (timeout,
connection_refused, http_503, ...) and kept out of the latency histograms, so a fast error can't make
a target look fast.
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import socket
import ssl


class ProbeError(Exception):
    """A request completed at the transport level but its answer was wrong; `kind` names it."""

    kind = "protocol"


class MissingTransactionId(ProbeError):
    """A point-of-sale POST was answered without the id of the sale it made."""

    kind = "no_transaction_id"


class ConnectionClosed(ProbeError):
    """The peer closed the connection before a full answer."""

    kind = "connection_closed"


class ProtocolViolation(ProbeError):
    """The peer's bytes do not follow the protocol (bad status line, bad chunk size ...)."""

    kind = "protocol"


class EchoMismatch(ProbeError):
    """An echo server sent back different bytes than we sent."""

    kind = "echo_mismatch"


class HTTPStatusError(ProbeError):
    """The server answered with a status >= 400."""

    def __init__(self, status: int):
        super().__init__(f"HTTP status {status}")
        self.status = status
        self.kind = f"http_{status}"


def _root(exc: BaseException) -> BaseException:
    """The failure under the wrappers: urllib's URLError(reason), urllib3's MaxRetryError(reason),
    requests' or geventhttpclient's errors raised from the socket error."""
    seen = 0
    while seen < 8:
        seen += 1
        inner = getattr(exc, "reason", None)
        if isinstance(inner, BaseException):
            exc = inner
            continue
        if isinstance(exc, (ProbeError, OSError, ssl.SSLError, http.client.HTTPException)):
            break
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def classify(exc: BaseException | None, status: int | None = None) -> str:
    """A stable, short name for a failed request (a key of the result's error counts): http_<status>
    for an answer >= 400, else what went wrong on the way."""
    if isinstance(status, int) and status >= 400:
        return f"http_{status}"
    if exc is None:
        return "error"
    exc = _root(exc)
    if isinstance(exc, ProbeError):
        return exc.kind
    if isinstance(exc, (TimeoutError, socket.timeout)):  # asyncio.TimeoutError is TimeoutError since 3.11
        return "timeout"
    if isinstance(exc, (asyncio.IncompleteReadError, http.client.IncompleteRead)):
        return "connection_closed"  # the peer closed before a full answer
    if isinstance(exc, (asyncio.LimitOverrunError, http.client.HTTPException)):
        return "protocol"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, ConnectionResetError):  # http.client's RemoteDisconnected is one
        return "connection_reset"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "connection_closed"
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return "tls"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "")
        return f"os_{name.lower()}" if name else "os_error"
    if "timeout" in type(exc).__name__.lower():  # gevent's and geventhttpclient's own timeouts
        return "timeout"
    return f"unexpected_{type(exc).__name__}"
