"""WAN link emulation in user space: a shaping TCP relay.

This kernel has no netem (and no fq, so no EDT trick either), so delay cannot be added in the kernel.
A `Link` listens on 127.0.0.1 (ephemeral port) and relays every accepted connection to one loopback
upstream, shaping each direction of each connection on the way.  Parameters (`LinkParams`) can be
changed while connections are open (`Link.update`).

Semantics (docs/wan-emulation.md says the same with examples):

* ``delay_ms`` is ONE-WAY and applied per direction, so a request/response pays ``2 * delay_ms``.
* ``jitter_ms``: each chunk's delay is ``uniform(delay - jitter, delay + jitter)``, clipped at 0, but a
  connection's bytes stay in order (FIFO per direction): ``due = max(due, previous due)``.  Under a
  steady stream this pushes the effective delay towards the upper end of the range.
* ``bandwidth_bps``: one serialisation clock per link and direction, shared by all its connections:
  a chunk of n bytes occupies the link for ``n * 8 / bandwidth_bps`` seconds, after the chunks before
  it; the propagation delay follows.  Chunks larger than 16 KiB are split so the rate is smooth.
* ``loss``: TCP never loses bytes, it retransmits, so loss shows as stalls.  Each 1448-byte segment
  is lost with probability ``loss``; each lost segment holds its chunk (and, as TCP delivers in
  order, everything behind it) one retransmission timeout longer, modelled as
  ``max(200 ms, 2 * delay + 4 * jitter)`` (Linux's minimum RTO is 200 ms).  This is right for small
  request/response exchanges, where a loss usually ends in an RTO, and pessimistic for bulk
  transfers, where fast retransmit recovers in about one RTT.  The bandwidth is not charged for the
  retransmission and there is no congestion-window collapse.  Counted in ``stats()["loss_stalls"]``.
* ``partitioned``: a cut cable; ``partition_mode`` says which kind of cut.
  ``hold`` (a short cut, where TCP's retransmissions get through after it): bytes already queued and
  new bytes are held, unstamped: nothing is delivered, nothing is reset, no FIN is sent.  New client
  connections are still accepted by the listening socket, but the upstream connect is deferred until
  the link heals.  On heal everything held is sent again in order, as if it entered the link at heal
  time (delay, bandwidth and loss apply).  Bytes already handed to the kernel before the cut are not
  held back.
  ``drop`` (a long outage: TCP gave up, a NAT or firewall lost its state): at the cut every open
  connection is reset on both sides and what it had in flight is discarded.  A connection opened
  during the cut is a SYN into the void: accepted here (the kernel completes our side of the
  handshake), never relayed while the cut lasts, and forgotten if its client gives up (closes: a FIN
  counts, as TCP cannot half-close a connection that never got established); if the client
  is still waiting at heal, the upstream connect happens at the client's next SYN retransmission
  (1, 3, 7, 15, 31, 63 s after it connected, as Linux retransmits), or never (reset) past the last.
* Memory is bounded: when a connection holds more than ``held_limit()`` bytes in one direction
  (8 MiB, or about the bandwidth-delay product + 100 ms of link time when a bandwidth is set) we stop
  reading from the sender, and TCP backpressure does the rest.
* EOF (FIN) travels in order after the data, like data.  A reset or error on one side is delivered
  to the other side as a reset, in order after the data already in flight (so it too waits out a
  partition).  A failed upstream connect resets the client.
* Parameter changes apply at once to new bytes of every open connection; bytes already stamped keep
  their delivery time, except on a cut/heal, which re-stamps them.
* Not modelled: the TCP handshake (a new connection through the link costs no extra RTT, a real
  WAN costs one), reordering, duplication, UDP.

Timers: ``epoll_wait`` takes whole milliseconds and Python rounds the loop's timeout up, so asyncio
timers fire up to 1 ms late, which would add ~0.5 ms of error per direction.  `new_event_loop()`
returns a loop whose selector waits with microsecond resolution; linkd runs on it.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import random
import select
import selectors
import socket
import struct
from typing import Any

from conformance.model.linkparams import PARTITION_MODES, LinkParams

__all__ = [
    "Link",
    "LinkParams",
    "parse_upstream",
    "new_event_loop",
    "MSS",
    "MIN_RTO_S",
    "MAX_HELD_BYTES",
    "PARTITION_MODES",
    "SYN_RETRY_AFTER_S",
]

MSS = 1448  # bytes of payload in one TCP segment (1500 MTU - 40 IP/TCP - 12 timestamp option)
MIN_RTO_S = 0.2  # Linux TCP_RTO_MIN
SPLIT_BYTES = 16 * 1024  # shaped chunks are cut to this size so the bandwidth clock is smooth
MAX_HELD_BYTES = 8 * 1024 * 1024  # per connection and direction, before we stop reading
MIN_HELD_BYTES = 256 * 1024
QUEUE_TIME_S = 0.1  # bytes we accept beyond the bandwidth-delay product: a 100 ms "router buffer"
WRITE_HIGH_WATER = 256 * 1024  # transport write buffer before it asks us to stop writing
CONNECT_TIMEOUT_S = 10.0
# When Linux resends an unanswered SYN (initial RTO 1 s, doubled each time, tcp_syn_retries = 6): a
# connection whose SYN was lost in a drop-cut gets through at the first of these after the heal.
SYN_RETRY_AFTER_S = (1.0, 3.0, 7.0, 15.0, 31.0, 63.0)
# A timer wakes us some tens of microseconds after the time we ask for (more on a busy VM), so we
# ask 50 us early and then deliver everything due within 50 us: the error is centred near zero.
_WAKEUP_LEAD_S = 50e-6
_EOF = b""  # queue marker: the sender closed its side (data chunks are never empty)
_RESET = None  # queue marker: the sender's side was reset or failed


# ----------------------------------------------------------------------------------------- params
# LinkParams is conformance.model.linkparams' (one class from the topology file to the relay); what
# follows is how the relay turns them into TCP behaviour.


def rto_s(p: LinkParams) -> float:
    """The stall one lost segment costs: one retransmission timeout."""
    return max(MIN_RTO_S, (2 * p.delay_ms + 4 * p.jitter_ms) / 1000.0)


def held_limit(p: LinkParams) -> int:
    """Bytes one connection may hold per direction before we stop reading from its sender."""
    if p.bandwidth_bps is None:
        return MAX_HELD_BYTES
    in_flight_s = (p.delay_ms + p.jitter_ms) / 1000.0 + QUEUE_TIME_S
    return int(min(MAX_HELD_BYTES, max(MIN_HELD_BYTES, p.bandwidth_bps / 8 * in_flight_s)))


def parse_upstream(text: Any) -> tuple[str, int]:
    """'127.0.0.1:8080' | 'localhost:8080' | '[::1]:8080' -> (connect host, port).

    Only loopback upstreams are accepted: the emulator never relays traffic anywhere else.
    'localhost' is connected as 127.0.0.1, so name resolution cannot send us elsewhere.
    """
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"upstream: must be 'HOST:PORT' with a loopback host, got {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"upstream: port must be a number, got {port_text!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"upstream: port must be 1..65535, got {port}")
    if host.lower() == "localhost":
        return "127.0.0.1", port
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"upstream: host must be a loopback address (127.0.0.0/8, ::1 or localhost), got {host!r}"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"upstream: {host} is not a loopback address; links only relay to 127.0.0.0/8, ::1 or localhost"
        )
    return str(address), port


# ------------------------------------------------------------------------------- precise timers

if hasattr(selectors, "EpollSelector"):

    class _PreciseSelector(selectors.EpollSelector):
        """An epoll selector whose timeout has microsecond, not millisecond, resolution.

        select.epoll.poll() rounds its timeout up to a whole millisecond, so every asyncio timer
        fires up to 1 ms late.  We first wait on the epoll file descriptor itself with select(),
        which takes a timeval (the kernel honours it to within the ~50 us timer slack), then
        collect the ready events with a zero timeout.
        """

        def __init__(self) -> None:
            super().__init__()
            self._precise = self.fileno() < 1024  # select() only handles descriptors < FD_SETSIZE

        def select(self, timeout: float | None = None):  # type: ignore[override]
            if self._precise and timeout is not None and timeout > 0:
                select.select([self.fileno()], [], [], timeout)
                timeout = 0
            return super().select(timeout)

    def new_event_loop() -> asyncio.AbstractEventLoop:
        """An asyncio loop with precise timers (see _PreciseSelector).  Use for linkd and probers."""
        return asyncio.SelectorEventLoop(_PreciseSelector())

else:  # pragma: no cover - not Linux

    def new_event_loop() -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()


# ------------------------------------------------------------------------------------ the relay


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with RST (SO_LINGER 0), so the peer sees a reset as it would on a broken path."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class _Pipe:
    """One direction of one connection: read from `src`, stamp a due time, write to `dst` when due.

    `queue` holds (due, chunk) with non-decreasing due (FIFO, so no reordering); a single timer is
    armed for its head.  While the link is partitioned, chunks wait unstamped in `held` instead.
    """

    __slots__ = (
        "conn", "link", "index", "src", "dst", "queue", "held", "held_bytes", "last_due", "timer",
        "read_paused", "write_paused", "src_eof", "stopped",
    )  # fmt: skip

    def __init__(self, conn: _Connection, index: int) -> None:
        self.conn = conn
        self.link = conn.link
        self.index = index  # 0 = up (client -> upstream), 1 = down
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.queue: collections.deque = collections.deque()
        self.held: collections.deque = collections.deque()
        self.held_bytes = 0  # data bytes in queue + held
        self.last_due = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.read_paused = False
        self.write_paused = False
        self.src_eof = False  # the sender closed its side: never pause/resume its reading again
        self.stopped = False  # the receiver is gone: drop everything

    # -- input

    def push(self, data: bytes) -> None:
        if self.stopped:
            return
        link = self.link
        dst = self.dst
        if link._plain and not self.queue and dst is not None and not self.write_paused and not dst.is_closing():
            # Unshaped fast path: nothing to stamp, nothing queued ahead of us.
            dst.write(data)
            link._bytes[self.index] += len(data)
            return
        self.held_bytes += len(data)
        if link.params.partitioned:
            self.held.append(data)
        else:
            self._stamp(data, link._loop.time())
        self.check_pressure()

    def push_marker(self, marker: bytes | None) -> None:
        """EOF or reset from the sender: travels like data, after the data."""
        if self.stopped:
            return
        if marker is _EOF:
            self.src_eof = True
        if self.link.params.partitioned:
            self.held.append(marker)
        else:
            self._stamp(marker, self.link._loop.time())

    def _stamp(self, chunk: Any, now: float) -> None:
        link = self.link
        p = link.params
        shaped = p.bandwidth_bps is not None or p.loss > 0
        if shaped and chunk and len(chunk) > SPLIT_BYTES:
            view = memoryview(chunk)
            pieces: Any = [view[i : i + SPLIT_BYTES] for i in range(0, len(view), SPLIT_BYTES)]
        else:
            pieces = (chunk,)
        rng = link._rng
        queue = self.queue
        was_empty = not queue
        for piece in pieces:
            size = len(piece) if piece else 0
            t = now
            if p.bandwidth_bps is not None and size:
                # The shared serialisation clock: the link is busy until free_at.
                t = max(link._free_at[self.index], now) + size * 8 / p.bandwidth_bps
                link._free_at[self.index] = t
            delay = p.delay_ms
            if p.jitter_ms:
                delay = max(0.0, rng.uniform(delay - p.jitter_ms, delay + p.jitter_ms))
            due = t + delay / 1000.0
            if p.loss and size:
                segments = -(-size // MSS)
                lost = sum(1 for _ in range(segments) if rng.random() < p.loss)
                if lost:
                    due += lost * rto_s(p)
                    link._loss_stalls += lost
            if due < self.last_due:
                due = self.last_due  # FIFO: never overtake what went before
            self.last_due = due
            queue.append((due, piece))
        if was_empty:
            self._arm()

    # -- output

    def _arm(self) -> None:
        if (
            self.timer is None
            and self.queue
            and self.dst is not None
            and not self.write_paused
            and not self.link.params.partitioned
        ):
            self.timer = self.link._loop.call_at(self.queue[0][0] - _WAKEUP_LEAD_S, self._flush)

    def rearm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._arm()

    def _flush(self) -> None:
        self.timer = None
        dst = self.dst
        if dst is None or self.write_paused or self.link.params.partitioned or self.stopped:
            return
        queue = self.queue
        horizon = self.link._loop.time() + _WAKEUP_LEAD_S
        sent = 0
        while queue and queue[0][0] <= horizon:
            chunk = queue.popleft()[1]
            if dst.is_closing():
                self.stop()
                break
            if chunk:
                dst.write(chunk)
                sent += len(chunk)
                self.held_bytes -= len(chunk)
                if self.write_paused:  # write() called pause_writing() synchronously
                    break
            elif chunk is _EOF:
                if dst.can_write_eof():
                    dst.write_eof()
                self.stopped = True
                self.conn.eof_delivered()
                break
            else:  # _RESET
                self.stopped = True
                self.conn.reset_delivered(dst)
                break
        self.link._bytes[self.index] += sent
        if not self.stopped:
            self.check_pressure()
            self._arm()

    # -- flow control and link changes

    def check_pressure(self) -> None:
        src = self.src
        if src is None or self.src_eof or src.is_closing():
            return
        limit = self.link._held_limit
        if not self.read_paused:
            if self.held_bytes > limit:
                src.pause_reading()
                self.read_paused = True
        elif self.held_bytes <= limit // 2:
            src.resume_reading()
            self.read_paused = False

    def cut(self) -> None:
        """Partition: everything not yet delivered goes back to `held`, unstamped, in order."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.queue:
            self.held.extendleft(reversed([chunk for _, chunk in self.queue]))
            self.queue.clear()

    def heal(self, now: float) -> None:
        """End of partition: held chunks enter the link now, in order."""
        held, self.held = self.held, collections.deque()
        for chunk in held:
            self._stamp(chunk, now)
        self._arm()

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.held.clear()
        self.held_bytes = 0


