"""The harness's handle on an emulated deployment: start one, stop it, find and remove leftovers.

`start_deployment` runs the supervisor (conformance.emulation.supervisor) as a child with stdin as a
pipe: if this process dies in any way (SIGKILL included), the supervisor reads EOF and tears the
deployment down by itself. `stop()` asks it to, waits, and sweeps up if it does not.

`list_running`, `stop_run` and `stop_all` serve `emulate status` and `emulate down RUN_ID|--all`: they
find deployments through the registry (conformance.emulation.state) and processes labelled with a run
id (conformance.emulation.procs), so they also clean up after supervisors that were SIGKILLed.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.errors import ConfigError
from ..model.topology import apply_defects, load_topology, resolve_topology, topologies_dir
from . import client, procs, state

SUPERVISOR_MODULE = "conformance.emulation.supervisor"
BACKENDS = ("local", "docker")
SHUTDOWN_REQUEST_TIMEOUT_S = 5.0
_live: weakref.WeakSet[Deployment] = weakref.WeakSet()


class EmulationError(RuntimeError):
    """The emulated deployment could not be brought up (the message says which part and why)."""


class Deployment:
    """A running emulated deployment; use as a context manager or call stop()."""

    def __init__(self, proc: subprocess.Popen, ready: dict[str, Any], *, run_id: str, topology: str,
                 stderr_file: Any, detached: bool):
        self._proc = proc
        self._stderr = stderr_file
        self._stopped = False
        self.detached = detached
        self.run_id = run_id
        self.topology = topology
        self.pid: int = int(ready["pid"])
        self.control_url: str = ready["control_url"]
        self.target_file = Path(ready["target_file"])
        self.state_dir = Path(ready["state_dir"])
        _live.add(self)

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        return client.call("GET", self.control_url + "/status", timeout=timeout)

    @property
    def running(self) -> bool:
        return not self._stopped and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Tear the deployment down and wait until nothing of it is left. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._proc.poll() is None:
                try:
                    client.call("POST", self.control_url + "/shutdown", timeout=SHUTDOWN_REQUEST_TIMEOUT_S)
                except client.ControlError:
                    pass  # stdin EOF below, then signals, still stop it
            if self._proc.stdin is not None:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass
            _wait_or_kill(self._proc, timeout)
            _sweep(self.run_id)
        finally:
            if self._stderr is not None:
                self._stderr.close()
            _live.discard(self)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Deployment {self.topology} run_id={self.run_id} pid={self.pid} control_url={self.control_url}>"


def start_deployment(topology: str, state_dir: Path | None = None, run_id: str | None = None,
                     defects: list[str] | tuple[str, ...] = (), timeout: float = 60.0, *,
                     backend: str = "local", keep: bool = False, detach: bool = False) -> Deployment:
    """Bring up `topology` (built-in name or YAML path) and return when every site is healthy.

    Bad topologies and defect specs raise ConfigError before anything starts; a failed bring-up
    raises EmulationError after everything started so far has been removed. `detach` leaves the
    supervisor running after this process exits (stop it with stop_run or stop_all).
    """
    if backend not in BACKENDS:
        raise ConfigError(None, None, "backend", f'emulation backend "{backend}" is not available here '
                                                 f"(available: {', '.join(BACKENDS)})")
    apply_defects(load_topology(topology), list(defects))  # every input error, before any process
    path = resolve_topology(topology).resolve()
    # Built-ins travel by name (shown in ps and the target file); files by absolute path (cwd-proof).
    ref = topology if path.parent == topologies_dir().resolve() else str(path)
    if backend == "docker":
        _prepare_docker()  # the image build (about a minute, once) happens before the bring-up clock
    run_id = run_id or state.new_run_id()
    argv = procs.module_argv(SUPERVISOR_MODULE, "--topology", ref, "--run-id", run_id,
                             "--timeout", f"{timeout:g}", "--backend", backend)
    if state_dir is not None:
        argv += ["--state-dir", str(Path(state_dir).absolute())]
    for spec in defects:
        argv += ["--defect", spec]
    if keep:
        argv.append("--keep")
    if detach:
        argv.append("--detach")
    # Attached: stderr to an unlinked temp file (quoted in errors, gone when closed). Detached: the
    # supervisor writes its own log into its state dir.
    stderr_file = None if detach else tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if detach else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr_file or subprocess.DEVNULL,
                            env=procs.child_env(run_id), start_new_session=True, close_fds=True)
    try:
        ready = _read_ready(proc, timeout + 15.0)  # the supervisor enforces `timeout` itself
    except BaseException:  # Ctrl-C while waiting: the supervisor must not finish bringing it up
        _abandon(proc, run_id)
        if stderr_file is not None:
            stderr_file.close()
        raise
    finally:
        proc.stdout.close()
    if not ready.get("ready"):
        _abandon(proc, run_id)
        detail = _tail(stderr_file)
        if stderr_file is not None:
            stderr_file.close()
        raise EmulationError(f"emulated {topology} did not come up: {ready.get('error', 'unknown error')}"
                             + (f" [supervisor log: {detail}]" if detail and "error" not in ready else ""))
    return Deployment(proc, ready, run_id=run_id, topology=topology, stderr_file=stderr_file, detached=detach)


def _prepare_docker() -> None:
    from .docker import backend as docker_backend
    from .docker.images import ImageError

    try:
        docker_backend.prepare(progress=lambda m: print(f"edge-conformance: {m}", file=sys.stderr, flush=True))
    except (docker_backend.DockerUnavailable, ImageError) as exc:
        raise EmulationError(f"docker backend: {exc}") from None


def _abandon(proc: subprocess.Popen, run_id: str) -> None:
    """A supervisor that is not (or not yet) ready: EOF on its stdin stops it; then make sure."""
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass
    elif proc.poll() is None:
        procs.signal_group(proc.pid, signal.SIGTERM)  # detached: no stdin to close
    _wait_or_kill(proc, 15.0)
    _sweep(run_id)


def _read_ready(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """The supervisor's one JSON line, or a synthetic failure if it died or stayed silent."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"ready": False, "error": f"supervisor gave no ready line within {timeout:g} s"}
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return {"ready": False, "error": f"supervisor exited with status {proc.wait()} before it was ready"}
            buf += chunk
    try:
        message = json.loads(buf.split(b"\n", 1)[0])
    except ValueError:
        return {"ready": False, "error": f"supervisor printed {buf[:200]!r} instead of a ready line"}
    return message if isinstance(message, dict) else {"ready": False, "error": f"bad ready line {message!r}"}


