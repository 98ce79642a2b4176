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

from .version import VERSION
from .common import add_basic_routes, make_middleware
from .context import Site, log
from .options import SiteOptions
from .metrics import Metrics
from .settings import Settings
from .store import Database, database_path

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024 * 1024   # telemetry batches can be large; anything bigger is a client bug
SHUTDOWN_GRACE_S = 1.0        # in-flight requests get this long after a stop signal
EXIT_AFTER_START_S = 1.0      # exits-after-start defect: lifetime after the ready line
MEMORY_HOG_BYTES = 640 * 2**20  # memory-hog defect: resident ballast (above the 512 MiB profiles' bound)


class StartupError(Exception):
    """A problem with the arguments or the environment, reported as one line with exit 2."""


async def serve(options: SiteOptions) -> int:
    lock = _lock_data_dir(options.data_dir)
    ballast = _memory_hog() if "memory-hog" in options.defects else None
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
    mgmt_runner, mgmt_port = None, None
    if options.mgmt is not None:   # the TLS management interface, on its own port (mgmt.py)
        from .mgmt import MgmtError, start as start_mgmt

        try:
            mgmt_runner, mgmt_port = await start_mgmt(site, options.mgmt, HOST, runner.addresses[0][1])
        except MgmtError as exc:
            await _shutdown(site, runner, services)
            raise StartupError(str(exc)) from None

    debug_port = None
    if site.has("extra-listener"):
        try:
            debug_port = await _debug_listener(site)
        except StartupError:
            if mgmt_runner is not None:
                await mgmt_runner.cleanup()
            await _shutdown(site, runner, services)
            raise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _watch_stdin(loop, stop, options.name)

    _announce({"ready": True, "port": runner.addresses[0][1], "pid": os.getpid(),
               "role": options.role, "name": options.name,
               **({"mgmt_port": mgmt_port} if mgmt_port is not None else {})})
    if site.has("exits-after-start"):
        # The exits-after-start defect: a badly daemonising service whose main process becomes ready
        # and then exits cleanly (status 0), e.g. after forking off a worker that is not there. A
        # supervisor with Restart=on-failure leaves it dead; a process check must see it gone.
        def exit_now() -> None:
            log(options.name, "exits-after-start defect: exiting with status 0")
            stop.set()
        loop.call_later(EXIT_AFTER_START_S, exit_now)
    await stop.wait()
    if mgmt_runner is not None:
        await mgmt_runner.cleanup()
    if debug_port is not None:
        debug_port.close()
    await _shutdown(site, runner, services)
    lock.close()
    del ballast
    return 0


def _memory_hog() -> bytes:
    """The memory-hog defect: a site that holds far more memory than it needs (an unbounded cache, a
    leak). The bytes are written (not just reserved), so every page is resident and counts in RSS;
    footprint.memory must see it."""
    return b"\xa5" * MEMORY_HOG_BYTES


async def _debug_listener(site: Site) -> asyncio.AbstractServer:
    """The extra-listener defect: an undeclared TCP listener in the site's own process on all
    interfaces (a forgotten debug or metrics port), attack surface nobody declared. It closes every
    connection at once; security.listening_ports must count it as unexpected."""
    async def close_at_once(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    try:
        # On the site's own address: loopback on the local backend (emulated sites never listen beyond
        # this machine), every interface inside a container (siteinit sets HOST to 0.0.0.0)
        server = await asyncio.start_server(close_at_once, HOST, 0)
    except OSError as exc:
        raise StartupError(f"extra-listener defect: cannot listen on {HOST}: "
                           f"{exc.strerror or exc}") from None
    port = server.sockets[0].getsockname()[1]
    log(site.name, f"extra-listener defect: undeclared debug port {HOST}:{port}")
    return server


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
