"""Failures of one probe operation, and the short kind names they are counted under.

A failed request is never dropped: it is counted by kind (timeout, connection_refused, http_503, ...)
and kept out of the latency histograms, so a fast error can't make a target look fast.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl


class ProbeError(Exception):
    """A request completed at the transport level but its answer was wrong."""

    kind = "protocol"


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


def classify_error(exc: BaseException) -> str:
    """A stable, short name for the failure (used as a key in the result's error counts)."""
    if isinstance(exc, ProbeError):
        return exc.kind
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return "timeout"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection_closed"  # the peer closed before a full answer
    if isinstance(exc, asyncio.LimitOverrunError):
        return "protocol"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, ConnectionResetError):
        return "connection_reset"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "connection_closed"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "")
        return f"os_{name.lower()}" if name else "os_error"
    return f"unexpected_{type(exc).__name__}"
