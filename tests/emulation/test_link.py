"""Tests of the WAN link emulator (conformance.emulation.link) and its daemon (linkd).

Timing assertions are one-sided and tolerant (a 50 ms one-way delay must give an RTT >= 95 ms):
the machine is shared, so we never assert that something was fast, only that the emulated
impairment happened.  All traffic stays on 127.0.0.1; every server, link and process started here
is closed in the test that started it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import psutil
import pytest

from conformance.emulation.link import Link, LinkParams, new_event_loop, parse_upstream

TIMEOUT = 10.0  # generous: any single wait in these tests


def run(coro_fn, timeout: float = 25.0):
    """Run an async test body on linkd's precise loop, with an overall timeout."""

    async def bounded():
        return await asyncio.wait_for(coro_fn(), timeout)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(bounded())


# ------------------------------------------------------------------------ in-process upstreams


class Upstream:
    """A loopback TCP server recording what it receives; echoes unless `echo=False`."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.accepted = 0
        self.received = bytearray()
        self.eof = asyncio.Event()
        self.resets = 0  # connections that ended with a reset instead of an EOF
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        try:
            while data := await reader.read(65536):
                self.received += data
                if self.echo:
                    writer.write(data)
                    await writer.drain()
            self.eof.set()
            writer.write(b"BYE")
            writer.close()
        except ConnectionError:
            self.resets += 1
        except asyncio.CancelledError:
            pass


async def connect(link: Link) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", link.listen_port), TIMEOUT)


async def rtt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int = 64) -> float:
    """Seconds for one echo round trip of `size` bytes."""
    start = time.perf_counter()
    writer.write(b"p" * size)
    await asyncio.wait_for(reader.readexactly(size), TIMEOUT)
    return time.perf_counter() - start


async def wait_until(predicate, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def numbered(count: int, start: int = 0) -> bytes:
    """Consecutive 32-bit counters: any loss, duplication or reordering changes the bytes."""
    return array.array("I", range(start, start + count)).tobytes()


# --------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "upstream", ["10.0.0.1:80", "8.8.8.8:53", "0.0.0.0:80", "example.com:80", "[2001:db8::1]:80", "127.0.0.1"]
)
def test_non_loopback_upstream_rejected(upstream):
    with pytest.raises(ValueError):
        parse_upstream(upstream)
    with pytest.raises(ValueError):
        Link("x", upstream)


def test_loopback_upstreams_accepted():
    assert parse_upstream("127.0.0.1:80") == ("127.0.0.1", 80)
    assert parse_upstream("127.3.2.1:80") == ("127.3.2.1", 80)
    assert parse_upstream("localhost:8080") == ("127.0.0.1", 8080)
    assert parse_upstream("[::1]:9") == ("::1", 9)


@pytest.mark.parametrize(
    "changes",
    [{"delay_ms": -1}, {"jitter_ms": "5"}, {"loss": 1.5}, {"bandwidth_bps": 0}, {"partitioned": "yes"}, {"delay": 5},
     {"partition_mode": "reset"}, {"partition_mode": True}],
)
def test_invalid_params_rejected(changes):
    with pytest.raises(ValueError):
        LinkParams().replace(**changes)


# ------------------------------------------------------------------------------------ shaping


def test_delay_adds_round_trip_time():
    async def body():
        async with Upstream() as up, Link("d", up.address, LinkParams(delay_ms=50)) as link:
            reader, writer = await connect(link)
            samples = [await rtt(reader, writer) for _ in range(3)]
            writer.close()
        # One-way 50 ms each direction: every round trip pays at least ~100 ms.
        assert min(samples) >= 0.095, samples

    run(body)


def test_jitter_varies_delay_but_never_reorders():
    async def body():
        params = LinkParams(delay_ms=20, jitter_ms=15)
        async with Upstream() as up, Link("j", up.address, params, seed=7) as link:
            reader, writer = await connect(link)
            await rtt(reader, writer)  # warm up: connect the upstream
            samples = [await rtt(reader, writer) for _ in range(15)]
            # A numbered stream in many small writes: each write is its own chunk with its own delay.
            sent = bytearray()
            for block in range(300):
                data = numbered(10, block * 10)
                writer.write(data)
                sent += data
                if block % 3 == 0:
                    await asyncio.sleep(0.0005)
            got = await asyncio.wait_for(reader.readexactly(len(sent)), TIMEOUT)
            writer.close()
        assert got == bytes(sent)  # echoed through both directions, byte for byte in order
        assert min(samples) >= 0.009, samples  # never below 2 * (20 - 15) ms
        # Some round trips beat 2 * delay: only jitter can do that (machine noise only adds delay).
        # Each RTT is the sum of two uniform(5, 35) ms draws; P(< 35 ms) = 0.35 per sample.
        assert min(samples) < 0.035, samples

    run(body)


def test_bandwidth_limits_a_transfer_both_directions():
    async def body():
        rate = 2_000_000  # bit/s = 250 kB/s
        size = 300_000  # 1.2 s at that rate
        async with Upstream(echo=False) as up, Link("b", up.address, LinkParams(bandwidth_bps=rate)) as link:
            reader, writer = await connect(link)
            start = time.perf_counter()
            writer.write(b"u" * size)
            writer.write_eof()
            await asyncio.wait_for(reader.readexactly(3), TIMEOUT)  # "BYE" after the upstream saw EOF
            upload = time.perf_counter() - start
            writer.close()
            assert len(up.received) == size
        async with Upstream(echo=True) as up, Link("b2", up.address, LinkParams()) as link:
            reader, writer = await connect(link)
            writer.write(b"d" * size)  # unshaped up; now shape the way back
            link.update(bandwidth_bps=rate)
            start = time.perf_counter()
            await asyncio.wait_for(reader.readexactly(size), TIMEOUT)
            download = time.perf_counter() - start
            writer.close()
        assert upload >= 1.1, upload  # 1.2 s expected
        assert download >= 0.9, download  # the first unshaped bytes may already have passed

    run(body)


def test_loss_produces_retransmission_stalls():
    async def body():
        async with Upstream() as up, Link("l", up.address, LinkParams(loss=0.5), seed=3) as link:
            reader, writer = await connect(link)
            samples = [await rtt(reader, writer, size=100) for _ in range(6)]
            writer.close()
            stats = link.stats()
        assert stats["loss_stalls"] > 0
        assert max(samples) >= 0.19, samples  # one stall = one RTO >= 200 ms

    run(body)


def test_no_loss_no_stalls():
    async def body():
        async with Upstream() as up, Link("n", up.address, LinkParams(delay_ms=1)) as link:
            reader, writer = await connect(link)
            for _ in range(20):
                await rtt(reader, writer, size=20_000)
            writer.close()
            assert link.stats()["loss_stalls"] == 0

    run(body)


def test_update_changes_open_connection():
    async def body():
        async with Upstream() as up, Link("p", up.address) as link:
            reader, writer = await connect(link)
            before = await rtt(reader, writer)
            link.update(delay_ms=60)
            after = [await rtt(reader, writer) for _ in range(2)]
            link.update(delay_ms=0)
            await rtt(reader, writer)
            writer.close()
        assert min(after) >= 0.115, (before, after)

    run(body)


def test_retarget_sends_new_connections_elsewhere_and_keeps_open_ones():
    async def body():
        async with Upstream() as first, Upstream() as second, Link("r", first.address) as link:
            port = link.listen_port
            reader, writer = await connect(link)
            await rtt(reader, writer)
            link.retarget(second.address)
            await rtt(reader, writer)  # the open connection still talks to `first`
            reader2, writer2 = await connect(link)
            await rtt(reader2, writer2)
            assert (first.accepted, second.accepted) == (1, 1)
            assert link.listen_port == port
            with pytest.raises(ValueError):
                link.retarget("192.0.2.1:80")
            writer.close()
            writer2.close()

    run(body)


# ---------------------------------------------------------------------------------- partition


def test_partition_holds_data_without_reset_and_heal_delivers_in_order():
    async def body():
        async with Upstream() as up, Link("cut", up.address, LinkParams(delay_ms=2)) as link:
            reader, writer = await connect(link)
            assert await rtt(reader, writer, size=4) >= 0  # connected and flowing
            echoed_before = len(up.received)
            link.update(partitioned=True)

            payload = numbered(50_000)  # 200 kB
            writer.write(payload)
            writer.write_eof()
            # A connection opened during the partition is accepted but not relayed yet.
            reader2, writer2 = await connect(link)
            writer2.write(b"late")
            await asyncio.sleep(0.5)
            assert len(up.received) == echoed_before  # nothing crossed the cut
            assert up.accepted == 1  # the SYN of the second connection did not cross either
            assert not up.eof.is_set()  # no FIN crossed
            assert not reader.at_eof() and not writer.is_closing()  # and nobody was reset

            link.update(partitioned=False)
            got = await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)
            assert got == payload  # everything, in order
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"BYE"  # then the FIN, in order
            assert await asyncio.wait_for(reader2.readexactly(4), TIMEOUT) == b"late"
            await wait_until(lambda: up.accepted == 2)
            writer.close()
            writer2.close()

    run(body)


def test_partition_applies_backpressure_instead_of_buffering_forever():
    async def body():
        async with Upstream(echo=False) as up, Link("bp", up.address, LinkParams(partitioned=True)) as link:
            reader, writer = await connect(link)
            payload = numbered(8 * 1024 * 1024)  # 32 MiB: more than our 8 MiB + the kernel's buffers
            writer.write(payload)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(writer.drain(), 2.0)  # the relay stopped reading
            assert len(up.received) == 0
            link.update(partitioned=False)
            await asyncio.wait_for(writer.drain(), TIMEOUT)
            writer.write_eof()
            await asyncio.wait_for(up.eof.wait(), TIMEOUT)
            assert bytes(up.received) == payload
            writer.close()

    run(body)


def test_drop_partition_resets_established_connections_and_discards_what_was_in_flight():
    async def body():
        async with Upstream(echo=False) as up, Link("drop", up.address, LinkParams(delay_ms=200)) as link:
            reader, writer = await connect(link)
            writer.write(b"delivered")
            await wait_until(lambda: bytes(up.received) == b"delivered")
            writer.write(b"in flight")  # 200 ms from the upstream when the cut comes
            await asyncio.sleep(0.05)
            started = time.monotonic()
            link.update(partitioned=True, partition_mode="drop")
            # The client learns at once that its connection is gone (a reset, or EOF), not at a timeout.
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            assert time.monotonic() - started < 1.0
            await wait_until(lambda: up.resets == 1)  # the upstream end was reset too
            assert link.stats()["connections_open"] == 0 and link.stats()["connections_dropped"] == 1

            link.update(partitioned=False)
            await asyncio.sleep(0.5)
            assert bytes(up.received) == b"delivered"  # what was in flight at the cut is gone for good
            assert not up.eof.is_set()
            writer.close()

    run(body)


def test_drop_partition_black_holes_new_connections_and_forgets_those_given_up():
    async def body():
        async with Upstream(echo=False) as up, Link("void", up.address, LinkParams(delay_ms=2)) as link:
            link.update(partitioned=True, partition_mode="drop")
            assert link.stats()["connections_dropped"] == 0  # nothing was open to drop
            reader, writer = await connect(link)  # our kernel completes the handshake; the SYN goes nowhere
            writer.write(b"given up")
            with pytest.raises(asyncio.TimeoutError):  # a client with a timeout sees it expire
                await asyncio.wait_for(reader.read(1), 0.5)
            writer.transport.abort()  # ... and gives up, as the site's WAN client does
            await wait_until(lambda: link.stats()["connections_open"] == 0)

            reader2, writer2 = await connect(link)  # still waiting when the cut heals
            waiting_since = time.monotonic()
            writer2.write(b"patient")
            await asyncio.sleep(0.2)
            link.update(partitioned=False)
            await wait_until(lambda: bytes(up.received) == b"patient")
            # It got through with the client's first SYN retransmission, 1 s after it connected, not at
            # the heal; the abandoned connection never reached the upstream at all.
            assert time.monotonic() - waiting_since >= 0.9
            assert up.accepted == 1 and b"given up" not in up.received
            writer2.close()

    run(body)


def test_drop_partition_resets_a_client_whose_last_syn_retransmission_passed():
    async def body():
        async with Upstream(echo=False) as up, Link("late", up.address) as link:
            link.update(partitioned=True, partition_mode="drop")
            reader, writer = await connect(link)
            conn = next(iter(link._conns))
            conn.syn_lost_at -= 64.0  # as if it had been waiting since before the last retransmission
            link.update(partitioned=False)
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            assert up.accepted == 0
            writer.close()

    run(body)


def test_hold_partition_after_a_drop_partition_holds_again():
    async def body():
        async with Upstream() as up, Link("both", up.address, LinkParams(delay_ms=2)) as link:
            link.update(partitioned=True, partition_mode="drop")
            link.update(partitioned=False, partition_mode="hold")
            reader, writer = await connect(link)
            assert await rtt(reader, writer, size=4) >= 0
            link.update(partitioned=True)  # mode hold: the open connection survives the cut
            writer.write(b"kept")
            await asyncio.sleep(0.3)
            link.update(partitioned=False)
            assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"kept"
            assert link.stats()["connections_dropped"] == 0
            writer.close()

    run(body)


# -------------------------------------------------------------------------- close and errors


def test_eof_and_reset_propagate_and_connections_are_counted():
    async def body():
        async with Upstream(echo=False) as up, Link("e", up.address, LinkParams(delay_ms=20)) as link:
            reader, writer = await connect(link)
            writer.write(b"request")
            writer.write_eof()  # FIN follows the data through the link
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"BYE"  # upstream's reply, then EOF
            assert bytes(up.received) == b"request"
            writer.close()
            await wait_until(lambda: link.stats()["connections_open"] == 0)

            # The upstream resets: the client sees the connection end, not a hang.
            reader, writer = await connect(link)
            writer.write(b"x")
            await wait_until(lambda: len(up.received) == len(b"request") + 1)  # "x" crossed the link
            up.writers[-1].transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            up.writers[-1].transport.abort()
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            writer.close()
            await wait_until(lambda: link.stats()["connections_open"] == 0)
            stats = link.stats()
        assert stats["connections_total"] == 2
        assert stats["bytes_up"] == len(b"request") + 1
        assert stats["bytes_down"] == 3

    run(body)


def test_unreachable_upstream_closes_client():
    async def body():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        async with Link("dead", f"127.0.0.1:{port}") as link:
            reader, writer = await connect(link)
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            writer.close()
            await wait_until(lambda: link.stats()["connections_open"] == 0)

    run(body)


# ------------------------------------------------------------------------------------- linkd


class _ThreadedEcho(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT)
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


@pytest.fixture
def echo_server():
    server = _ThreadedEcho(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _start_linkd(*args: str, module: str = "conformance.emulation.linkd") -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = _readline(proc.stdout, TIMEOUT)
    return proc, json.loads(line)


def _readline(stream, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0]:
        raise AssertionError("no line from the child in time")
    return result[0]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _api(port: int, method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _sock_rtt(sock: socket.socket) -> float:
    start = time.perf_counter()
    sock.sendall(b"ping")
    got = b""
    while len(got) < 4:
        chunk = sock.recv(4 - len(got))
        assert chunk, "connection closed"
        got += chunk
    return time.perf_counter() - start


def test_linkd_api_end_to_end_and_sigterm(echo_server):
    proc, ready = _start_linkd("--run-id", "test-run")
    try:
        assert ready["ready"] is True and ready["pid"] == proc.pid
        port = ready["control_port"]
        assert _api(port, "GET", "/links") == (200, {"links": []})

        status, link = _api(port, "PUT", "/links/edge1", {"upstream": f"127.0.0.1:{echo_server}", "delay_ms": 0})
        assert status == 200, link
        assert link["name"] == "edge1" and link["upstream"] == f"127.0.0.1:{echo_server}"
        assert set(link) == {
            "name", "listen_port", "upstream", "delay_ms", "jitter_ms", "loss", "bandwidth_bps", "partitioned",
            "partition_mode", "stats"
        }  # fmt: skip
        assert link["partition_mode"] == "hold"  # today's cut unless told otherwise
        assert set(link["stats"]) == {"connections_total", "connections_open", "connections_dropped", "bytes_up",
                                      "bytes_down", "loss_stalls"}

        # Non-loopback upstream and bad values: 400 with a readable error.
        status, err = _api(port, "PUT", "/links/evil", {"upstream": "192.0.2.1:80"})
        assert status == 400 and "loopback" in err["error"]
        status, err = _api(port, "PATCH", "/links/edge1", {"loss": 3})
        assert status == 400 and "loss" in err["error"]
        status, err = _api(port, "PATCH", "/links/edge1", {"partitioned": True, "partition_mode": "dorp"})
        assert status == 400 and "partition_mode" in err["error"] and "drop" in err["error"]
        assert _api(port, "GET", "/links/edge1")[1]["partitioned"] is False  # nothing changed
        # Unknown link: 404 JSON on every method.
        for method, body in (("GET", None), ("PATCH", {"delay_ms": 1}), ("DELETE", None)):
            status, err = _api(port, method, "/links/nope", body)
            assert status == 404 and "error" in err

        with socket.create_connection(("127.0.0.1", link["listen_port"]), timeout=TIMEOUT) as sock:
            _sock_rtt(sock)
            status, patched = _api(port, "PATCH", "/links/edge1", {"delay_ms": 40})
            assert status == 200 and patched["delay_ms"] == 40
            assert _sock_rtt(sock) >= 0.075  # the open connection got the new delay
            status, listed = _api(port, "GET", "/links")
            stats = listed["links"][0]["stats"]
            assert stats["connections_open"] == 1 and stats["bytes_up"] == 8 and stats["bytes_down"] == 8

        # PUT again: back to defaults, same port (the supervisor resets links this way).
        status, again = _api(port, "PUT", "/links/edge1", {"upstream": f"localhost:{echo_server}", "loss": 0.25})
        assert status == 200
        assert again["listen_port"] == link["listen_port"]
        assert (again["delay_ms"], again["loss"], again["upstream"]) == (0, 0.25, f"127.0.0.1:{echo_server}")
        assert again["stats"]["connections_total"] == 1  # the same link, not a new one

        status, deleted = _api(port, "DELETE", "/links/edge1")
        assert status == 200 and deleted["name"] == "edge1"
        assert _api(port, "GET", "/links") == (200, {"links": []})

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
        assert proc.stderr.read() == ""  # no tracebacks, no asyncio noise
    finally:
        _kill(proc.pid)
        proc.wait(TIMEOUT)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


@pytest.mark.parametrize("module", ["conformance.emulation.linkd", "conformance.emulation.docker.relayd"])
def test_daemons_cut_in_either_mode_through_patch(echo_server, module):
    """linkd and the docker backend's relayd: PATCH partition_mode picks what a cut does."""
    proc, ready = _start_linkd(module=module)
    try:
        port = ready["control_port"]
        _, link = _api(port, "PUT", "/links/wan:s", {"upstream": f"127.0.0.1:{echo_server}"})
        with socket.create_connection(("127.0.0.1", link["listen_port"]), timeout=TIMEOUT) as held, \
                socket.create_connection(("127.0.0.1", link["listen_port"]), timeout=TIMEOUT) as dropped:
            _sock_rtt(held)
            _sock_rtt(dropped)
            status, cut = _api(port, "PATCH", "/links/wan:s", {"partitioned": True})  # hold, the default
            assert status == 200 and cut["partition_mode"] == "hold"
            held.sendall(b"ping")
            status, cut = _api(port, "PATCH", "/links/wan:s", {"partition_mode": "drop"})  # now a long outage
            assert status == 200 and cut["stats"]["connections_dropped"] == 2
            with contextlib.suppress(ConnectionError):
                assert dropped.recv(16) == b""
            _api(port, "PATCH", "/links/wan:s", {"partitioned": False})
            with contextlib.suppress(ConnectionError):
                assert held.recv(16) == b""  # dropped too: the hold it was in became a drop
        proc.stdin.close()
        assert proc.wait(TIMEOUT) == 0
    finally:
        _kill(proc.pid)
        proc.wait(TIMEOUT)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def test_linkd_sigterm_with_open_connections_is_quiet(echo_server):
    proc, ready = _start_linkd()
    try:
        port = ready["control_port"]
        _, link = _api(port, "PUT", "/links/a", {"upstream": f"127.0.0.1:{echo_server}", "delay_ms": 5})
        _api(port, "PUT", "/links/b", {"upstream": f"127.0.0.1:{echo_server}", "partitioned": True})
        with socket.create_connection(("127.0.0.1", link["listen_port"]), timeout=TIMEOUT) as sock:
            _sock_rtt(sock)
            sock.sendall(b"in flight")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(TIMEOUT) == 0
        assert proc.stderr.read() == ""
    finally:
        _kill(proc.pid)
        proc.wait(TIMEOUT)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def test_linkd_exits_when_its_stdin_closes():
    proc, ready = _start_linkd()
    try:
        proc.stdin.close()  # what the harness's death does to the pipe
        assert proc.wait(TIMEOUT) == 0
        assert proc.stderr.read() == ""
    finally:
        _kill(proc.pid)
        proc.wait(TIMEOUT)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("stdin", ["PIPE", "DEVNULL"])
def test_linkd_exits_when_its_parent_dies(stdin):
    # A parent that starts linkd, reports it, then hangs.  With stdin=DEVNULL only the getppid()
    # poll can notice the parent's death; with a pipe, EOF notices it first.
    parent_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-m", "conformance.emulation.linkd"],
                                 stdin=subprocess.{stdin}, stdout=subprocess.PIPE, text=True)
        print(child.stdout.readline(), end="", flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    linkd_pid = None
    try:
        linkd_pid = json.loads(_readline(parent.stdout, TIMEOUT))["pid"]
        assert psutil.pid_exists(linkd_pid)
        parent.kill()
        parent.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                if psutil.Process(linkd_pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("linkd outlived its parent")
    finally:
        parent.kill()
        parent.wait(TIMEOUT)
        parent.stdout.close()
        if linkd_pid is not None:
            _kill(linkd_pid)
