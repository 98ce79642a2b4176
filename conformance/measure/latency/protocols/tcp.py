"""TCP connection setup time, and TCP echo round trips."""

from __future__ import annotations

import asyncio
import os
import socket

from ..errors import EchoMismatch
from .base import ConnectionPool, Protocol, pick_address


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


class TcpEcho(Protocol):
    """Send payload_size bytes on a persistent connection and read the same bytes back."""

    name = "tcp-echo"

    def __init__(self, config):
        super().__init__(config)
        self._pool: ConnectionPool = ConnectionPool(self._open, lambda conn: conn[1].close())
        self._prefix = os.urandom(max(0, config.payload_size - 8))
        self._seq = 0

    async def connect(self) -> None:
        _, self._address = await pick_address(self.target.host, self.target.port, self.config.timeout)

    async def _open(self):
        return await asyncio.open_connection(self._address[0], self._address[1])

    async def request(self) -> None:
        self._seq += 1
        # A sequence number in every payload: a stale reply from an earlier request can't pass.
        payload = self._seq.to_bytes(8, "big") + self._prefix
        reader, writer = await self._pool.acquire()
        ok = False
        try:
            writer.write(payload)
            reply = await reader.readexactly(len(payload))
            if reply != payload:
                raise EchoMismatch("echo reply differs from the request")
            ok = True
        finally:
            self._pool.release((reader, writer), ok)

    async def close(self) -> None:
        self._pool.close()
