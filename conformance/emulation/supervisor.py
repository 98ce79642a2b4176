"""The supervisor: the single owner of one emulated deployment on this machine, whatever runs its sites.

`Supervisor` is what every backend shares (conformance.emulation.backends names them): the ready
line, the registry entry, the control API (conformance.emulation.control), the target file and
state.json, the health wait of bring-up, stdin/signal handling and the order of teardown. A backend
subclass (local.LocalSupervisor, docker.docker_supervisor.DockerSupervisor) brings up its links and
its sites (`Site`s, conformance.emulation.site, which carry the restart policy) and drives its links.
The command line that runs one is conformance.emulation.supervise.

Bring-up: the control API, the management interface's CA, certificates and password (STATE_DIR/pki),
then the backend's links and sites, then every site answers /health directly and through its access
link. It then writes STATE_DIR/target.yaml and STATE_DIR/state.json, registers the run, and prints
one line:

    {"ready": true, "control_url": "http://127.0.0.1:N", "target_file": "...", "pid": P, ...}

or, if bring-up fails, {"ready": false, "error": "..."} and exits 1.

It then serves the control API and restarts crashed sites, until its stdin closes (the harness died;
disabled by --detach), SIGTERM/SIGINT/SIGHUP, or POST /shutdown. Then it removes everything it made:
its sites, its links, leftover processes labelled with the run id, the backend's leftovers, the files
and directories it created (unless --keep), and its registry entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from ..model.topology import LinkSpec, Topology
from . import pki, procs, state
from .backends import BackendUnavailable
from .common import emit, log, utc_now
from .linkctl import Linkd, LinkdError
from .site import EXITED, STARTING, STOPPED, Site

DEFAULT_TIMEOUT_S = 60.0
HEALTH_POLL_S = 0.1
HEALTH_REQUEST_TIMEOUT_S = 5.0
RESTART_START_TIMEOUT_S = 30.0
PROGRESS_EVERY_S = 1.0  # bring-up progress lines on stdout, before the ready line


class BringUpError(RuntimeError):
    pass


class Supervisor(ABC):
    """One deployment on one backend. Subclasses: `backend_name`, `_start_sites`, `patch_links`,
    `reset_links`, and the class-level hooks the harness calls before or without a supervisor."""

    backend_name: ClassVar[str]
    # How the sites run: "exec" (a process each, started the ordinary way), "fork" (a process each,
    # forked by the fork server: the local backend's large deployments) or "container" (docker).
    site_processes = "exec"

    def __init__(self, topology: Topology, *, topology_ref: str, run_id: str, state_dir: Path,
                 owns_state_dir: bool, detach: bool = False, keep: bool = False,
                 timeout: float = DEFAULT_TIMEOUT_S):
        self.topology = topology
        self.topology_ref = topology_ref
        self.run_id = run_id
        self.state_dir = state_dir
        self.owns_state_dir = owns_state_dir
        self.detach = detach
        self.keep = keep
        self.timeout = timeout
        self.linkd: Linkd | None = None
        self.sites: dict[str, Site] = {}
        self.links: dict[str, LinkSpec] = {link.name: link for link in topology.links}
        self.link_ports: dict[str, int] = {}
        self.control_url = ""
        self.ready = False
        self._phase = "started"  # bring-up: sites started, then sites healthy (the progress lines)
        self._healthy = 0  # sites whose health checks have all answered
        self.stopping = asyncio.Event()
        self.stop_reason = ""
        self.created: list[Path] = []   # what we made inside a state dir we do not own
        self.mgmt: pki.MgmtMaterial | None = None  # management interface CA, certificates, password
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ the harness's side

    @classmethod
    def prepare(cls, progress: Callable[[str], None]) -> None:
        """Harness side, before the supervisor starts and the bring-up clock runs (docker: the site
        image, which may take a minute). Raises BackendUnavailable."""
        return None  # a hook: nothing to do unless the backend has something

    @classmethod
    def labelled_objects(cls) -> list[dict[str, Any]]:
        """What the backend's runs leave besides processes ({kind, id, name, run_id, root, state}, e.g.
        containers and networks), of every state root, for the ownership rule (deployment.py). Never
        raises."""
        return []

    @classmethod
    def sweep(cls, run_id: str | None, *, root: str | None = None, legacy: bool = True) -> None:
        """Remove those of `run_id` that belong to the state root `root`. Never raises."""
        return None  # a hook: nothing to do unless the backend has something

    @classmethod
    def tidy(cls) -> None:
        """`emulate down --all`: what the backend shares between runs and may go now. Never raises."""
        return None  # a hook: nothing to do unless the backend has something

    # ------------------------------------------------------------------ paths

    @property
    def target_file(self) -> Path:
        return self.state_dir / "target.yaml"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _make_dir(self, path: Path) -> Path:
        if not path.exists():
            path.mkdir(parents=True)
            self.created.append(path)
        return path

    # ------------------------------------------------------------------ main flow

    async def _prepare(self) -> None:
        """Before anything of the deployment exists (docker: the daemon and the image); raises
        BackendUnavailable."""
        return None  # a hook: nothing to do unless the backend has something

    async def run(self) -> int:
        try:
            await self._prepare()
        except BackendUnavailable as exc:
            log(f"bring-up failed: {exc}")
            emit({"ready": False, "error": str(exc), "pid": os.getpid(), "run_id": self.run_id})
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.request_shutdown, f"signal {signal.Signals(sig).name}")
        if not self.detach:
            _watch_stdin(loop, self.request_shutdown)
        self._prepare_state_dir()
        state.write_entry(self._entry())
        bring_up = loop.create_task(self._bring_up())
        stop_wait = loop.create_task(self.stopping.wait())
        await asyncio.wait({bring_up, stop_wait}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if not bring_up.done():
            bring_up.cancel()
            await asyncio.gather(bring_up, return_exceptions=True)
            why = f"stopped ({self.stop_reason})" if self.stopping.is_set() else f"not ready within {self.timeout:g} s"
            code = self._announce_failure(f"bring-up {why}")
        elif bring_up.exception() is not None:
            exc = bring_up.exception()
            known = (BringUpError, procs.SpawnError, LinkdError, OSError, aiohttp.ClientError)
            code = self._announce_failure(str(exc) if isinstance(exc, known) else repr(exc))
        else:
            self.ready = True
            self._write_state()
            state.write_entry(self._entry())
            emit({"ready": True, "control_url": self.control_url, "target_file": str(self.target_file),
                   "pid": os.getpid(), "run_id": self.run_id, "state_dir": str(self.state_dir)})
            await self.stopping.wait()
        stop_wait.cancel()
        await self._teardown()
        return code

    def _announce_failure(self, message: str) -> int:
        log(f"bring-up failed: {message}")
        emit({"ready": False, "error": message, "pid": os.getpid(), "run_id": self.run_id})
        return 1

    def _prepare_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._make_dir(self.state_dir / "logs")
        self._make_dir(self.state_dir / "sites")
        if self.detach:
            # Nobody reads our stderr any more: keep the log with the deployment.
            fd = os.open(self.state_dir / "logs" / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 2)
            os.close(fd)

    async def _bring_up(self) -> None:
        started = time.monotonic()
        await self._start_control_api()
        self.mgmt = await asyncio.to_thread(self._prepare_mgmt)  # before any site starts
        reporter = asyncio.get_running_loop().create_task(self._report_progress())
        try:
            await self._start_sites()
            for s in self.sites.values():
                s.start_timeout = RESTART_START_TIMEOUT_S
            self._phase = "healthy"
            # Leave a second of the budget to report which sites are unhealthy, and why.
            await self._wait_healthy(started + self.timeout - 1.0)
        finally:
            reporter.cancel()
        self._emit_progress()
        log(f"{len(self.sites)} sites and {len(self.links)} links up in {time.monotonic() - started:.1f} s")

    async def _report_progress(self) -> None:
        """A progress line (before the ready line) every PROGRESS_EVERY_S while the sites come up: a
        thousand sites take a minute, and the harness shows how far they are."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            self._emit_progress()

    def _emit_progress(self) -> None:
        total = len(self.topology.sites)
        done = self._healthy if self._phase == "healthy" else \
            sum(1 for s in self.sites.values() if s.state not in (STARTING, STOPPED))
        emit({"progress": {"phase": self._phase, "done": min(done, total), "total": total,
                           "topology": self.topology.name}})

    @abstractmethod
    async def _start_sites(self) -> None:
        """The backend's links and sites (self.sites, self.link_ports), every site started; edges reach
        their uplink only through their WAN link (site.central_url)."""

    async def _wait_healthy(self, deadline: float) -> None:
        """Every site answers /health with 200, directly and through its access link.

        Two defects are the suites' business, not bring-up's: a `health-broken` site is polled on
        /ping instead (its /health lies by design; everything else works), and an `exits-after-start`
        site is waited for until it has exited with status 0 (the restart policy leaves it down, as
        systemd would), so checks always see that steady state, never its first second.
        """
        checks, exits = [], []  # checks: (site, which way, url)
        unanswered: dict[str, int] = {}  # site -> its checks not yet answered (progress: healthy sites)
        for s in self.sites.values():
            if "exits-after-start" in s.spec.defects:
                exits.append(s)
                continue
            checks.append((s.name, "direct", s.health_url))
            checks.append((s.name, "access link",
                           f"http://127.0.0.1:{self.link_ports[f'access:{s.name}']}{s.health_path}"))
            unanswered[s.name] = 2
        connector = aiohttp.TCPConnector(force_close=True, limit=32)
        timeout = aiohttp.ClientTimeout(total=HEALTH_REQUEST_TIMEOUT_S)

        async def poll(site: str, url: str, session: aiohttp.ClientSession) -> str | None:
            problem = await _poll_health(session, url, deadline)
            if not problem:
                unanswered[site] -= 1
                self._healthy += unanswered[site] == 0  # direct and through its access link
            return problem

        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            problems = await asyncio.gather(*(poll(site, url, session) for site, _, url in checks),
                                            *(_until_exited(s, deadline) for s in exits))
        self._healthy += len(exits)
        checks += [(s.name, "exits-after-start", "") for s in exits]
        bad = [f"{site} ({way}): {problem}" for (site, way, _), problem in zip(checks, problems) if problem]
        if bad:
            raise BringUpError(f"{len(bad)} health check(s) failing: " + "; ".join(bad[:5]))

    def _prepare_mgmt(self) -> pki.MgmtMaterial:
        """The deployment's private CA, a certificate per site and the management password."""
        return pki.prepare_mgmt(self._make_dir(self.state_dir / "pki"), self.topology.sites, label=self.run_id)

    # ------------------------------------------------------------------ control API

    async def _start_control_api(self) -> None:
        from .control import build_app  # the API module needs this class; import late to avoid a cycle

        self._runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.control_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def site(self, name: str) -> Site:
        try:
            return self.sites[name]
        except KeyError:
            raise LookupError(f'no site "{name}"{_hint(name, self.sites)}') from None

    def resolve_links(self, name: str) -> list[LinkSpec]:
        """A link name, or "wan:<central>" for every WAN link that ends at that central site."""
        if name in self.links:
            return [self.links[name]]
        kind, _, site = name.partition(":")
        if kind == "wan" and site in self.sites:
            group = [link for link in self.links.values() if link.kind == "wan" and link.peer == site]
            if group:
                return group
        raise LookupError(f'no link "{name}"{_hint(name, self.links)} (links are wan:<site> and access:<site>)')

    def wan_links_of(self, site: str) -> list[LinkSpec]:
        self.site(site)
        return self.resolve_links(f"wan:{site}")

    @abstractmethod
    async def patch_links(self, links: list[LinkSpec], fields: dict[str, Any]) -> list[dict[str, Any]]:
        """Change parameters of these links (a partition or heal included) at once."""

    @abstractmethod
    async def reset_links(self, links: list[LinkSpec]) -> list[dict[str, Any]]:
        """Back to the topology's parameters, healed."""

    async def status(self) -> dict[str, Any]:
        live: dict[str, dict[str, Any]] = {}
        if self.linkd is not None:
            try:
                live = await self.linkd.links()
            except LinkdError as exc:
                log(f"status: {exc}")
        links = []
        for link in self.links.values():
            entry = {"name": link.name, "kind": link.kind, "site": link.site, "peer": link.peer,
                     "listen_port": self.link_ports.get(link.name), **link.params(), "partitioned": None,
                     "partition_mode": None, "stats": None}
            entry.update({k: v for k, v in live.get(link.name, {}).items() if k != "name"})
            links.append(entry)
        return {"run_id": self.run_id, "backend": self.backend_name, "topology": self.topology.name,
                "site_processes": self.site_processes, "pid": os.getpid(),
                "state": "stopping" if self.stopping.is_set() else ("running" if self.ready else "starting"),
                "control_url": self.control_url, "target_file": str(self.target_file),
                "state_dir": str(self.state_dir),
                "linkd": {"pid": self.linkd.proc.pid, "control_port": self.linkd.control_port,
                          "running": self.linkd.proc.returncode is None} if self.linkd else None,
                "sites": [s.status() for s in self.sites.values()], "links": links}

    def request_shutdown(self, reason: str = "POST /shutdown") -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    # ------------------------------------------------------------------ files

    def _site_changed(self) -> None:
        if self.ready and not self.stopping.is_set():
            self._write_state()  # a restarted site has a new pid

    def _write_state(self) -> None:
        state.write_yaml(self.target_file, self.target_document())
        state.write_state(self.state_file, json.dumps(self._state_document(), indent=2) + "\n")

    def target_document(self) -> dict[str, Any]:
        sites = []
        for s in self.sites.values():
            entry: dict[str, Any] = {"name": s.name, "role": s.spec.role}
            if s.spec.uplink:
                entry["uplink"] = s.spec.uplink
            endpoints = {"api": f"http://127.0.0.1:{self.link_ports[f'access:{s.name}']}",
                         "direct": f"http://127.0.0.1:{s.port}"}
            if s.central_url:
                endpoints["wan"] = s.central_url  # its uplink, as the site sees it: its WAN link
            endpoints.update(s.extra_endpoints())
            if s.mgmt is not None and s.mgmt_port:  # the site's own TLS port (not through nginx)
                endpoints["mgmt"] = f"https://127.0.0.1:{s.mgmt_port}"
            entry["endpoints"] = endpoints
            if self.mgmt is not None:
                entry["ca_file"] = str(self.mgmt.ca_cert)  # the deployment's CA verifies every mgmt endpoint
            entry["hosts"] = s.target_hosts()
            entry["labels"] = s.target_labels()
            sites.append(entry)
        return {"name": f"emulated-{self.topology.name}",
                "emulation": {"run_id": self.run_id, "backend": self.backend_name, "topology": self.topology.name,
                              "site_processes": self.site_processes,
                              "control_url": self.control_url, "state_dir": str(self.state_dir)},
                "sites": sites}

    def _state_document(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pid": os.getpid(), "topology": self.topology.to_dict(),
                "control_url": self.control_url, "target_file": str(self.target_file),
                "linkd": {"pid": self.linkd.proc.pid, "control_port": self.linkd.control_port} if self.linkd else None,
                "sites": {s.name: s.status() for s in self.sites.values()},
                "link_ports": self.link_ports}

    def _entry(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pid": os.getpid(), "topology": self.topology.name,
                "topology_ref": self.topology_ref, "control_url": self.control_url,
                "state_dir": str(self.state_dir), "owns_state_dir": self.owns_state_dir,
                "target_file": str(self.target_file) if self.ready else None, "ready": self.ready,
                "detached": self.detach, "started": utc_now(), "backend": self.backend_name}

    # ------------------------------------------------------------------ teardown

    async def _teardown(self) -> None:
        log(f"shutting down ({self.stop_reason or 'bring-up failed'})")
        self.stopping.set()
        self._before_sites_close()
        logs = self.state_dir / "logs"
        await asyncio.gather(*(s.close(keep_logs_to=logs / f"{s.name}.log" if self.keep else None)
                               for s in self.sites.values()), return_exceptions=True)
        await self._after_sites_close()
        if self.linkd is not None:
            await self.linkd.close()
        # Belt and braces: anything still labelled with our run id (a site's stray child, a process
        # started while we were going down) goes too.
        leftovers = procs.find_labelled(self.run_id).get(self.run_id, [])
        if leftovers:
            log(f"killing {len(leftovers)} leftover process(es): {[p.pid for p in leftovers]}")
            await asyncio.to_thread(procs.kill_processes, leftovers)
        if self._runner is not None:
            await self._runner.cleanup()
        if not self.keep:
            self._remove_files()
        state.remove_entry(self.run_id)

    def _before_sites_close(self) -> None:
        """Teardown, first: stop watching what would restart sites (docker: its events)."""
        return None  # a hook: nothing to do unless the backend has something

    async def _after_sites_close(self) -> None:
        """Teardown, once every site is gone: the backend's own objects (docker: networks, leftovers)."""
        return None  # a hook: nothing to do unless the backend has something

    def _remove_files(self) -> None:
        if self.owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            return
        for path in (self.target_file, self.state_file):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        for path in reversed(self.created):
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------- helpers


async def _until_exited(site: Site, deadline: float) -> str | None:
    """None once the site has exited with status 0 by itself (state `exited`)."""
    while time.monotonic() < deadline:
        if site.state == EXITED:
            return None
        await asyncio.sleep(HEALTH_POLL_S)
    return f"still {site.state} (last exit {site.last_exit}); expected it to exit with status 0"


async def _poll_health(session: aiohttp.ClientSession, url: str, deadline: float) -> str | None:
    """None once `url` answers 200; the last problem seen if `deadline` (monotonic) passes first."""
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return None
                last = f"HTTP {resp.status}: {(await resp.text())[:200]}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            last = repr(exc)
        await asyncio.sleep(HEALTH_POLL_S)
    return last


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop) -> None:
    """Our parent holds the other end of stdin: EOF means it died, so we go down too."""
    def watch() -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        loop.call_soon_threadsafe(stop, "stdin closed, so the parent is gone; --detach runs in the background")

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def _hint(word: str, choices) -> str:
    from ..model.errors import did_you_mean

    return did_you_mean(word, list(choices))
