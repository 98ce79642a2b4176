"""UDP echo round trips over one connected datagram socket.

Several requests can be in flight on the one socket; each payload starts with a sequence number and
replies are matched by it. A lost datagram simply never completes and the prober counts a timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket

from ..errors import EchoMismatch
from .base import Protocol, resolve


class _EchoClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, tuple[bytes, asyncio.Future]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        entry = self.waiting.get(int.from_bytes(data[:8], "big"))
        if entry is None:
            return  # a late reply to a request that already timed out
        sent, future = entry
        if not future.done():
            if data == sent:
                future.set_result(None)
            else:
                future.set_exception(EchoMismatch("echo reply differs from the request"))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable -> ConnectionRefusedError) can't be tied to one datagram;
        # fail everything outstanding, which at concurrency 1 is exactly the right request.
        for _, future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc) -> None:
        self.lost = exc or ConnectionResetError("UDP socket closed")
        self.error_received(self.lost)


class UdpEcho(Protocol):
    name = "udp-echo"

    def __init__(self, config):
        super().__init__(config)
        self._client = _EchoClient()
        self._transport: asyncio.DatagramTransport | None = None
        self._padding = os.urandom(max(0, config.payload_size - 8))
        self._seq = 0

    async def connect(self) -> None:
        candidates = await resolve(self.target.host, self.target.port, socket.SOCK_DGRAM)
        family, address = candidates[0] if candidates else (socket.AF_INET, (self.target.host, self.target.port))
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(lambda: self._client, remote_addr=address,
                                                                     family=family)
        except OSError as exc:  # surfaces as the error of every request, counted by kind
            self._client.lost = exc

    async def request(self) -> None:
        if self._transport is None or self._client.lost is not None:
            raise self._client.lost or ConnectionResetError("UDP socket not open")
        self._seq = seq = (self._seq + 1) % (1 << 63)
        payload = seq.to_bytes(8, "big") + self._padding
        future = asyncio.get_running_loop().create_future()
        self._client.waiting[seq] = (payload, future)
        try:
            self._transport.sendto(payload)
            await future
        finally:
            del self._client.waiting[seq]

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