class _Side(asyncio.Protocol):
    """Protocol for one socket of a relayed connection; forwards events to the _Connection."""

    __slots__ = ("conn", "is_client", "into", "out_of")

    def __init__(self, conn: _Connection, is_client: bool) -> None:
        self.conn = conn
        self.is_client = is_client
        self.into = conn.up if is_client else conn.down  # pipe fed by this socket
        self.out_of = conn.down if is_client else conn.up  # pipe writing to this socket

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.side_made(self, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.into.push(data)

    def eof_received(self) -> bool:
        if self.is_client and self.conn.syn_lost_at is not None:
            # Its SYN was lost in a drop-cut, so for the client it never connected: real TCP cannot
            # half-close such a connection, so a FIN now means it gave up, and none of it may reach
            # the upstream later.
            self.conn.teardown()
            return False
        if not self.into.src_eof:
            self.into.push_marker(_EOF)
        return True  # keep the socket half-open: the other direction may still carry data

    def pause_writing(self) -> None:
        self.out_of.write_paused = True

    def resume_writing(self) -> None:
        self.out_of.write_paused = False
        self.out_of.rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self)


class _Connection:
    """One client connection relayed to the upstream through two pipes."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.up = _Pipe(self, 0)
        self.down = _Pipe(self, 1)
        self.connect_task: asyncio.Task | None = None
        self.closed = False
        self.eofs = 0
        # Set when the client connected during a drop-cut: its SYN was lost, and only a retransmission
        # after the heal can get through (see maybe_connect).
        self.syn_lost_at: float | None = None
        self.syn_timer: asyncio.TimerHandle | None = None

    def side_made(self, side: _Side, transport: asyncio.Transport) -> None:
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if side.is_client:
            self.client = transport
            self.up.src = self.down.dst = transport
            self.link._connection_opened(self)
            if self.link.params.drops_connections:
                self.syn_lost_at = self.link._loop.time()
            self.maybe_connect()
        elif self.closed:  # the client went away while we were connecting
            transport.abort()
        else:
            self.upstream = transport
            self.down.src = self.up.dst = transport
            self.up.rearm()  # bytes that arrived while we were connecting

    def maybe_connect(self) -> None:
        if self.upstream is not None or self.connect_task is not None or self.closed:
            return
        if self.link.params.partitioned:  # a cut cable carries no SYN: connect on heal
            return
        if self.syn_lost_at is not None:
            self._await_syn_retry()
            return
        self.connect_task = self.link._loop.create_task(self._connect())

    def _await_syn_retry(self) -> None:
        """After a drop-cut heals, connect when the client would resend its lost SYN; past the last
        resend its connect would have failed, so it gets a reset."""
        if self.syn_timer is not None:
            return
        loop = self.link._loop
        waited = loop.time() - self.syn_lost_at  # type: ignore[operator]
        retry = next((after for after in SYN_RETRY_AFTER_S if after >= waited), None)
        if retry is None:
            _reset(self.client)
            self.teardown()
            return
        self.syn_timer = loop.call_at(self.syn_lost_at + retry, self._syn_retried)  # type: ignore[operator]

    def _syn_retried(self) -> None:
        self.syn_timer = None
        if self.closed or self.link.params.partitioned:
            return  # gone, or cut again: the next heal looks for the next retransmission
        self.syn_lost_at = None
        self.maybe_connect()

    def drop(self) -> None:
        """A drop-cut: both ends get a reset, as when TCP gives up or a NAT forgets the connection."""
        _reset(self.client)
        _reset(self.upstream)
        self.teardown()

    async def _connect(self) -> None:
        host, port = self.link._upstream_addr
        loop = self.link._loop
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Side(self, is_client=False), host, port),
                CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError):
            # Unreachable upstream: the client sees a reset, the nearest a relay gets to "refused".
            self.connect_task = None
            _reset(self.client)
            self.teardown()
        else:
            self.connect_task = None

    def params_changed(self, old: LinkParams, new: LinkParams, now: float) -> None:
        for pipe in (self.up, self.down):
            if pipe.stopped:
                continue
            if new.partitioned and not old.partitioned:
                pipe.cut()
            elif old.partitioned and not new.partitioned:
                pipe.heal(now)
            pipe.check_pressure()
        self.maybe_connect()

    def eof_delivered(self) -> None:
        self.eofs += 1
        if self.eofs == 2 and not self.closed:
            # Both sides said goodbye and both goodbyes arrived: close gracefully (buffers flush).
            self.closed = True
            self.link._connection_closed(self)
            for transport in (self.client, self.upstream):
                if transport is not None:
                    transport.close()

    def reset_delivered(self, dst: asyncio.Transport) -> None:
        _reset(dst)
        self.teardown()

    def side_lost(self, side: _Side) -> None:
        if self.closed:
            return
        if side.is_client and self.upstream is None:
            self.teardown()  # the upstream never heard of this connection
            return
        side.out_of.stop()  # nothing can reach this side any more
        if side.into.stopped:  # ... and nothing from it can be delivered: both ends are gone
            self.teardown()
        else:
            # The other side learns of the reset in order, after what is in flight (and after heal).
            side.into.push_marker(_RESET)

    def teardown(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.up.stop()
        self.down.stop()
        if self.connect_task is not None:
            self.connect_task.cancel()
        if self.syn_timer is not None:
            self.syn_timer.cancel()
            self.syn_timer = None
        for transport in (self.client, self.upstream):
            if transport is not None and not transport.is_closing():
                transport.abort()
        self.link._connection_closed(self)


class Link:
    """One emulated WAN link: listens on 127.0.0.1:<ephemeral>, relays to a loopback upstream.

    >>> link = Link("central-edge1", "127.0.0.1:8080", LinkParams(delay_ms=10))
    >>> await link.start(); link.listen_port; link.update(partitioned=True); await link.close()
    """

    def __init__(
        self,
        name: str,
        upstream: str,
        params: LinkParams | None = None,
        *,
        seed: int | None = None,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.listen_host = listen_host  # a local address (the docker backend's relayd picks a bridge's)
        self.retarget(upstream)  # validates: loopback only
        self.params = params if params is not None else LinkParams()
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._free_at = [0.0, 0.0]  # serialisation clock per direction (up, down)
        self._bytes = [0, 0]
        self._connections_total = 0
        self._connections_dropped = 0
        self._loss_stalls = 0
        self._derive()

    def _derive(self) -> None:
        p = self.params
        self._plain = not (p.delay_ms or p.jitter_ms or p.loss or p.bandwidth_bps or p.partitioned)
        self._held_limit = held_limit(p)

    async def start(self) -> None:
        """Bind listen_host:0 (127.0.0.1 unless given) and start accepting connections."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Side(_Connection(self), is_client=True), self.listen_host, 0, backlog=1024
        )

    async def close(self) -> None:
        """Stop listening and abort every open connection (both sides)."""
        if self._server is not None:
            self._server.close()
        tasks = []
        for conn in list(self._conns):
            if conn.connect_task is not None:
                tasks.append(conn.connect_task)
            conn.teardown()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Link:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def listen_port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"link {self.name!r} is not started")
        return self._server.sockets[0].getsockname()[1]

    def update(self, **changes: Any) -> LinkParams:
        """Change parameters (any subset of LinkParams.FIELDS); applies to open connections at once.

        Raises ValueError on unknown fields or invalid values (nothing is changed then).
        """
        new = self.params.replace(**changes)
        old, self.params = self.params, new
        self._derive()
        if self._loop is not None:
            if new.drops_connections and not old.drops_connections:
                self._drop_connections()
            now = self._loop.time()
            for conn in list(self._conns):
                conn.params_changed(old, new, now)
        return new

    def _drop_connections(self) -> None:
        """A drop-cut begins: no connection open now survives it (the client's view: all of them are
        established, also those whose upstream connect is still under way)."""
        conns = list(self._conns)
        for conn in conns:
            conn.drop()
        self._connections_dropped += len(conns)

    def retarget(self, upstream: str) -> None:
        """Relay new connections to another loopback upstream; open connections keep theirs."""
        host, port = parse_upstream(upstream)
        self.upstream = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._upstream_addr = (host, port)

    def stats(self) -> dict[str, int]:
        return {
            "connections_total": self._connections_total,
            "connections_open": len(self._conns),
            "connections_dropped": self._connections_dropped,
            "bytes_up": self._bytes[0],
            "bytes_down": self._bytes[1],
            "loss_stalls": self._loss_stalls,
        }

    def to_dict(self) -> dict[str, Any]:
        """The LINK object of the linkd control API."""
        return {
            "name": self.name,
            "listen_port": self.listen_port,
            "upstream": self.upstream,
            **self.params.as_dict(),
            "stats": self.stats(),
        }

    def _connection_opened(self, conn: _Connection) -> None:
        self._conns.add(conn)
        self._connections_total += 1

    def _connection_closed(self, conn: _Connection) -> None:
        self._conns.discard(conn)
