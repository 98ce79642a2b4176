"""linkd: the WAN link emulator daemon (`python -m conformance.emulation.linkd [--run-id ID]`).

Starts with no links.  Control API: HTTP/JSON on 127.0.0.1, ephemeral port.  When ready it prints
exactly one line on stdout, ``{"ready": true, "control_port": N, "pid": P}``, and flushes.

    GET    /links          -> {"links": [LINK, ...]}
    GET    /links/{name}   -> LINK
    PUT    /links/{name}   {"upstream": "127.0.0.1:PORT", "delay_ms": 0, "jitter_ms": 0, "loss": 0,
                            "bandwidth_bps": null, "partitioned": false, "partition_mode": "hold"} -> LINK
                           creates the link (listening on 127.0.0.1:<ephemeral>).  On an existing
                           link it replaces the upstream and all parameters (missing ones take their
                           defaults) but keeps the listening port and the open connections (which
                           keep their upstream).  Only loopback upstreams are accepted (400 otherwise).
    PATCH  /links/{name}   any subset of delay_ms, jitter_ms, loss, bandwidth_bps, partitioned,
                           partition_mode -> LINK (applies at once, to open connections too).
                           partition_mode "hold": a cut holds bytes and delivers them at heal;
                           "drop": a cut resets every open connection (see link.py)
    DELETE /links/{name}   -> LINK as it was (final stats); its connections are aborted
    GET    /               -> {"service": "linkd", "run_id": ..., "pid": ..., "links": N}

    LINK = {"name", "listen_port", "upstream", "delay_ms", "jitter_ms", "loss", "bandwidth_bps",
            "partitioned", "partition_mode", "stats": {"connections_total", "connections_open",
            "connections_dropped", "bytes_up", "bytes_down", "loss_stalls"}}

Every response is JSON; errors are {"error": "..."} with 400 (invalid input), 404 (unknown link or
path) or 405 (method).  Shaping semantics: see conformance.emulation.link.

Lifetime: exits with status 0, closing every socket, on SIGTERM or SIGINT, and when its parent dies,
detected two ways:
  * stdin EOF, when stdin is a pipe or socket (the harness keeps the other end, as for every child
    of ours): the parent's death closes it, and so does the parent closing it on purpose;
  * os.getppid() polled every second: the parent it started with is gone (it was re-parented).
    This covers stdin from a terminal, a file or /dev/null, which are not watched.
A daemon started directly by PID 1 with no stdin pipe relies on signals alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import stat
import sys
from typing import Any

from aiohttp import web

from conformance.emulation.common import raise_open_files_limit
from conformance.emulation.link import Link, LinkParams, new_event_loop

PARENT_POLL_S = 1.0
_NAME = re.compile(r"^[^\s/\x00-\x1f\x7f]{1,128}$")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class LinkDaemon:
    """The links of one daemon and its control API's handlers; relayd subclasses it (`make_link`)."""

    service = "linkd"

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self.links: dict[str, Link] = {}
        # One request at a time may create or delete links, so a PUT racing a DELETE stays sane.
        self.lock = asyncio.Lock()

    # -- handlers

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"service": self.service, "run_id": self.run_id, "pid": os.getpid(), "links": len(self.links)}
        )

    async def list_links(self, request: web.Request) -> web.Response:
        return web.json_response({"links": [link.to_dict() for link in self.links.values()]})

    async def get_link(self, request: web.Request) -> web.Response:
        link = self._find(request)
        return web.json_response(link.to_dict())

    async def put_link(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _NAME.match(name):
            return _error(400, f"link name {name!r}: 1..128 characters, no whitespace, '/' or control characters")
        body = await _json_object(request)
        if "upstream" not in body:
            return _error(400, "upstream: required, e.g. \"127.0.0.1:8080\"")
        fields = dict(body)
        upstream = fields.pop("upstream")
        try:
            candidate = self.make_link(name, upstream, fields)  # validates (loopback upstreams only)
        except ValueError as exc:
            return _error(400, str(exc))
        async with self.lock:
            existing = self.links.get(name)
            if existing is not None:
                refused = self.refuse_replace(existing, candidate)
                if refused:
                    return _error(400, refused)
                # Replace in place: the listening port and open connections stay (clients keep
                # their address); new connections go to the new upstream.
                existing.retarget(candidate.upstream)
                existing.update(**candidate.params.as_dict())
                return web.json_response(existing.to_dict())
            try:
                await candidate.start()
            except OSError as exc:
                return _error(500, f"cannot listen for link {name!r} on {candidate.listen_host}: {exc}")
            self.links[name] = candidate
            return web.json_response(candidate.to_dict())

    def make_link(self, name: str, upstream: Any, fields: dict[str, Any]) -> Link:
        """A new link from a PUT body (without "upstream"); ValueError names what is wrong."""
        return Link(name, upstream, LinkParams.from_mapping(fields))

    def refuse_replace(self, existing: Link, candidate: Link) -> str | None:
        """Why a PUT may not replace `existing` in place (None: it may)."""
        return None

    async def patch_link(self, request: web.Request) -> web.Response:
        link = self._find(request)
        body = await _json_object(request)
        if "upstream" in body:
            return _error(400, "upstream cannot be changed by PATCH; DELETE and PUT the link again")
        try:
            link.update(**body)
        except ValueError as exc:
            return _error(400, str(exc))
        return web.json_response(link.to_dict())

    async def delete_link(self, request: web.Request) -> web.Response:
        async with self.lock:
            link = self._find(request)
            final = link.to_dict()
            del self.links[link.name]
            await link.close()
        final["stats"] = link.stats()
        return web.json_response(final)

    def _find(self, request: web.Request) -> Link:
        name = request.match_info["name"]
        link = self.links.get(name)
        if link is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no link named {name!r}"}), content_type="application/json"
            )
        return link

    async def close_all(self) -> None:
        links, self.links = list(self.links.values()), {}
        for link in links:
            await link.close()


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads) if request.can_read_body else {}
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not valid JSON: {exc}"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return body


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every response is JSON, also aiohttp's own 404/405 and unexpected failures (no tracebacks)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return _error(exc.status, exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line on stderr, a JSON 500 to the caller
        print(f"linkd: internal error on {request.method} {request.path}: {exc!r}", file=sys.stderr, flush=True)
        return _error(500, f"internal error: {exc!r}")


