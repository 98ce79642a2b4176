"""functional.http and functional.tcp: an endpoint answers, with the expected status and fields."""

from __future__ import annotations

import json
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
                            headers=_headers(edge, p.get("headers")))
    edge.record("status", response.status)
    edge.record("latency", response.elapsed * 1000.0, "ms")
    edge.note(f"{p['method']} {url} -> {response.status} in {response.elapsed * 1000:.1f} ms")
    expected = p.get("json")
    if expected:
        try:
            body = json.loads(response.body.decode("utf-8", "replace"))
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
        with socket.create_connection((host, port), timeout=p["timeout"]):
            elapsed = time.perf_counter() - started
    except TimeoutError:
        edge.note(f"no answer from {host}:{port} within {p['timeout']:g} s")
        edge.record("connected", False)
        return
    except OSError as exc:
        edge.note(f"{host}:{port}: {exc.strerror or exc}")
        edge.record("connected", False)
        return
    edge.record("connected", True)
    edge.record("connect_time", elapsed * 1000.0, "ms")
