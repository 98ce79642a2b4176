"""The one HTTP client (conformance.measure.http): failures are data (timeout, reset, refused, tls),
an answer of any status is an answer, every call has a hard overall timeout."""

from __future__ import annotations

import http.server
import socket
import struct
import threading
import time

import pytest

from conformance.measure.http import CallError, Client, call_json, http_request, request, send_json
from conformance.model.errors import MeasurementError


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(3)
        if self.path == "/trickle":  # a byte at a time: each read within urllib's per-read timeout
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
            return
        if self.path == "/reset":  # RST instead of an answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        status = 404 if self.path == "/missing" else 200
        body = b'{"error": "no such thing"}' if status == 404 else b'{"ok": true}'
        if self.path == "/text":
            body = b"not json"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Cache", "HIT")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that gave up: expected here
        pass


@pytest.fixture(scope="module")
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_answer_has_status_headers_body_and_elapsed(server):
    r = request(server + "/ok", timeout=2)
    assert r.status == 200 and r.ok and r.error is None and r.kind is None
    assert r.json() == {"ok": True} and r.header("x-cache") == "HIT" and r.elapsed > 0


def test_an_error_status_is_an_answer_not_a_failure(server):
    r = request(server + "/missing", timeout=2)
    assert r.status == 404 and not r.ok and r.kind is None
    assert r.describe().startswith("HTTP 404") and r.json() == {"error": "no such thing"}
    assert http_request(server + "/missing", timeout=2).status == 404


def test_a_refused_connection_is_data(server):
    url = f"http://127.0.0.1:{_closed_port()}/x"
    r = request(url, timeout=2)
    assert r.status is None and r.kind == "connection_refused" and url in r.error and "refused" in r.error.lower()
    with pytest.raises(MeasurementError, match="refused"):
        http_request(url, timeout=2)


def test_a_reset_is_data(server):
    r = request(server + "/reset", timeout=2)
    assert r.status is None and r.kind in ("connection_reset", "connection_closed"), r


def test_a_timeout_is_data_and_the_deadline_is_hard(server):
    started = time.monotonic()
    r = request(server + "/slow", timeout=0.5)
    assert r.status is None and r.kind == "timeout" and time.monotonic() - started < 2
    started = time.monotonic()
    r = request(server + "/trickle", timeout=1.0)  # 5 s of trickling, every read on time
    assert r.status is None and r.kind == "timeout" and time.monotonic() - started < 2.5
    assert "no complete answer within 1 s" in r.error


def test_tls_failures_are_data(server, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    r = request("https://127.0.0.1:1/", ca_file=str(bad), timeout=1)
    assert r.status is None and r.kind == "tls" and r.error.startswith(f"ca_file {bad}")
    r = request(server.replace("http:", "https:") + "/ok", timeout=2)  # TLS to a plain HTTP server
    assert r.status is None and r.kind == "tls", r


def test_json_calls_and_the_client(server):
    assert send_json(server + "/echo", method="POST", body={"a": 1}, timeout=2).json() == {"a": 1}
    client = Client(server, timeout=2)
    assert client.call("POST", "/echo", {"b": 2}).status == 201
    assert client.json("GET", "/ok") == {"ok": True}
    with pytest.raises(MeasurementError, match=r"the thing: GET .*/missing -> HTTP 404"):
        client.json("GET", "/missing", what="the thing")


def test_call_json_errors_carry_the_servers_explanation(server):
    assert call_json("POST", server + "/echo", {"x": [1]}, timeout=2) == {"x": [1]}
    with pytest.raises(CallError, match="HTTP 404: no such thing") as info:
        call_json("GET", server + "/missing", timeout=2)
    assert info.value.status == 404 and info.value.detail == "no such thing"
    with pytest.raises(CallError, match="not JSON") as info:
        call_json("GET", server + "/text", timeout=2)
    assert info.value.kind == "protocol"
    with pytest.raises(CallError, match="no answer") as info:
        call_json("GET", f"http://127.0.0.1:{_closed_port()}/", timeout=2)
    assert info.value.status is None and info.value.kind == "connection_refused"
