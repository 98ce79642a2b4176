"""Loopback HTTP servers for tests.

* `StubServer`: in a thread of the test process. GET /health 200 {"status": "ok"}; /flaky 503 until
  `flaky_ok` is set; anything else 404.
* `script_server(module, *args)`: an aiohttp server of this package run as a process of its own
  (`delay`: /slow answers after a delay; `loopback`: /echo, /limited, /flaky, /stats), so the harness's
  measurements do not share an event loop or a GIL with it. Its base URL, stopped at exit.
* `serve(app)`: what those modules run: the app on 127.0.0.1, one JSON line {"port": N} when it
  listens, until stdin closes.
* `refused_url()`, `hanging_socket()`: a port nobody listens on; one that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[3]  # the repository: `python -m tests.helpers.servers.X` from here


class StubServer:
    """A loopback HTTP server in a thread; `url` is its base URL. Use it as a context manager."""

    def __init__(self) -> None:
        self.flaky_ok = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path == "/health":
                    body, status = json.dumps({"status": "ok"}).encode(), 200
                elif self.path == "/flaky":
                    body, status = b"{}", (200 if stub.flaky_ok else 503)
                else:
                    body, status = b'{"error": "not found"}', 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def script_server(module: str, *args: Any, ready_timeout: float = 20) -> Iterator[str]:
    """The base URL of `python -m tests.helpers.servers.MODULE ARGS`, stopped (stdin closed) at exit."""
    from tests.helpers.processes import ReadyChild

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    server = ReadyChild([sys.executable, "-m", f"tests.helpers.servers.{module}", *args],
                        ready_timeout=ready_timeout, cwd=ROOT, env=env)
    try:
        yield server.url
    finally:
        server.stop()


async def serve(app, backlog: int = 128) -> None:
    """Serve an aiohttp `app` on 127.0.0.1 (a free port, printed as {"port": N}) until stdin closes."""
    import asyncio

    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=backlog)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    await runner.cleanup()


def refused_url() -> str:
    """A loopback port nobody listens on: connections are refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def hanging_url() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
