"""TCP connection setup time, and TCP echo round trips."""

from __future__ import annotations

import asyncio
import os
import socket

from ...failures import EchoMismatch
from .base import CallbackProtocol, Connection, ConnectionPool, Protocol, pick_address


class TcpConnect(Protocol):
    """Time to complete the TCP three-way handshake (then close)."""

    name = "tcp-connect"

    async def connect(self) -> None:
        self._family, self._address = await pick_address(self.target.host, self.target.port,
                                                         self.config.timeout)

    async def request(self) -> None:
        # A bare non-blocking socket: no transport or stream objects, so we time the handshake only.
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, self._address)
        finally:
            sock.close()


class EchoConnection(Connection):
    def __init__(self, pool: ConnectionPool):
        super().__init__(pool)
        self.got = bytearray()

    def begin(self) -> None:
        self.got.clear()

    def received(self, data: bytes) -> bool:
        self.got += data
        if len(self.got) < len(self.sent):
            return False
        if self.got != self.sent:
            raise EchoMismatch("echo reply differs from the request")
        return True


class TcpEcho(CallbackProtocol):
    """Send payload_size bytes on a persistent connection and read the same bytes back."""

    name = "tcp-echo"

    def __init__(self, config):
        super().__init__(config)
        self._prefix = os.urandom(max(0, config.payload_size - 8))
        self._seq = 0
        self._pool = ConnectionPool(EchoConnection, self.target.host, self.target.port)

    async def connect(self) -> None:
        _, address = await pick_address(self.target.host, self.target.port, self.config.timeout)
        self._pool = ConnectionPool(EchoConnection, address[0], address[1])

    def start(self) -> asyncio.Future:
        self._seq += 1
        # A sequence number in every payload: a stale reply from an earlier request can't pass.
        payload = self._seq.to_bytes(8, "big") + self._prefix
        return self._pool.start(payload)

    async def close(self) -> None:
        self._pool.close()
