"""Process lifecycle of one site: listen, announce readiness, run until told to stop, stop cleanly.

The harness reads exactly one JSON line from stdout ({"ready": true, "port": ...}) and keeps stdin as
a pipe: when the harness dies its end closes, we see EOF and exit, so no site outlives its harness.
SIGTERM and SIGINT stop the site the same way, without a traceback.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import sys
import threading

from aiohttp import web

from . import VERSION
from .common import add_basic_routes, make_middleware
from .context import Site, log
from .options import SiteOptions
from .metrics import Metrics
from .settings import Settings
from .store import Database, database_path

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024 * 1024   # telemetry batches can be large; anything bigger is a client bug
SHUTDOWN_GRACE_S = 1.0        # in-flight requests get this long after a stop signal


class StartupError(Exception):
    """A problem with the arguments or the environment, reported as one line with exit 2."""


async def serve(options: SiteOptions) -> int:
    lock = _lock_data_dir(options.data_dir)
    settings = Settings(options.site_config)
    site = Site(options, settings, Database(database_path(options.data_dir)),
                Metrics(options.role, options.name, VERSION, options.defects))
    if options.role == "edge":   # import only the role we run: less memory per site
        from .edge import build
    else:
        from .central import build
    schema, services = build(site)
    await site.db.open(schema)

    app = web.Application(middlewares=[make_middleware(site)], client_max_size=MAX_BODY)
    add_basic_routes(app, site)
    for service in services:
        if hasattr(service, "add_routes"):
            service.add_routes(app)
    for service in services:
        if hasattr(service, "start"):
            await service.start()

    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, options.port, backlog=1024).start()
    except OSError as exc:
        await _shutdown(site, runner, services)
        raise StartupError(f"cannot listen on {HOST}:{options.port}: {exc.strerror or exc}") from None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _watch_stdin(loop, stop, options.name)

    _announce({"ready": True, "port": runner.addresses[0][1], "pid": os.getpid(),
               "role": options.role, "name": options.name})
    await stop.wait()
    await _shutdown(site, runner, services)
    lock.close()
    return 0


async def _shutdown(site: Site, runner: web.AppRunner, services: list[object]) -> None:
    await site.background.stop()
    await runner.cleanup()
    for service in reversed(services):
        if hasattr(service, "stop"):
            await service.stop()
    await site.db.close()


def _announce(ready: dict) -> None:
    try:
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass   # nobody reads stdout; the site still serves


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, name: str) -> None:
    """Stop on EOF of stdin. A terminal is left alone (Ctrl-C works there)."""
    try:
        if os.isatty(0):
            return
        os.fstat(0)
    except OSError:
        return   # no stdin at all: nothing to watch

    def watch() -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            return
        try:
            loop.call_soon_threadsafe(stop.set)
            log(name, "stdin closed; shutting down")
        except RuntimeError:
            pass   # the loop is already gone: we are shutting down anyway

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def _lock_data_dir(data_dir: str):
    """One site per data dir; the kernel drops the lock when the process dies, even by SIGKILL."""
    try:
        os.makedirs(data_dir, exist_ok=True)
        lock = open(os.path.join(data_dir, "site.lock"), "a+")
    except OSError as exc:
        raise StartupError(f"--data-dir {data_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise StartupError(f"--data-dir {data_dir} is in use by pid {holder}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock
