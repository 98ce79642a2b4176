"""One emulated site process and its life: start, stop, kill, pause, and restart on crash.

Like systemd's `Restart=on-failure` on a real edge box: a site that dies by a signal or with a
non-zero status without being stopped through the control API is started again after
RESTART_DELAY_S, and `restarts` counts those automatic restarts (systemd's NRestarts). A site that
exits with status 0 by itself is left down in state `exited` (a clean exit is not a failure: a
badly daemonising service stays dead, and process checks must see that) until `start` or
`restart`. A SIGTERM from outside the API makes the site stop cleanly (status 0), so it stays down,
as systemd's on-failure policy does for SIGTERM. A deliberate `restart` is a stop plus a start and
is not counted.

A restarted site gets its old port back (`--port N`), so the WAN and access links in front of it and
the target file stay valid; the port is briefly free, and if something else grabbed it we keep
retrying with backoff. Its data dir survives restarts: durability is part of what the suites check.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..model.topology import SiteSpec
from . import procs

WORKLOAD_MODULE = "edge_workloads"
RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 5.0
STOP_GRACE_S = 5.0

# States shown by GET /status.
STARTING, RUNNING, PAUSED, STOPPED, RESTARTING = "starting", "running", "paused", "stopped", "restarting"
EXITED = "exited"  # exited with status 0 on its own: not restarted (Restart=on-failure)


class ManagedSite:
    def __init__(self, spec: SiteSpec, *, run_id: str, data_dir: Path, log_path: Path,
                 start_timeout: float, on_change: Callable[[], None] | None = None):
        self.spec = spec
        self.name = spec.name
        self.run_id = run_id
        self.data_dir = data_dir
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.central_url: str | None = None   # set by the supervisor for edge workloads (the WAN link)
        self.port = 0                         # 0 until first start, then kept across restarts
        self.mgmt = None                      # pki.SiteTls: serve the TLS management interface
        self.mgmt_port = 0                    # like port: 0 until first start, then kept
        self.proc: asyncio.subprocess.Process | None = None
        self.state = STOPPED
        self.restarts = 0
        self.last_exit: int | None = None
        self.last_pid: int | None = None      # the latest process, also once it is gone
        self.started_at: float | None = None
        self.want_running = False
        self.closing = False                  # the whole deployment is going down: never restart
        self.lock = asyncio.Lock()            # one lifecycle action at a time
        self._on_change = on_change or (lambda: None)
        self._restart_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ argv

    def argv(self) -> list[str]:
        args = ["--role", self.spec.workload, "--name", self.name, "--data-dir", str(self.data_dir),
                "--port", str(self.port)]
        if self.central_url:
            args += ["--central-url", self.central_url]
        if self.spec.defects:
            args += ["--defects", ",".join(self.spec.defects)]
        if self.spec.config:
            args += ["--site-config", json.dumps(self.spec.config, sort_keys=True)]
        if self.mgmt is not None:
            args += self.mgmt.argv(self.mgmt_port)
        return procs.module_argv(WORKLOAD_MODULE, *args)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start (if not running) and wait for the ready line; raises procs.SpawnError."""
        async with self.lock:
            self.want_running = True
            if self.proc is not None and self.proc.returncode is None:
                return
            await self._spawn_or_give_up(STARTING)

    async def _spawn_or_give_up(self, state: str) -> None:
        """An asked-for start that fails leaves the site stopped (and says why) rather than retrying."""
        try:
            await self._spawn(state)
        except procs.SpawnError:
            self.want_running = False
            self.state = STOPPED
            self._on_change()
            raise

    async def _spawn(self, state: str) -> None:
        self.state = state
        self.data_dir.mkdir(parents=True, exist_ok=True)
        proc, ready = await procs.spawn(self.argv(), run_id=self.run_id, log_path=self.log_path,
                                        timeout=self.start_timeout)
        if self.closing:  # the deployment started going down while we waited
            await procs.reap(proc)
            raise procs.SpawnError("deployment is shutting down")
        self.proc = proc
        self.last_pid = proc.pid
        self.port = int(ready["port"])
        if self.mgmt is not None:
            self.mgmt_port = int(ready["mgmt_port"])
        self.started_at = time.time()
        self.state = RUNNING
        asyncio.get_running_loop().create_task(self._watch(proc))
        self._on_change()

    async def stop(self) -> None:
        """SIGTERM the group and keep it down (SIGKILL after STOP_GRACE_S)."""
        async with self.lock:
            self.want_running = False
            self._cancel_restart()
            await self._terminate()
            self.state = STOPPED
            self._on_change()

    async def restart(self) -> None:
        async with self.lock:
            self.want_running = True
            self._cancel_restart()
            await self._terminate()
            await self._spawn_or_give_up(RESTARTING)

    async def kill(self) -> None:
        """SIGKILL: a crash. The restart policy brings the site back."""
        async with self.lock:
            proc = self.proc
            if proc is None or proc.returncode is not None:
                raise StateError(f"site {self.name} is not running (state {self.state})")
            procs.signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
            self.state = RESTARTING  # what the watcher is about to do; answer with it already

    async def pause(self) -> None:
        async with self.lock:
            proc = self._running("pause")
            procs.signal_group(proc.pid, signal.SIGSTOP)
            self.state = PAUSED

    async def resume(self) -> None:
        async with self.lock:
            proc = self.proc
            if proc is not None and proc.returncode is None:
                procs.signal_group(proc.pid, signal.SIGCONT)
                self.state = RUNNING

    async def close(self) -> None:
        """Deployment shutdown: no more restarts, process group gone."""
        self.closing = True
        self.want_running = False
        self._cancel_restart()
        await self._terminate()
        self.state = STOPPED

    # ------------------------------------------------------------------ internals

    def _running(self, action: str) -> asyncio.subprocess.Process:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            raise StateError(f"cannot {action} site {self.name}: it is {self.state}")
        return proc

    async def _terminate(self) -> None:
        # Forget the process first, so its watcher knows this exit was asked for.
        proc, self.proc = self.proc, None
        if proc is not None:
            self.last_exit = await procs.reap(proc, grace=STOP_GRACE_S)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if proc is not self.proc or not self.want_running or self.closing:
            return  # a stop/restart through the API, or shutdown: they own what happens next
        self.last_exit = code
        procs.signal_group(proc.pid, signal.SIGKILL)  # grandchildren die with their site
        if code == 0:  # a clean exit is not a failure: Restart=on-failure leaves it down
            self.state = EXITED
            self._on_change()
            _log(f"site {self.name} exited with status 0 by itself; not restarting (on-failure policy)")
            return
        self.state = RESTARTING
        self._on_change()
        _log(f"site {self.name} exited with status {code}; restarting in {RESTART_DELAY_S:g} s")
        self._restart_task = asyncio.get_running_loop().create_task(self._restart_after_crash(proc))

    async def _restart_after_crash(self, dead: asyncio.subprocess.Process) -> None:
        delay = RESTART_DELAY_S
        while True:
            await asyncio.sleep(delay)
            async with self.lock:
                if self.closing or not self.want_running or self.proc is not dead:
                    return  # someone stopped, restarted or started it meanwhile
                try:
                    await self._spawn(RESTARTING)
                    self.restarts += 1
                    self._on_change()
                    return
                except procs.SpawnError as exc:
                    _log(f"site {self.name} failed to restart: {exc}")
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    def _cancel_restart(self) -> None:
        if self._restart_task is not None and self._restart_task is not asyncio.current_task():
            self._restart_task.cancel()
        self._restart_task = None

    # ------------------------------------------------------------------ reporting

    def status(self) -> dict[str, Any]:
        proc = self.proc
        alive = proc is not None and proc.returncode is None
        return {"name": self.name, "role": self.spec.role, "workload": self.spec.workload,
                "uplink": self.spec.uplink, "pid": proc.pid if alive else None, "port": self.port,
                "state": self.state, "restarts": self.restarts, "last_exit": self.last_exit,
                "last_pid": self.last_pid,
                "defects": list(self.spec.defects), "data_dir": str(self.data_dir),
                "log": str(self.log_path)}


class StateError(Exception):
    """The action does not fit the site's state (409)."""


def _log(message: str) -> None:
    print(f"supervisor: {message}", file=sys.stderr, flush=True)

