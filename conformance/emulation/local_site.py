"""The local backend's site: one process group on this machine (the `Site` of conformance.emulation.site,
whose restart policy, Restart=on-failure, it follows).

The site is `python -m edge_workloads ...` in a session of its own: signals go to the whole group, so
a site that forks cannot leak grandchildren. In a large deployment the same program is forked by the
deployment's fork server (forkserver.py) instead of exec'd: a process of its own all the same. A
SIGTERM from outside the API makes the site stop cleanly (status 0), so it stays down, as systemd's
on-failure policy does for SIGTERM.

A restarted site gets its old port back (`--port N`, and its management port), so the WAN and access
links in front of it and the target file stay valid; the port is briefly free, and if something else
grabbed it the restart is retried with backoff. Its data dir survives restarts: durability is part
of what the suites check.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..model.topology import SiteSpec
from . import procs
from .site import RUNNING, Site, workload_config

WORKLOAD_MODULE = "edge_workloads"
STOP_GRACE_S = 5.0


class LocalSite(Site):
    def __init__(self, spec: SiteSpec, *, run_id: str, data_dir: Path, log_path: Path,
                 start_timeout: float, on_change: Callable[[], None] | None = None, mgmt: Any = None,
                 forkserver: Any = None):
        super().__init__(spec, run_id=run_id, start_timeout=start_timeout, on_change=on_change, mgmt=mgmt)
        self.forkserver = forkserver          # forkserver.ForkServer: forked, not exec'd (large fleets)
        self.data_dir = data_dir
        self.log_path = log_path
        self.mgmt_port = 0 if mgmt is not None else None  # 0 until first start, then kept
        self.proc: Any = None                 # asyncio's Process, or a forkserver.ForkedProcess
        self.last_pid: int | None = None      # the latest process, also once it is gone

    # ------------------------------------------------------------------ argv

    def argv(self) -> list[str]:
        args = ["--role", self.spec.workload, "--name", self.name, "--data-dir", str(self.data_dir),
                "--port", str(self.port)]
        if self.central_url:
            args += ["--central-url", self.central_url]
        if self.spec.defects:
            args += ["--defects", ",".join(self.spec.defects)]
        config = workload_config(self.spec)
        if config:
            args += ["--site-config", json.dumps(config, sort_keys=True)]
        if self.mgmt is not None:
            args += self.mgmt.argv(self.mgmt_port or 0)
        return procs.module_argv(WORKLOAD_MODULE, *args)

    # ------------------------------------------------------------------ the Site primitives

    async def _alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def _launch(self, state: str) -> None:
        self.state = state
        self.data_dir.mkdir(parents=True, exist_ok=True)
        proc, ready = await procs.spawn(self.argv(), run_id=self.run_id, log_path=self.log_path,
                                        timeout=self.start_timeout, forkserver=self.forkserver)
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

    async def _halt(self) -> None:
        """SIGTERM the group (SIGKILL after STOP_GRACE_S)."""
        # Forget the process first, so its watcher knows this exit was asked for.
        proc, self.proc = self.proc, None
        if proc is not None:
            self.last_exit = await procs.reap(proc, grace=STOP_GRACE_S)

    async def _kill(self) -> int | None:
        assert self.proc is not None
        procs.signal_group(self.proc.pid, signal.SIGKILL)
        return await self.proc.wait()

    async def _pause(self) -> None:
        assert self.proc is not None
        procs.signal_group(self.proc.pid, signal.SIGSTOP)

    async def _resume(self) -> None:
        assert self.proc is not None
        procs.signal_group(self.proc.pid, signal.SIGCONT)

    async def _remove(self, keep_logs_to: Any = None) -> None:
        await self._halt()  # the log is a file of the state dir already

    async def _watch(self, proc: Any) -> None:
        code = await proc.wait()
        if proc is not self.proc or not self.want_running or self.closing:
            return  # a stop/restart through the API, or shutdown: they own what happens next
        procs.signal_group(proc.pid, signal.SIGKILL)  # grandchildren die with their site
        self.exited(code)

    # ------------------------------------------------------------------ reporting

    def data_path(self) -> Path:
        return self.data_dir

    def pid(self) -> int | None:
        proc = self.proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def status(self) -> dict[str, Any]:
        return {**super().status(), "last_pid": self.last_pid, "data_dir": str(self.data_dir),
                "log": str(self.log_path)}

    def target_hosts(self) -> list[str]:
        return ["local://"]

    def target_labels(self) -> dict[str, Any]:
        # A site that is down keeps its last pid: process checks then find it not running
        # (resolve_site_root follows a restarted one by its data dir) instead of skipping.
        return {"workload": self.spec.workload, "pid": self.pid() or self.last_pid,
                "data_dir": str(self.data_dir), "resources_cpus": self.spec.resources.cpus,
                "resources_memory": self.spec.resources.memory_bytes, "defects": list(self.spec.defects),
                "log": str(self.log_path)}
