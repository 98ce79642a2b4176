"""Loopback servers to probe: HTTP no-op, TCP echo and UDP echo on 127.0.0.1, with optional injected
delay and stop-the-world stalls.

Used by calibration (the measurement floor), by the tests and by the benchmarks. They run outside the
prober's event loop: in a thread with its own loop (LoopbackServer, cheap, shares the GIL) or in a child
process (LoopbackServerProcess, like a real target; `python -m conformance.measure.latency.loopback_main`).

Delays use a select()-based loop (see timing.py) so a 5 ms delay is 5 ms, not 5-6 ms. A stall blocks
the server's whole event loop with time.sleep(), like a GC pause: requests arriving meanwhile wait in
the kernel's socket buffers and are answered when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .timing import fine_timer_slack, new_timer_loop, now_ns

HOST = "127.0.0.1"


@dataclass
class Behaviour:
    delay_s: float = 0.0  # added before every answer
    stall_s: float = 0.0  # length of each stall; 0 = never stall
    stall_first_s: float = 1.0  # first stall this long after start
    stall_every_s: float = 0.0  # period of later stalls; 0 = stall once
    delay_fn: Callable[[int], float] | None = None  # (request index) -> delay s; overrides delay_s
    record_arrivals: bool = False  # keep perf_counter_ns of every request's arrival


_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class _Servers:
    """The three servers on one loop, sharing a request counter and the behaviour."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.requests = 0
        self.connections = 0  # accepted TCP connections (what tcp-connect probes produce)
        self.arrivals_ns: list[int] = []
        self.stalls_ns: list[int] = []
        self.ports: dict[str, int] = {}
        self._closers: list[Callable[[], None]] = []

    def next_delay(self) -> float:
        index = self.requests
        self.requests += 1
        if self.behaviour.record_arrivals:
            self.arrivals_ns.append(now_ns())
        if self.behaviour.delay_fn is not None:
            return self.behaviour.delay_fn(index)
        return self.behaviour.delay_s

    def answer(self, delay: float, callback: Callable, *args) -> None:
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, callback, *args)
        else:
            callback(*args)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        http = await loop.create_server(lambda: _HttpServer(self), HOST, 0, backlog=1024)
        tcp = await loop.create_server(lambda: _EchoServer(self), HOST, 0, backlog=1024)
        udp, _ = await loop.create_datagram_endpoint(lambda: _UdpEchoServer(self), local_addr=(HOST, 0))
        self.ports = {"http": http.sockets[0].getsockname()[1], "tcp": tcp.sockets[0].getsockname()[1],
                      "udp": udp.get_extra_info("sockname")[1]}
        self._closers = [http.close, tcp.close, udp.close]
        if self.behaviour.stall_s > 0:
            first = now_ns() + int(self.behaviour.stall_first_s * 1e9)
            self._schedule_stall(first)

    def _schedule_stall(self, at_ns: int) -> None:
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + (at_ns - now_ns()) / 1e9, self._stall, at_ns)

    def _stall(self, planned_ns: int) -> None:
        self.stalls_ns.append(now_ns())
        time.sleep(self.behaviour.stall_s)  # deliberately blocks the whole server loop
        if self.behaviour.stall_every_s > 0:
            self._schedule_stall(planned_ns + int(self.behaviour.stall_every_s * 1e9))

    def close(self) -> None:
        for closer in self._closers:
            closer()


class _HttpServer(asyncio.Protocol):
    """HTTP/1.1 no-op: any request -> 200 'ok'. Keep-alive unless the client says close."""

    def __init__(self, servers: _Servers):
        self.servers = servers
        self.buffer = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.servers.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17: line_end if line_end >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            close = b"\r\nconnection: close" in head
            self.servers.answer(self.servers.next_delay(), self._respond, close)

    def _respond(self, close: bool) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(_OK_CLOSE if close else _OK)
        if close:
            self.transport.close()


class _EchoServer(asyncio.Protocol):
    def __init__(self, servers: _Servers):
        self.servers = servers
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.servers.connections += 1

    def data_received(self, data: bytes) -> None:
        self.servers.answer(self.servers.next_delay(), self._echo, data)

    def _echo(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


class _UdpEchoServer(asyncio.DatagramProtocol):
    def __init__(self, servers: _Servers):
        self.servers = servers
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.servers.answer(self.servers.next_delay(), self.transport.sendto, data, addr)


class _UrlsMixin:
    ports: dict[str, int]

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.ports['http']}/"

    @property
    def tcp_url(self) -> str:
        return f"tcp://{HOST}:{self.ports['tcp']}"

    @property
    def udp_url(self) -> str:
        return f"udp://{HOST}:{self.ports['udp']}"

    def url_for(self, protocol: str) -> str:
        """The URL of the server that protocol talks to (http* -> HTTP, tcp-* -> TCP echo, udp)."""
        if protocol.startswith("http"):
            return self.http_url
        if protocol.startswith("tcp"):
            return self.tcp_url
        if protocol.startswith("udp"):
            return self.udp_url
        raise ValueError(f"no loopback server for protocol {protocol!r}")


