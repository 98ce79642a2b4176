"""The interface every probed protocol implements, plus the small helpers they share.

A Protocol performs one operation per `request()` call. The prober owns timing and timeouts: it stamps
the clock around `request()` and cancels it when the timeout expires, so a protocol only has to leave
its connections in a clean state when cancelled (the pool closes any connection whose request did not
finish).
"""

from __future__ import annotations

import abc
import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..config import ProbeConfig


class Protocol(abc.ABC):
    """One probed operation against one target. Subclasses register a name in protocols.PROTOCOLS."""

    name: str = "?"

    def __init__(self, config: ProbeConfig):
        self.config = config
        self.target = config.parsed_target

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Prepare (resolve, open pools). Must not raise for an unreachable target: per-request
        failures are counted by the prober, not fatal."""

    @abc.abstractmethod
    async def request(self) -> None:
        """Perform one operation; return on success, raise on failure (see errors.classify_error)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once, even after errors."""


async def resolve(host: str, port: int, kind: int = socket.SOCK_STREAM) -> list[tuple]:
    """getaddrinfo once, up front: we measure the target, not the resolver."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=kind), timeout=5.0)
    except (OSError, TimeoutError):
        return []
    return [(family, address) for family, _, _, _, address in infos]


async def pick_address(host: str, port: int, timeout: float) -> tuple[int, tuple]:
    """The first resolved TCP address that accepts a connection, else the first resolved one.

    'localhost' resolves to ::1 and 127.0.0.1; a server bound only to one of them would make every
    new connection try (and fail) the other first, which would be measured as latency.
    """
    candidates = await resolve(host, port)
    if not candidates:
        return socket.AF_INET, (host, port)
    for family, address in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, address), timeout)
            return family, address
        except (OSError, TimeoutError):
            continue
        finally:
            sock.close()
    return candidates[0]


C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """Idle connections reused last-in first-out (the warmest one first).

    The prober bounds requests in flight, so the pool never holds more than max_in_flight connections
    and needs no limit of its own.
    """

    def __init__(self, open_connection: Callable[[], Awaitable[C]], close_connection: Callable[[C], None]):
        self._open = open_connection
        self._close = close_connection
        self._idle: list[C] = []
        self.opened = 0

    async def acquire(self) -> C:
        if self._idle:
            return self._idle.pop()
        connection = await self._open()
        self.opened += 1
        return connection

    def release(self, connection: C, reusable: bool) -> None:
        if reusable:
            self._idle.append(connection)
        else:
            self._close(connection)

    def close(self) -> None:
        while self._idle:
            self._close(self._idle.pop())
