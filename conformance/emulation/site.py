"""What every emulated site is, whatever runs it: its lifecycle, and the restart policy, once.

A backend (conformance.emulation.backends) runs sites its own way: the local backend as a process
group (sites.LocalSite), the docker backend as a container (docker.backend.DockerSite). Both are a
`Site`: the supervisor and its control API drive them through the same calls, `start`, `stop`,
`restart`, `kill`, `pause`, `resume`, `close` and `status`, and both are polled at the same
`health_url`. `backup`, `wipe` and `restore` (an operator's backup tool, emulation/backup.py) work on
a backend that gives the site's data directory (`data_path`): the local backend. A backend supplies
only the primitives (`_alive`, `_launch`, `_halt`, `_kill`, `_pause`, `_resume`, `_remove`) and tells
the site when what runs it ended unasked (`exited`).

The restart policy is systemd's `Restart=on-failure`, as on a real edge box: a site that dies by a
signal or with a non-zero status without being stopped through the control API is started again
after RESTART_DELAY_S (doubling up to MAX_RESTART_DELAY_S while the start fails), and `restarts`
counts those automatic restarts (systemd's NRestarts). A site that exits with status 0 by itself is
left down in state `exited` (a clean exit is not a failure: a badly daemonising service stays dead,
and process checks must see that) until `start` or `restart`. A deliberate `restart` is a stop plus
a start and is not counted. A restarted site keeps its ports and its data.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from edge_workloads.defects import readiness_path

from ..model.topology import SiteSpec
from . import backup as backups
from .common import log
from .procs import SpawnError

# Keys of a topology site's `config:` that are meant for a backend, not for the workload: docker's
# `stack` (the site's extra services, docker.STACK_KEY). A backend without them ignores them.
BACKEND_CONFIG_KEYS = ("stack",)
RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 5.0

# States shown by GET /status.
STARTING, RUNNING, PAUSED, STOPPED, RESTARTING = "starting", "running", "paused", "stopped", "restarting"
EXITED = "exited"  # exited with status 0 on its own: not restarted (Restart=on-failure)


def workload_config(spec: SiteSpec) -> dict[str, Any]:
    """The site's config without the backends' own keys: what the workload gets as --site-config."""
    return {k: v for k, v in spec.config.items() if k not in BACKEND_CONFIG_KEYS}


class StateError(Exception):
    """The action does not fit the site's state (409)."""


# The restore-loses-records defect (edge_workloads/defects.py) is the emulated operator's restore tool's
# fault: it drops every tenth row of the POS table of what it restores.
LOSSY_RESTORE_DEFECT, LOSSY_RESTORE_TABLE = "restore-loses-records", "pos_tx"


