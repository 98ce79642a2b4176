"""UDP echo round trips over one connected datagram socket.

Several requests can be in flight on the one socket; each payload starts with a sequence number and
replies are matched by it. A lost datagram simply never completes and the prober counts a timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket

from ...failures import EchoMismatch
from ..timing import now_ns
from .base import CallbackProtocol, resolve


class _EchoClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, tuple[bytes, asyncio.Future]] = {}
        self.lost: Exception | None = None

    def datagram_received(self, data: bytes, addr) -> None:
        entry = self.waiting.pop(int.from_bytes(data[:8], "big"), None)
        if entry is None:
            return  # a late reply to a request that already timed out
        sent, future = entry
        if not future.done():
            if data == sent:
                future.set_result(now_ns())
            else:
                future.set_exception(EchoMismatch("echo reply differs from the request"))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable -> ConnectionRefusedError) can't be tied to one datagram;
        # fail everything outstanding, which at concurrency 1 is exactly the right request.
        waiting, self.waiting = self.waiting, {}
        for _, future in waiting.values():
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc) -> None:
        self.lost = exc or ConnectionResetError("UDP socket closed")
        self.error_received(self.lost)


class UdpEcho(CallbackProtocol):
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

    def start(self) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self._transport is None or self._client.lost is not None:
            future.set_exception(self._client.lost or ConnectionResetError("UDP socket not open"))
            return future
        self._seq = seq = (self._seq + 1) % (1 << 63)
        payload = seq.to_bytes(8, "big") + self._padding
        waiting = self._client.waiting
        waiting[seq] = (payload, future)
        future.add_done_callback(lambda _: waiting.pop(seq, None))  # timed out: forget it
        self._transport.sendto(payload)
        return future

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