def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        procs.signal_group(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _sweep(run_id: str) -> None:
    """Whatever is still labelled with the run id dies; the registry entry and owned state dir go."""
    leftovers = procs.find_labelled(run_id).get(run_id, [])
    if leftovers:
        procs.kill_processes(leftovers)
    entry = state.read_entry(run_id)
    from .docker.backend import quiet_sweep

    quiet_sweep(run_id)  # docker backend: containers and networks labelled with the run id
    if entry is not None and not procs.pid_alive(entry.get("pid")):
        # The supervisor died without cleaning up (SIGKILL): do its last step for it.
        if entry.get("owns_state_dir") and entry.get("state_dir"):
            shutil.rmtree(entry["state_dir"], ignore_errors=True)
        state.remove_entry(run_id)


def _tail(stderr_file: Any, limit: int = 2000) -> str:
    if stderr_file is None:
        return ""
    try:
        stderr_file.seek(0)
        text = stderr_file.read().decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return ""
    return text[-limit:].replace("\n", " | ")


# ---------------------------------------------------------------------- emulate status / down


@dataclass
class RunInfo:
    run_id: str
    pid: int | None               # the supervisor's, from the registry
    alive: bool                   # the supervisor is running
    control_url: str | None = None
    topology: str | None = None
    state_dir: str | None = None
    target_file: str | None = None
    detached: bool = False
    started: str | None = None
    processes: list[int] = field(default_factory=list)  # every live process labelled with the run id
    backend: str | None = None    # local | docker (None: unknown, e.g. an orphan of an older version)
    containers: list[str] = field(default_factory=list)  # docker: containers labelled with the run id


def list_running() -> list[RunInfo]:
    """Deployments in the registry and any process labelled with a run id (orphans included)."""
    entries = {e["run_id"]: e for e in state.read_entries() if "run_id" in e}
    labelled = procs.find_labelled()
    from .docker.backend import quiet_containers

    docker_runs = quiet_containers()
    out = []
    for run_id in sorted(set(entries) | set(labelled) | set(docker_runs)):
        e = entries.get(run_id, {})
        pids = sorted(p.pid for p in labelled.get(run_id, []))
        pid = e.get("pid")
        alive = bool(pid) and pid in pids  # alive and still ours (not a reused pid)
        # Registry entries of docker supervisors say so; an orphan with containers or networks of ours
        # is a docker run even without its entry (its supervisor was SIGKILLed).
        backend = e.get("backend") or ("docker" if run_id in docker_runs else "local" if e else None)
        out.append(RunInfo(run_id=run_id, pid=pid, alive=alive, control_url=e.get("control_url") or None,
                           topology=e.get("topology"), state_dir=e.get("state_dir"),
                           target_file=e.get("target_file"), detached=bool(e.get("detached")),
                           started=e.get("started"), processes=pids, backend=backend,
                           containers=docker_runs.get(run_id, [])))
    return out


def stop_run(run_id: str, timeout: float = 30.0) -> bool:
    """Stop one deployment (politely, then by signals) and remove its traces; False if none found."""
    runs = {r.run_id: r for r in list_running()}
    run = runs.get(run_id)
    if run is None:
        return False
    if run.alive and run.pid:
        if run.control_url:
            try:
                client.call("POST", run.control_url + "/shutdown", timeout=SHUTDOWN_REQUEST_TIMEOUT_S)
            except client.ControlError:
                pass
        if not procs.wait_gone(run.pid, timeout):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(run.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                if procs.wait_gone(run.pid, 5.0):
                    break
    _sweep(run_id)
    return True


def stop_all(timeout: float = 30.0) -> list[str]:
    """`emulate down --all`: every deployment of this user on this machine; returns their run ids."""
    stopped = []
    for run in list_running():
        if stop_run(run.run_id, timeout):
            stopped.append(run.run_id)
    from .docker.backend import quiet_sweep

    quiet_sweep(None, images=True)  # docker: anything labelled by any run, and temporary images
    return stopped


@atexit.register
def _stop_live_deployments() -> None:
    # A normal exit (or an exception unwinding main) still stops what this process started; a
    # SIGKILL is covered by the supervisor's stdin watch.
    for deployment in list(_live):
        if not deployment.detached:
            try:
                deployment.stop()
            except Exception:  # noqa: BLE001 - best effort at interpreter exit
                pass