class LoopbackServer(_UrlsMixin):
    """The servers in a background thread with their own event loop. Use as a context manager."""

    def __init__(self, behaviour: Behaviour | None = None, **behaviour_fields):
        self.behaviour = behaviour or Behaviour(**behaviour_fields)
        self._servers = _Servers(self.behaviour)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def ports(self) -> dict[str, int]:
        return self._servers.ports

    @property
    def requests(self) -> int:
        return self._servers.requests

    @property
    def connections(self) -> int:
        return self._servers.connections

    @property
    def arrivals_ns(self) -> list[int]:
        return self._servers.arrivals_ns

    @property
    def stalls_ns(self) -> list[int]:
        return self._servers.stalls_ns

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._main, name="loopback-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback server did not start within 10 s")
        if self._error:
            raise RuntimeError(f"loopback server failed to start: {self._error}") from self._error
        return self

    def _main(self) -> None:
        with fine_timer_slack():  # precise injected delays
            self._serve()

    def _serve(self) -> None:
        loop = self._loop = new_timer_loop()
        try:
            loop.run_until_complete(self._servers.start())
        except BaseException as exc:  # noqa: BLE001 - the server thread reports any start failure to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._servers.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LoopbackServerProcess(_UrlsMixin):
    """The servers in a child process (optionally pinned to one CPU). Use as a context manager.

    The child prints its ports as one JSON line, serves until its stdin closes, then prints
    {"requests": n, "stalls_ns": [...]} (stall start times on this machine's monotonic clock).
    """

    def __init__(self, delay_s: float = 0.0, stall_s: float = 0.0, stall_first_s: float = 1.0,
                 stall_every_s: float = 0.0, cpu: int | None = None, realtime: bool = False):
        self.args = ["--delay-ms", str(delay_s * 1000), "--stall-ms", str(stall_s * 1000),
                     "--stall-first-s", str(stall_first_s), "--stall-every-s", str(stall_every_s)]
        self.cpu = cpu
        self.realtime = realtime  # SCHED_FIFO via chrt (root only), so neighbours can't delay answers
        self.ports: dict[str, int] = {}
        self.requests = 0
        self.stalls_ns: list[int] = []
        self._proc: subprocess.Popen | None = None

    def start(self) -> LoopbackServerProcess:
        cmd = [sys.executable, "-m", "conformance.measure.latency.loopback_main", *self.args]
        if self.cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        if self.realtime and shutil.which("chrt") and os.geteuid() == 0:
            cmd = ["chrt", "-f", "10", *cmd]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._proc.stdout], [], [], 30)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            self._kill()
            raise RuntimeError("loopback server process did not report its ports within 30 s")
        self.ports = json.loads(line)["ports"]
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            out, _ = self._proc.communicate(timeout=10)  # closes stdin: the child exits on EOF
            for line in out.splitlines():
                final = json.loads(line)
                self.requests = final.get("requests", 0)
                self.stalls_ns = final.get("stalls_ns", [])
        except (subprocess.TimeoutExpired, ValueError):
            self._kill()
        self._proc = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def __enter__(self) -> LoopbackServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.measure.latency.loopback_main",
                                     description="Loopback HTTP no-op, TCP echo and UDP echo servers.")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--stall-ms", type=float, default=0.0)
    parser.add_argument("--stall-first-s", type=float, default=1.0)
    parser.add_argument("--stall-every-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    behaviour = Behaviour(delay_s=args.delay_ms / 1000, stall_s=args.stall_ms / 1000,
                          stall_first_s=args.stall_first_s, stall_every_s=args.stall_every_s)
    servers = _Servers(behaviour)
    loop = new_timer_loop()
    done = asyncio.Event()

    async def serve() -> None:
        await servers.start()
        print(json.dumps({"ports": servers.ports, "pid": os.getpid()}), flush=True)
        loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.raw.read(4096) or done.set())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        await done.wait()
        loop.remove_reader(sys.stdin.fileno())
        servers.close()

    try:
        with fine_timer_slack():
            loop.run_until_complete(serve())
    finally:
        loop.close()
    print(json.dumps({"requests": servers.requests, "stalls_ns": servers.stalls_ns}), flush=True)
    return 0
