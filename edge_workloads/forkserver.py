"""A fork server for site processes: many sites on one machine at a fraction of the memory.

    python -m edge_workloads.forkserver --control-fd N [--title-space PADDING]

A site started as `python -m edge_workloads ...` pays for a whole interpreter and its imports (about
36 MiB resident, 0.15 s of CPU). This process imports the workloads once, freezes what it imported
(gc.freeze: the collector never touches those pages again, so they stay shared), and then forks one
child per site on request. Each child is still a process of its own, with its own pid, session,
ports, data dir, SQLite store, stdin life-line and log, running exactly `edge_workloads.cli.main`
with the site's arguments: kill, pause, restart, crash isolation and every per-process measurement
(RSS, CPU, listening ports, open files) behave as for a site started the ordinary way. What a fork
saves is the memory the sites share (code, modules) and the start-up time.

Protocol on the control socket (AF_UNIX, SOCK_SEQPACKET, one JSON object per message):
  harness -> server  {"id": N, "argv": [...]}, with three file descriptors attached (SCM_RIGHTS):
                     the child's stdin, stdout and stderr
  server -> harness  {"id": N, "pid": PID}                     the child exists
                     {"id": N, "error": "..."}                 it could not be forked
                     {"exit": PID, "code": C}                  a child ended (C < 0: killed by signal -C)
The server prints one ready line on stdout once the imports are done, and exits when its stdin
closes (the harness's life-line) or the control socket does. Its children do not die with it: each
has its own life-line, its stdin, held by the harness.

A child's command line reads as the ordinary one (`python -m edge_workloads --role ... --data-dir
...`), so process checks and leftover sweeps find a site by its data dir as before. The title is
written into this server's own argv area (setproctitle with SPT_NOENV, so the environment, which
carries the run labels, stays readable); --title-space reserves that area.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import selectors
import signal
import socket
import sys
import traceback

MAX_MESSAGE = 1 << 20
WORKLOAD_MODULE = "edge_workloads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_workloads.forkserver")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--title-space", default="", help="padding: room for the children's titles")
    args = parser.parse_args(argv)

    _preload()
    control = socket.socket(fileno=args.control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)   # a handler, so the wakeup fd hears of it
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)       # seen through the wakeup fd: stop serving
    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    _serve(control, wake_r)
    return 0


def _preload() -> None:
    """Import everything a site imports, then freeze it: the children share those pages."""
    from .lean import prepare_site_process

    prepare_site_process(tls=True)   # emulated sites serve their management interface over TLS
    import asyncio  # noqa: F401
    import sqlite3  # noqa: F401

    import aiohttp.web  # noqa: F401

    from . import central, cli, edge, mgmt, runtime  # noqa: F401
    try:
        import setproctitle  # noqa: F401
    except ImportError:
        pass
    gc.collect()
    gc.freeze()


def _serve(control: socket.socket, wake_r: int) -> None:
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "control")
    selector.register(wake_r, selectors.EVENT_READ, "signal")
    selector.register(0, selectors.EVENT_READ, "stdin")
    children: dict[int, int] = {}   # pid -> request id
    while True:
        for key, _ in selector.select():
            if key.data == "control":
                try:
                    message, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 3)
                except OSError:
                    return
                if not message:
                    return
                _fork_one(control, message, fds, children, selector)
            elif key.data == "signal":
                signals = os.read(wake_r, 512)
                _reap(control, children)
                if {signal.SIGTERM, signal.SIGINT} & set(signals):
                    return
            elif not os.read(0, 4096):   # stdin closed: the harness is gone
                return


def _fork_one(control: socket.socket, message: bytes, fds: list[int], children: dict[int, int],
              selector: selectors.BaseSelector) -> None:
    request_id = None
    try:
        request = json.loads(message)
        request_id = request["id"]
        site_argv = [str(a) for a in request["argv"]]
        if len(fds) != 3:
            raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    except (ValueError, KeyError, TypeError, OSError) as exc:
        for fd in fds:
            os.close(fd)
        _send(control, {"id": request_id, "error": str(exc)})
        return
    if pid == 0:
        _child(site_argv, fds, selector)   # never returns
    for fd in fds:
        os.close(fd)
    children[pid] = request_id
    _send(control, {"id": request_id, "pid": pid})


def _child(site_argv: list[str], fds: list[int], selector: selectors.BaseSelector) -> None:
    code = 1
    try:
        selector.close()
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        os.setsid()   # its own session and process group, as a site started by exec has
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))   # the control socket, the other sites' pipes
        sys.argv = [sys.executable, "-m", WORKLOAD_MODULE, *site_argv]
        _set_title(" ".join(sys.argv))
        from .cli import main as site_main

        code = site_main(site_argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must never return into the server's loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:
        return   # the command line then reads as the server's; the harness still knows the pid
    setproctitle.setproctitle(title)


def _reap(control: socket.socket, children: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.pop(pid, None)
        _send(control, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _send(control: socket.socket, message: dict) -> None:
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        pass   # the harness is gone; our stdin tells us so next


if __name__ == "__main__":
    sys.exit(main())
