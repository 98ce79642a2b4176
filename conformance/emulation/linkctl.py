"""The supervisor's side of the link daemon: start linkd (or the docker backend's relayd, which has the
same control API) and drive its HTTP control API.

linkd (conformance.emulation.linkd) owns every emulated link of a deployment; we name them
"wan:<site>" and "access:<site>". Only this module knows linkd's URLs and field names.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from . import procs

LINKD_MODULE = "conformance.emulation.linkd"
REQUEST_TIMEOUT_S = 10.0


class LinkdError(RuntimeError):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class Linkd:
    """A running linkd child and a client for it."""

    def __init__(self, proc: asyncio.subprocess.Process, control_port: int):
        self.proc = proc
        self.control_port = control_port
        self.base = f"http://127.0.0.1:{control_port}"
        # force_close: no idle keep-alive connections left behind in a daemon we are about to stop.
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(force_close=True))

    @classmethod
    async def start(cls, *, run_id: str, log_path: Path, timeout: float, module: str = LINKD_MODULE) -> Linkd:
        """Start the daemon: linkd, or another with its control API (the docker backend's relayd)."""
        argv = procs.module_argv(module, "--run-id", run_id)
        proc, ready = await procs.spawn(argv, run_id=run_id, log_path=log_path, timeout=timeout)
        return cls(proc, int(ready["control_port"]))

    async def put(self, name: str, upstream_port: int, params: dict[str, Any], partitioned: bool = False, *,
                  listen_host: str | None = None) -> dict[str, Any]:
        """Create or replace a link to 127.0.0.1:upstream_port (listening on `listen_host`: relayd only)."""
        body: dict[str, Any] = {"upstream": f"127.0.0.1:{upstream_port}", **params, "partitioned": partitioned}
        if listen_host is not None:
            body["listen_host"] = listen_host
        return await self._call("PUT", f"/links/{_q(name)}", body)

    async def patch(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PATCH", f"/links/{_q(name)}", fields)

    async def links(self) -> dict[str, dict[str, Any]]:
        data = await self._call("GET", "/links")
        return {link["name"]: link for link in data.get("links", [])}

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            async with self.session.request(method, self.base + path, json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    message = data.get("error") if isinstance(data, dict) else None
                    raise LinkdError(resp.status, f"linkd {method} {path}: {message or resp.reason}")
                return data
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise LinkdError(502, f"linkd {method} {path} failed: {exc!r}") from None

    async def close(self) -> None:
        await self.session.close()
        await procs.reap(self.proc)


def _q(name: str) -> str:
    return quote(name, safe=":")
