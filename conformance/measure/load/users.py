"""Locust user classes, one per scenario (child processes only: importing locust patches with gevent).

Every user runs one task, `paced_iteration`: wait for an arrival from the pacer (open model, pacer.py),
then play one iteration of its scenario. Each request carries `context={"t0_ns": perf_counter_ns()}`
so the recorder measures latency itself in nanoseconds (recorder.py).

`RUNTIME` is set by child.py. When it is None, as under plain `locust -f`, the classes still work:
no pacer (closed loop, `wait_time` decides) and the scenario defaults below. The benchmark relies on
that to compare the same class under plain Locust and under our driver.
"""

from __future__ import annotations

import itertools
import random
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, User, constant, task

from ..failures import ConnectionClosed, EchoMismatch, MissingTransactionId
from .pacer import Pacer
from .recorder import Recorder

DEFAULT_CONTENT_KEYS = tuple(f"k{i}" for i in range(64))


@dataclass
class Runtime:
    settings: dict[str, Any]  # LoadConfig.to_dict()
    pacer: Pacer
    recorder: Recorder


RUNTIME: Runtime | None = None


def _setting(name: str, default: Any) -> Any:
    return RUNTIME.settings.get(name, default) if RUNTIME else default


def _paced(user: Any) -> None:
    runtime = RUNTIME
    if runtime is None:
        user.iteration()
        return
    runtime.pacer.take()
    runtime.pacer.begin()
    try:
        user.iteration()
    finally:
        runtime.pacer.end()


# ---- HTTP --------------------------------------------------------------------------------------


class PacedHttpUser(FastHttpUser):
    """FastHttpUser (geventhttpclient: several times less CPU than HttpUser) with open-model pacing."""

    abstract = True
    wait_time = constant(0)  # pacing comes from the pacer; under plain locust: as fast as possible

    @task
    def paced_iteration(self) -> None:
        _paced(self)

    def iteration(self) -> None:
        raise NotImplementedError

    def send(self, method: str, url: str, name: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, name=name, context={"t0_ns": time.perf_counter_ns()}, **kwargs)

    def fail(self, method: str, name: str, error: Exception) -> None:
        """Record a failure that happened without a request (no latency: no t0_ns, response_time 0)."""
        self.environment.events.request.fire(request_type=method, name=name, response_time=0,
                                             response_length=0, response=None, context={}, exception=error)


class EndpointsUser(PacedHttpUser):
    """Weighted choice over the configured endpoints."""

    def on_start(self) -> None:
        endpoints = _setting("endpoints", None) or [{"name": "/", "url": "/", "method": "GET", "weight": 1}]
        self._endpoints = endpoints
        self._cum_weights = list(itertools.accumulate(float(e.get("weight", 1)) for e in endpoints))

    def iteration(self) -> None:
        endpoint = random.choices(self._endpoints, cum_weights=self._cum_weights)[0]
        body = endpoint.get("body")
        kwargs: dict[str, Any] = {}
        if isinstance(body, (dict, list)):
            kwargs["json"] = body
        elif body is not None:
            kwargs["data"] = str(body)
        self.send(endpoint.get("method", "GET"), endpoint["url"], endpoint.get("name") or endpoint["url"], **kwargs)


class PosUser(PacedHttpUser):
    """Point of sale: create a transaction, then read it back by the id the site returned."""

    def iteration(self) -> None:
        body = {
            "amount": round(random.uniform(1, 500), 2),
            "items": [{"sku": f"sku-{random.randrange(1000)}", "qty": random.randint(1, 5)}
                      for _ in range(random.randint(1, 4))],
        }
        response = self.send("POST", "/pos/transactions", "/pos/transactions", json=body)
        if not 200 <= (response.status_code or 0) < 300:
            return  # already recorded as a failure; there is nothing to read back
        transaction_id = _transaction_id(response)
        if transaction_id is None:
            self.fail("GET", "/pos/transactions/{id}", MissingTransactionId("no id in the POST response"))
            return
        self.send("GET", f"/pos/transactions/{transaction_id}", "/pos/transactions/{id}")


def _transaction_id(response: Any) -> str | None:
    """`id` or `transaction_id` of a JSON body, else the last segment of a Location header."""
    try:
        data = response.json()
        if isinstance(data, dict):
            for key in ("id", "transaction_id"):
                if data.get(key) not in (None, ""):
                    return str(data[key])
    # FastResponse.json() raises ValueError (not JSON), TypeError (no text) or LookupError (unknown charset)
    except Exception:  # noqa: BLE001 - whichever it is, the id may still be in the Location header
        pass
    location = (response.headers or {}).get("location") if hasattr(response, "headers") else None
    if location:
        return location.rstrip("/").rsplit("/", 1)[-1] or None
    return None


class ContentUser(PacedHttpUser):
    """Content delivery: GET /content/{key}, keys drawn uniformly from the key set."""

    def on_start(self) -> None:
        self._keys = list(_setting("content_keys", None) or DEFAULT_CONTENT_KEYS)

    def iteration(self) -> None:
        self.send("GET", f"/content/{random.choice(self._keys)}", "/content/{key}")


class TelemetryUser(PacedHttpUser):
    """IoT telemetry: small JSON readings posted by many sensors."""

    def iteration(self) -> None:
        reading = {"sensor": f"s{random.randint(1, 8)}", "value": round(random.gauss(20.0, 5.0), 3)}
        self.send("POST", "/telemetry", "/telemetry", json=reading)


# ---- raw TCP (the non-HTTP example) ------------------------------------------------------------


class TcpEchoUser(User):
    """Send `payload_bytes` over a kept-open TCP connection and read the same bytes back.

    Shows how any protocol joins the run: time the call, then fire the request event (Locust's
    documented pattern for non-HTTP clients; the socket module is gevent-patched here).
    """

    wait_time = constant(0)
    _counter = itertools.count()

    def on_start(self) -> None:
        parts = urlsplit(self.host or "")
        self._address = (parts.hostname, parts.port)
        self._timeout = float(_setting("request_timeout_s", 10.0))
        self._size = int(_setting("payload_bytes", 64))
        self._sock: socket.socket | None = None

    def on_stop(self) -> None:
        self._close()

    @task
    def paced_iteration(self) -> None:
        _paced(self)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def iteration(self) -> None:
        payload = f"{next(self._counter):012d}".encode().ljust(self._size, b".")[: self._size]
        t0_ns = time.perf_counter_ns()
        error: Exception | None = None
        try:
            if self._sock is None:
                self._sock = socket.create_connection(self._address, timeout=self._timeout)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.sendall(payload)
            received = b""
            while len(received) < len(payload):
                chunk = self._sock.recv(len(payload) - len(received))
                if not chunk:
                    raise ConnectionClosed("peer closed the connection")
                received += chunk
            if received != payload:
                raise EchoMismatch(f"sent {len(payload)} bytes, got different bytes back")
        except Exception as exc:  # noqa: BLE001 - every failure is a measured result, then reconnect next time
            error = exc
            self._close()
        self.environment.events.request.fire(
            request_type="tcp", name="echo", response_time=(time.perf_counter_ns() - t0_ns) / 1e6,
            response_length=len(payload), response=None, context={"t0_ns": t0_ns}, exception=error)


USER_CLASSES: dict[str, type[User]] = {
    cls.__name__: cls for cls in (EndpointsUser, PosUser, ContentUser, TelemetryUser, TcpEchoUser)
}
