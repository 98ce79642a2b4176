"""functional.http and functional.tcp: an endpoint answers, with the expected status and fields."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from conformance.measure.http import http_request
from conformance.measure.jsonfields import mismatches
from conformance.model.target import expand_env


@pytest.mark.edge_check("functional.http")
def test_http(edge):
    p = edge.params
    url = edge.endpoint().rstrip("/") + "/" + (p["path"] or "/").lstrip("/")
    response = http_request(url, method=p["method"], timeout=p["timeout"],
                            headers=_headers(edge, p.get("headers")), ca_file=edge.ca_file)
    edge.record("status", response.status)
    edge.record("latency", response.elapsed * 1000.0, "ms")
    edge.note(f"{p['method']} {url} -> {response.status} in {response.elapsed * 1000:.1f} ms")
    expected = p.get("json")
    if expected:
        try:
            body = response.loads()
        except ValueError:
            edge.note("body is not JSON")
            edge.record("json_mismatches", len(expected))
            return
        problems = mismatches(body, expected)
        for problem in problems:
            edge.note(problem)
        edge.record("json_mismatches", len(problems))
    else:
        edge.record("json_mismatches", 0)


def _headers(edge, headers):
    return {k: expand_env(str(v)) for k, v in (headers or {}).items()}


@pytest.mark.edge_check("functional.tcp")
def test_tcp(edge):
    p = edge.params
    parts = urlsplit(edge.endpoint())
    host = parts.hostname
    port = p.get("port") or parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=p["timeout"]) as sock:
            elapsed = time.perf_counter() - started
            closed = _closed_at_once(sock, min(CLOSE_GRACE_S, max(p["timeout"] - elapsed, 0.01)))
    except ConnectionResetError:
        # The handshake completed and the peer reset before connect() returned (a busy machine):
        # the same accept-then-close as below, only seen earlier. A refusal is ConnectionRefusedError.
        elapsed, closed = time.perf_counter() - started, "reset"
    except TimeoutError:
        edge.note(f"no answer from {host}:{port} within {p['timeout']:g} s")
        edge.record("connected", False)
        return
    except OSError as exc:
        edge.note(f"{host}:{port}: {exc.strerror or exc}")
        edge.record("connected", False)
        return
    if closed:
        # A relay, load balancer or proxy completes the handshake itself and only then finds no
        # live backend: "connected" would be a pass for a dead service.
        edge.note(f"{host}:{port}: accepted, then closed at once: a proxy with no live backend? ({closed})")
        edge.record("connected", False)
        return
    edge.record("connected", True)
    edge.record("connect_time", elapsed * 1000.0, "ms")


CLOSE_GRACE_S = 0.3  # a connection the peer ends within this long (without a byte) was not served


def _closed_at_once(sock: socket.socket, grace: float) -> str | None:
    """How the peer ended the connection within `grace` seconds without sending anything ("EOF",
    "reset"), or None: it sent something (a banner) or stayed silent and open. We send nothing."""
    sock.settimeout(grace)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return "reset"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if data else "EOF"