def build_app(daemon: LinkDaemon) -> web.Application:
    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/", daemon.status)
    app.router.add_get("/links", daemon.list_links)
    app.router.add_get("/links/{name}", daemon.get_link)
    app.router.add_put("/links/{name}", daemon.put_link)
    app.router.add_patch("/links/{name}", daemon.patch_link)
    app.router.add_delete("/links/{name}", daemon.delete_link)
    return app


async def _watch_parent(stop: asyncio.Event, parent: int) -> None:
    if parent == 1:
        return  # started by init (or already orphaned): nothing to watch
    while not stop.is_set():
        await asyncio.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            stop.set()


class _StdinWatch(asyncio.Protocol):
    """Discards whatever arrives on stdin; EOF (or an error) means our parent is gone."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> None:
        self.stop.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop.set()


async def _watch_stdin(stop: asyncio.Event) -> asyncio.BaseTransport | None:
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return None  # no stdin at all
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None  # a terminal, a file or /dev/null: EOF there says nothing about our parent
    stdin = os.fdopen(0, "rb", buffering=0, closefd=False)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: _StdinWatch(stop), stdin)
    return transport


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # One line, no traceback: the relay's expected failures are handled; anything else is a bug
    # worth a line in the log, not a screenful in the harness output.
    exc = context.get("exception")
    print(f"linkd: {context.get('message', 'error')}: {exc!r}", file=sys.stderr, flush=True)


async def serve(run_id: str | None, parent: int, daemon_cls: type[LinkDaemon] = LinkDaemon) -> int:
    """Run the daemon until a signal, or until `parent` (the pid we were started by) is gone."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_exception_handler)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    daemon = daemon_cls(run_id)
    runner = web.AppRunner(build_app(daemon), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = runner.addresses[0][1]
    watcher = loop.create_task(_watch_parent(stop, parent))
    stdin_watch = await _watch_stdin(stop)
    try:
        sys.stdout.write(json.dumps({"ready": True, "control_port": control_port, "pid": os.getpid()}) + "\n")
        sys.stdout.flush()
    except OSError:
        pass  # nobody reads our stdout any more; keep serving until told to stop
    await stop.wait()
    watcher.cancel()
    if stdin_watch is not None:
        stdin_watch.close()
    await daemon.close_all()
    await runner.cleanup()
    return 0


def _reduce_timer_slack() -> None:
    """Ask Linux to wake our timers within 1 us instead of the default 50 us "timer slack".

    Measured on the 2-core dev VM: the median lateness of a 5 ms select() timeout drops from about
    80 us to about 35 us.  Best effort: silently skipped where prctl is not available.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in nanoseconds; applies to this thread
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None, *, daemon_cls: type[LinkDaemon] = LinkDaemon,
         prog: str = "python -m conformance.emulation.linkd", description: str | None = None) -> int:
    """The daemon's command line (relayd's too, with its own daemon class)."""
    parser = argparse.ArgumentParser(prog=prog, description=description or __doc__.splitlines()[0])
    parser.add_argument("--run-id", default=None, help="run id this daemon belongs to (shown in ps and GET /)")
    # Taken first thing: were it read later, a parent dying in between would go unnoticed.
    parent = os.getppid()
    args = parser.parse_args(argv)
    _reduce_timer_slack()
    raise_open_files_limit()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(serve(args.run_id, parent, daemon_cls))
    except KeyboardInterrupt:  # SIGINT before the handlers were installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
