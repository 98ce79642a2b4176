"""The edge's only way to central: HTTP through --central-url (the WAN link relay) with short timeouts.

The WAN may refuse connections, black-hole them (connect succeeds, nothing comes back) or be slow, so
every call has a connect and a total timeout, failures raise WanError, and a small breaker remembers a
recent failure so user-facing paths (the content cache) can answer from local state at once instead of
waiting for another timeout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from .context import Site


class WanError(Exception):
    def __init__(self, kind: str, message: str):
        self.kind = kind            # "timeout" | "unreachable" | "status"
        super().__init__(message)


@dataclass
class WanReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class CentralClient:
    def __init__(self, site: Site, base_url: str):
        self.site = site
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self.last_success: float = 0.0
        self.last_failure: float = 0.0
        site.metrics.counter("wan_bytes_sent_total", "HTTP body bytes sent to central, by channel.")
        site.metrics.counter("wan_bytes_received_total", "HTTP body bytes received from central, by channel.")
        site.metrics.counter("wan_requests_total", "Requests to central, by channel and outcome.")

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=None, use_dns_cache=False),
            auto_decompress=False,
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def is_down(self) -> bool:
        """True shortly after a failure that no success has followed yet."""
        return (self.last_failure > self.last_success
                and time.monotonic() - self.last_failure < self.site.settings.wan_breaker_s)

    async def call(self, method: str, path: str, *, channel: str, body: Any = None,
                   headers: dict[str, str] | None = None, timeout: float | None = None) -> WanReply:
        """One request to central. Raises WanError on timeout, connection failure or a 5xx status."""
        assert self._session is not None, "CentralClient.start() was not awaited"
        settings = self.site.settings
        data = None
        send_headers = dict(headers or {})
        if body is not None:   # bytes are sent as they are (already serialised JSON)
            data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
            send_headers["Content-Type"] = "application/json"
        total = timeout if timeout is not None else settings.wan_timeout_s
        client_timeout = aiohttp.ClientTimeout(
            total=total, connect=min(settings.wan_connect_timeout_s, total),
            sock_connect=min(settings.wan_connect_timeout_s, total),
        )
        metrics = self.site.metrics
        metrics.inc("wan_bytes_sent_total", len(data or b""), channel=channel)
        try:
            async with self._session.request(method, self.base_url + path, data=data,
                                             headers=send_headers, timeout=client_timeout) as resp:
                payload = await resp.read()
                reply = WanReply(resp.status, dict(resp.headers), payload)
        except TimeoutError:
            self._failed(channel, "timeout")
            raise WanError("timeout", f"{method} {path}: no answer from central within {total:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            self._failed(channel, "unreachable")
            raise WanError("unreachable", f"{method} {path}: {type(exc).__name__}: {exc}") from None
        metrics.inc("wan_bytes_received_total", len(payload), channel=channel)
        if reply.status >= 500:   # central broken, or the relay saying its upstream is gone
            self._failed(channel, "status")
            raise WanError("status", f"{method} {path}: central answered {reply.status}")
        self.last_success = time.monotonic()
        metrics.inc("wan_requests_total", channel=channel, outcome="ok")
        return reply

    def _failed(self, channel: str, outcome: str) -> None:
        self.last_failure = time.monotonic()
        self.site.metrics.inc("wan_requests_total", channel=channel, outcome=outcome)