class Site(ABC):
    """One site of a deployment and its life. Subclasses implement the primitives below."""

    def __init__(self, spec: SiteSpec, *, run_id: str, start_timeout: float,
                 on_change: Callable[[], None] | None = None, mgmt: Any = None):
        self.spec = spec
        self.name = spec.name
        self.run_id = run_id
        self.start_timeout = start_timeout
        self.central_url: str | None = None   # set by the supervisor for edge workloads (the WAN link)
        self.port = 0                         # the site's HTTP port, kept across restarts
        self.mgmt = mgmt                      # pki.SiteTls: serve the TLS management interface
        self.mgmt_port: int | None = None     # its port, kept across restarts
        self.state = STOPPED
        self.restarts = 0
        self.last_exit: int | None = None
        self.started_at: float | None = None
        self.want_running = False
        self.closing = False                  # the whole deployment is going down: never restart
        self.lock = asyncio.Lock()            # one lifecycle action at a time
        self._on_change = on_change or (lambda: None)
        self._restart_task: asyncio.Task | None = None
        self.backups_taken = 0

    # ------------------------------------------------------------------ what a backend supplies

    @abstractmethod
    async def _alive(self) -> bool:
        """What runs the site is running now (paused counts as running)."""

    @abstractmethod
    async def _launch(self, state: str) -> None:
        """Start it in `state` and wait until it is ready (then RUNNING, or EXITED); SpawnError if not."""

    @abstractmethod
    async def _halt(self) -> None:
        """Stop it (gracefully, then by force) as asked through the API; record `last_exit`."""

    @abstractmethod
    async def _kill(self) -> int | None:
        """SIGKILL it, as a crash would, and wait for it; its exit status."""

    @abstractmethod
    async def _pause(self) -> None: ...

    @abstractmethod
    async def _resume(self) -> None: ...

    @abstractmethod
    async def _remove(self, keep_logs_to: Any = None) -> None:
        """Deployment shutdown: make it gone (its logs saved to `keep_logs_to` where the backend keeps
        them nowhere else)."""

    @abstractmethod
    def target_hosts(self) -> list[str]:
        """The target file's `hosts` of the site (testinfra)."""

    @abstractmethod
    def target_labels(self) -> dict[str, Any]:
        """The target file's `labels` of the site."""

    def extra_endpoints(self) -> dict[str, str]:
        """Endpoints beyond api, direct, wan and mgmt that the backend offers."""
        return {}

    @property
    def health_path(self) -> str:
        """Where a supervisor polls the site to see it is up: /health, or /ping on a `health-broken`
        site, whose /health lies by design (the suites judge that)."""
        return readiness_path(self.spec.defects)

    @property
    def health_url(self) -> str:
        """health_path on the site's own port (no emulated link)."""
        return f"http://127.0.0.1:{self.port}{self.health_path}"

    # ------------------------------------------------------------------ lifecycle (the control API)

    async def start(self) -> None:
        """Start (if not running) and wait until it is ready; raises procs.SpawnError."""
        async with self.lock:
            self.want_running = True
            if await self._alive():
                return
            await self._launch_or_give_up(STARTING)

    async def stop(self) -> None:
        """Stop it and keep it down."""
        async with self.lock:
            self.want_running = False
            self._cancel_restart()
            await self._halt()
            self.state = STOPPED
            self._on_change()

    async def restart(self) -> None:
        """Stop + start (not counted in `restarts`)."""
        async with self.lock:
            self.want_running = True
            self._cancel_restart()
            await self._halt()
            await self._launch_or_give_up(RESTARTING)

    async def kill(self) -> None:
        """SIGKILL: a crash. The restart policy brings the site back."""
        async with self.lock:
            if not await self._alive():
                raise StateError(f"site {self.name} is not running (state {self.state})")
            code = await self._kill()
            self.exited(code)
            self.state = RESTARTING  # what the policy is about to do; answer with it already

    async def pause(self) -> None:
        async with self.lock:
            if not await self._alive():
                raise StateError(f"cannot pause site {self.name}: it is {self.state}")
            await self._pause()
            self.state = PAUSED

    async def resume(self) -> None:
        async with self.lock:
            if await self._alive():
                await self._resume()
                self.state = RUNNING

    # ------------------------------------------------------------------ backup and restore

    def data_path(self) -> Any:
        """The site's data directory (a Path) where the backend can reach it, else None."""
        return None

    def _backups_dir(self) -> Any:
        data = self.data_path()
        return data.parent / "backups" if data is not None else None

    def _require_data(self, action: str) -> Any:
        data = self.data_path()
        if data is None:
            raise StateError(f"site {self.name}: {action} needs the site's data directory, which this "
                             "backend does not give (the local backend does)")
        return data

    async def backup(self) -> dict[str, Any]:
        """A live backup of the site's data (it keeps running); answers the backup's name and size."""
        data = self._require_data("backup")
        async with self.lock:
            self.backups_taken += 1
            name = f"{self.name}-{self.backups_taken}.tar.gz"
            try:
                info = await asyncio.to_thread(backups.archive_site, data, self._backups_dir() / name)
            except (backups.BackupError, OSError) as exc:
                raise StateError(f"site {self.name}: backup failed: {exc}") from None
        return {**{k: v for k, v in info.items() if k != "archive"}, "backup": name}

    async def wipe(self) -> None:
        """Stop the site, remove its data (a reinstalled box), start it again empty."""
        data = self._require_data("wipe")
        async with self.lock:
            self.want_running = True
            self._cancel_restart()
            await self._halt()
            await asyncio.to_thread(backups.wipe_site, data)
            await self._launch_or_give_up(RESTARTING)

    async def restore(self, name: str) -> None:
        """Stop the site, replace its data with backup `name` (as `backup` answered), start it."""
        data = self._require_data("restore")
        archive = self._backups_dir() / name
        if "/" in name or name.startswith(".") or not archive.is_file():
            raise StateError(f"site {self.name}: no backup {name!r}")
        async with self.lock:
            self.want_running = True
            self._cancel_restart()
            await self._halt()
            try:
                await asyncio.to_thread(backups.restore_site, archive, data)
            except (backups.BackupError, OSError) as exc:
                await self._launch_or_give_up(RESTARTING)  # back with what it had
                raise StateError(f"site {self.name}: restore failed: {exc}") from None
            if LOSSY_RESTORE_DEFECT in self.spec.defects:
                dropped = await asyncio.to_thread(backups.lose_records, data, LOSSY_RESTORE_TABLE)
                log(f"site {self.name}: {LOSSY_RESTORE_DEFECT}: dropped {dropped} restored records")
            await self._launch_or_give_up(RESTARTING)

    async def close(self, keep_logs_to: Any = None) -> None:
        """Deployment shutdown: no more restarts, and nothing of the site left running."""
        self.closing = True
        self.want_running = False
        self._cancel_restart()
        await self._remove(keep_logs_to)
        self.state = STOPPED

    async def _launch_or_give_up(self, state: str) -> None:
        """An asked-for start that fails leaves the site stopped (and says why) rather than retrying."""
        try:
            await self._launch(state)
        except SpawnError:
            self.want_running = False
            self.state = STOPPED
            self._on_change()
            raise

    # ------------------------------------------------------------------ the restart policy

    def exited(self, code: int | None, *, oom: bool = False) -> None:
        """What runs the site ended without being asked to (a backend calls this on the event loop):
        status 0 by itself stays down (EXITED); anything else (a signal, a non-zero status, an OOM
        kill) is restarted after RESTART_DELAY_S."""
        if self.closing or not self.want_running:
            return  # a stop through the API, or shutdown: they own what happens next
        self.last_exit = code
        if code == 0 and not oom:
            if self.state != EXITED:
                self._cancel_restart()
                self.state = EXITED
                self._on_change()
                log(f"site {self.name} exited with status 0 by itself; not restarting (on-failure policy)")
            return
        if self._restart_task is not None and not self._restart_task.done():
            return  # already on its way back
        self.state = RESTARTING
        self._on_change()
        log(f"site {self.name} exited with status {code}; restarting in {RESTART_DELAY_S:g} s")
        self._restart_task = asyncio.get_running_loop().create_task(self._restart_after_crash())

    async def _restart_after_crash(self) -> None:
        delay = RESTART_DELAY_S
        while True:
            await asyncio.sleep(delay)
            async with self.lock:
                if self.closing or not self.want_running:
                    return  # someone stopped it meanwhile
                if await self._alive():
                    if self.state == RESTARTING:
                        self.state = RUNNING
                    return  # someone started or restarted it meanwhile
                try:
                    await self._launch(RESTARTING)
                    self.restarts += 1
                    self._on_change()
                    return
                except SpawnError as exc:
                    log(f"site {self.name} failed to restart: {exc}")
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    def _cancel_restart(self) -> None:
        task = self._restart_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._restart_task = None

    # ------------------------------------------------------------------ reporting

    @abstractmethod
    def pid(self) -> int | None:
        """The pid of the site's main process while it runs (or is paused), else None."""

    def status(self) -> dict[str, Any]:
        """GET /status's entry of the site; backends add their own fields."""
        return {"name": self.name, "role": self.spec.role, "workload": self.spec.workload,
                "uplink": self.spec.uplink, "pid": self.pid(), "port": self.port, "state": self.state,
                "restarts": self.restarts, "last_exit": self.last_exit, "defects": list(self.spec.defects)}
