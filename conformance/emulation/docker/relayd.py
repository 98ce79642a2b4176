"""relayd: linkd for the docker backend (`python -m conformance.emulation.docker.relayd [--run-id ID]`).

The same daemon, control API and shaping relay as conformance.emulation.linkd (see its docstring and
docs/wan-emulation.md), with one addition: `PUT /links/{name}` takes an optional
`"listen_host": "A.B.C.D"`, the local address the link listens on (default 127.0.0.1).

The docker backend runs one relayd on the host per deployment:

* an access link listens on 127.0.0.1 and relays to the site's port published on 127.0.0.1;
* a WAN link listens on the GATEWAY address of the edge site's own Docker network (the host's side
  of that bridge), so the edge container can reach it, and relays to the uplink's published port.

Upstreams stay loopback-only (published ports), exactly as in linkd. The listening address must be
an address of this host; linkd's relay (conformance.emulation.link.Link) is reused unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
from typing import Any

from aiohttp import web

from conformance.emulation import linkd
from conformance.emulation.link import Link, LinkParams, _Connection, _Side, new_event_loop


class BoundLink(Link):
    """A linkd Link that listens on a chosen local address instead of 127.0.0.1."""

    def __init__(self, name: str, upstream: str, params: LinkParams | None = None, *,
                 listen_host: str = "127.0.0.1", seed: int | None = None) -> None:
        super().__init__(name, upstream, params, seed=seed)
        self.listen_host = listen_host

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Side(_Connection(self), is_client=True), self.listen_host, 0, backlog=1024)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["listen_host"] = self.listen_host
        return data


def parse_listen_host(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"listen_host: must be an IPv4 or IPv6 address, got {value!r}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"listen_host: must be an IPv4 or IPv6 address, got {value!r}") from None
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"listen_host: {value} is not a single local address")
    return str(address)


class _Daemon(linkd._Daemon):
    async def put_link(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not linkd._NAME.match(name):
            return linkd._error(400, f"link name {name!r}: 1..128 characters, no whitespace, '/' or control characters")
        body = await linkd._json_object(request)
        if "upstream" not in body:
            return linkd._error(400, "upstream: required, e.g. \"127.0.0.1:8080\"")
        fields = dict(body)
        upstream = fields.pop("upstream")
        try:
            listen_host = parse_listen_host(fields.pop("listen_host", "127.0.0.1"))
            params = LinkParams.from_mapping(fields)
            candidate = BoundLink(name, upstream, params, listen_host=listen_host)
        except ValueError as exc:
            return linkd._error(400, str(exc))
        async with self.lock:
            existing = self.links.get(name)
            if existing is not None:
                if getattr(existing, "listen_host", "127.0.0.1") != listen_host:
                    return linkd._error(400, f"link {name!r} listens on {existing.listen_host}; "
                                             "DELETE it to move it")
                existing.retarget(candidate.upstream)
                existing.update(**params.as_dict())
                return web.json_response(existing.to_dict())
            try:
                await candidate.start()
            except OSError as exc:
                return linkd._error(500, f"cannot listen for link {name!r} on {listen_host}: {exc}")
            self.links[name] = candidate
            return web.json_response(candidate.to_dict())


async def serve(run_id: str | None, parent: int) -> int:
    """linkd.serve with our daemon (same lifetime rules: signals, stdin EOF, parent gone)."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(linkd._quiet_exception_handler)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    daemon = _Daemon(run_id)
    runner = web.AppRunner(linkd.build_app(daemon), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    control_port = runner.addresses[0][1]
    watcher = loop.create_task(linkd._watch_parent(stop, parent))
    stdin_watch = await linkd._watch_stdin(stop)
    try:
        sys.stdout.write(json.dumps({"ready": True, "control_port": control_port, "pid": os.getpid()}) + "\n")
        sys.stdout.flush()
    except OSError:
        pass
    await stop.wait()
    watcher.cancel()
    if stdin_watch is not None:
        stdin_watch.close()
    await daemon.close_all()
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.emulation.docker.relayd",
                                     description="linkd with links bound to chosen local addresses")
    parser.add_argument("--run-id", default=None, help="run id this daemon belongs to (shown in ps and GET /)")
    parent = os.getppid()
    args = parser.parse_args(argv)
    linkd._reduce_timer_slack()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(serve(args.run_id, parent))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
