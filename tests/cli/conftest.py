"""Loopback servers and a CLI runner for the end-to-end tests of the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "conformance.cli"]


def cli_env() -> dict[str, str]:
    # no CI-provided summary file, no pytest variables of the outer run
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_"))}
    # Third-party pytest plugins that happen to be installed (hypothesis, benchmark) have nothing to do
    # with the suites, yet cost a run more time than the checks themselves; test_install runs without this.
    env["PYTEST_ADDOPTS"] = "-p no:hypothesispytest -p no:benchmark"
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def popen_cli(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    # SIGINT back to its default, whatever the outer process ignores, so the child turns it into
    # KeyboardInterrupt as an interactive Ctrl-C would
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            body, status = json.dumps({"status": "ok"}).encode(), 200
        else:
            body, status = b'{"error": "not found"}', 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def http_url():
    """A loopback HTTP server: /health answers 200, anything else 404."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def hanging_url():
    """A port that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def refused_url():
    """A loopback port nobody listens on: connections are refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def write_target(path: Path, endpoints: dict[str, str], site: str = "store-1") -> Path:
    lines = ["name: loopback", "sites:", f"  - name: {site}", "    role: edge", "    endpoints:"]
    lines += [f'      {name}: "{url}"' for name, url in endpoints.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_profile(path: Path, requirements: list[str]) -> Path:
    path.write_text('id: cli-test\nversion: "1"\ntitle: CLI test\nrequirements:\n'
                    + "".join(f"  - {r}\n" for r in requirements), encoding="utf-8")
    return path
