"""The interface every probed protocol implements, plus the helpers they share.

Two shapes:
* Protocol: `async def request()` performs one operation. Simple to write; costs one event-loop hop
  to start (the prober runs it as a task) and one to finish.
* CallbackProtocol: `start()` sends at once, synchronously, and returns a Future that the transport's
  data_received() completes with the time the answer was complete. No task, no hop: the lowest
  overhead we can get from asyncio (see docs/latency.md, Benchmarks). Used for the keep-alive and
  echo protocols, whose answers are what a 1 ms budget is about.

The prober owns timing and timeouts: it stamps the clock around the operation and fails or cancels
it when the timeout expires; a protocol only has to drop any connection whose operation did not
finish cleanly.
"""

from __future__ import annotations

import abc
import asyncio
import socket

from ..config import ProbeConfig
from ..timing import now_ns as time_ns


class Protocol(abc.ABC):
    """One probed operation against one target. Register new ones with protocols.register_protocol()."""

    name: str = "?"

    def __init__(self, config: ProbeConfig):
        self.config = config
        self.target = config.parsed_target

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Prepare (resolve, open sockets). Must not raise for an unreachable target: per-request
        failures are counted by the prober, not fatal."""

    @abc.abstractmethod
    async def request(self) -> int | None:
        """Perform one operation; raise on failure (see measure.failures.classify). May return the
        perf_counter_ns at which the answer was complete, when known more precisely than 'now'."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once, even after errors."""


class CallbackProtocol(Protocol):
    @abc.abstractmethod
    def start(self) -> asyncio.Future:
        """Send one request now; the Future resolves to the completion perf_counter_ns, or fails.

        The prober may fail the Future from outside (timeout); the protocol must then discard the
        connection that carried it."""

    async def request(self) -> int | None:
        return await self.start()


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


class Connection(asyncio.Protocol):
    """A pooled TCP connection carrying one request at a time (HTTP keep-alive, TCP echo).

    Subclasses implement `begin()` (reset state for a new request) and `received()` (consume bytes,
    return True when the answer is complete).
    """

    def __init__(self, pool: ConnectionPool):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.future: asyncio.Future | None = None
        self.sent = b""  # the request in flight
        self.closed = False

    # -- asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        arrived = time_ns()  # the answer was here now; parsing it is our cost, not the target's
        future = self.future
        if future is None or future.done():
            self.abort()  # bytes nobody asked for (or after a timeout): the stream is out of step
            return
        try:
            complete = self.received(data)
        except Exception as exc:  # noqa: BLE001 - a protocol violation fails the request
            self._fail(exc)
            return
        if complete:
            self.future = None
            future.set_result(arrived)
            self.finished()

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.pool.forget(self)
        future, self.future = self.future, None
        if future is not None and not future.done():
            if exc is None and self.complete_on_eof():
                future.set_result(time_ns())
            else:
                future.set_exception(exc or asyncio.IncompleteReadError(b"", None))

    # -- used by protocols
    def send(self, data: bytes, future: asyncio.Future) -> None:
        self.sent = data
        self.future = future
        future.add_done_callback(self._future_done)
        self.begin()
        self.transport.write(data)

    def finished(self) -> None:
        """The answer is complete: back to the pool, or closed when it can't be reused."""
        self.pool.release(self, self.reusable())

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.abort()
        self.closed = True
        self.pool.forget(self)

    def _fail(self, exc: BaseException) -> None:
        future, self.future = self.future, None
        self.abort()
        if future is not None and not future.done():
            future.set_exception(exc)

    def _future_done(self, future: asyncio.Future) -> None:
        if self.future is future:  # failed from outside (timeout): the connection is mid-answer
            self.future = None
            self.abort()

    # -- for subclasses
    def begin(self) -> None:
        pass

    def received(self, data: bytes) -> bool:
        raise NotImplementedError

    def reusable(self) -> bool:
        return True

    def complete_on_eof(self) -> bool:
        return False


class ConnectionPool:
    """Idle connections, reused last-in first-out (the warmest first); opens more on demand.

    The prober bounds requests in flight, so the pool never holds more than max_in_flight
    connections and needs no limit of its own.
    """

    def __init__(self, factory, host: str, port: int, ssl=None, server_hostname: str | None = None,
                 reuse: bool = True):
        self._factory = factory  # pool -> Connection
        self._host, self._port = host, port
        self._ssl, self._server_hostname = ssl, server_hostname
        self.reuse = reuse
        self._idle: list[Connection] = []
        self.opened = 0

    def take_idle(self) -> Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def open(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: self._factory(self), self._host, self._port, ssl=self._ssl,
            server_hostname=self._server_hostname if self._ssl else None)
        self.opened += 1
        return connection

    def start(self, data: bytes) -> asyncio.Future:
        """Send `data` on an idle connection now, or on a new one as soon as it is open."""
        future = asyncio.get_running_loop().create_future()
        connection = self.take_idle() if self.reuse else None
        if connection is not None:
            connection.send(data, future)
        else:
            task = asyncio.get_running_loop().create_task(self._open_and_send(data, future))
            future.add_done_callback(lambda _: task.cancel() if not task.done() else None)
        return future

    async def _open_and_send(self, data: bytes, future: asyncio.Future) -> None:
        try:
            connection = await self.open()
        except Exception as exc:  # noqa: BLE001 - counted by kind through the future
            if not future.done():
                future.set_exception(exc)
            return
        if future.done():  # timed out while connecting: keep the connection for the next request
            self.release(connection, True)
        else:
            connection.send(data, future)

    def release(self, connection: Connection, reusable: bool) -> None:
        if reusable and self.reuse and not connection.closed:
            self._idle.append(connection)
        else:
            connection.closed = True
            if connection.transport is not None:
                connection.transport.close()

    def forget(self, connection: Connection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)

    def close(self) -> None:
        while self._idle:
            self.release(self._idle.pop(), False)
