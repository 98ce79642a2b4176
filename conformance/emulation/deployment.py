"""The harness's handle on an emulated deployment: start one, stop it, find and remove leftovers.

`start_deployment` runs the supervisor (`python -m conformance.emulation.supervise`, with the backend
chosen from conformance.emulation.backends) as a child with stdin as a pipe: if this process dies in
any way (SIGKILL included), the supervisor reads EOF and tears the deployment down by itself.
`stop()` asks it to, waits, and sweeps up if it does not.

`list_running`, `stop_run` and `stop_all` serve `emulate status` and `emulate down RUN_ID|--all`: they
find deployments through the registry (conformance.emulation.state) and processes and containers
labelled with a run id and a state root (conformance.emulation.procs, and each backend's own objects,
such as docker containers), so they also clean up after supervisors that were SIGKILLed.

THE ownership rule (`_survey`, also the fault gate's `owned_control`): a deployment is the caller's
when its run id has a registry entry in the caller's state root (state.runtime_root()). Its processes
and containers are those labelled with that run id and with the caller's root (or with no root label
at all: an older version's, adopted through the registry entry). A process or container labelled with
a run id under another root, or with no root and a run id the caller's registry does not know, is not
the caller's: it is listed as "not ours" on request (`others=True`) and never stopped, swept or sent a
fault. Within its own root, `stop_all` stops every deployment except one still held by the live
harness that started it (an attached supervisor whose parent is alive: a run in progress); naming it
(`stop_run`) stops it anyway.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from ..model.errors import ConfigError, NotMeasured
from ..model.topology import apply_defects, generated_topology, load_topology, resolve_topology, topologies_dir
from . import client, procs, state
from .backends import BackendUnavailable, UnknownBackend, all_backends, supervisor_class

SUPERVISOR_MODULE = "conformance.emulation.supervise"
BRING_UP_S_PER_SITE = 0.15  # the least bring-up timeout per site: 150 s for 1,000 sites
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
        self.state_root = state.root_label()  # with run_id: who owns it (the supervisor registered there)
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
            _sweep(self.run_id, root=self.state_root)
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
                     backend: str = "local", keep: bool = False, detach: bool = False,
                     progress: Callable[[dict[str, Any]], None] | None = None) -> Deployment:
    """Bring up `topology` (built-in name or YAML path) and return when every site is healthy.

    Bad topologies and defect specs raise ConfigError before anything starts; a failed bring-up
    raises EmulationError after everything started so far has been removed. `detach` leaves the
    supervisor running after this process exits (stop it with stop_run or stop_all). `progress` is
    called with each bring-up progress report ({"phase": "started"|"healthy", "done", "total",
    "topology"}; report/progress.py bring_up_printer shows them).
    """
    loaded = apply_defects(load_topology(topology), list(defects))  # every input error, before any process
    # A thousand sites take about a minute on 2 cores, and longer on a busy runner: the bring-up
    # budget grows with the deployment (never below what was asked).
    timeout = max(timeout, BRING_UP_S_PER_SITE * len(loaded.sites))
    try:
        backend_cls = supervisor_class(backend, loaded.reach)
    except UnknownBackend as exc:
        raise ConfigError(None, None, "backend", str(exc)) from None
    # Built-ins and generated ones (fleet:N) travel by name (shown in ps and the target file); files by
    # absolute path (cwd-proof).
    if generated_topology(topology) is not None:
        ref = topology
    else:
        path = resolve_topology(topology).resolve()
        ref = topology if path.parent == topologies_dir().resolve() else str(path)
    try:  # e.g. docker's image build (about a minute, once), before the bring-up clock
        backend_cls.prepare(progress=lambda m: print(f"edge-conformance: {m}", file=sys.stderr, flush=True))
    except BackendUnavailable as exc:
        raise EmulationError(str(exc)) from None
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
        ready = _read_ready(proc, timeout + 15.0, progress)  # the supervisor enforces `timeout` itself
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


def _read_ready(proc: subprocess.Popen, timeout: float,
                progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The supervisor's ready line, or a synthetic failure if it died or stayed silent. The progress
    lines before it ({"progress": {...}}) go to `progress`."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    return {"ready": False, "error": f"supervisor printed {line[:200]!r} instead of a ready line"}
                if not isinstance(message, dict):
                    return {"ready": False, "error": f"bad ready line {message!r}"}
                if "progress" not in message:
                    return message
                if progress is not None and isinstance(message["progress"], dict):
                    progress(message["progress"])
            left = deadline - time.monotonic()
            if left <= 0:
                return {"ready": False, "error": f"supervisor gave no ready line within {timeout:g} s"}
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return {"ready": False, "error": f"supervisor exited with status {proc.wait()} before it was ready"}
            buf += chunk


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


def _sweep(run_id: str, root: str | None = None) -> None:
    """Whatever of the run is still labelled with the run id and the state root `root` (default: the
    caller's) dies; with the run's registry entry there, unlabelled (older) ones too. The registry
    entry and the state dir the supervisor owned go once the supervisor is gone."""
    root = state.root_label(root)
    entry = state.read_entry(run_id, root)
    leftovers = procs.find_labelled(run_id, root=root, legacy=entry is not None).get(run_id, [])
    if leftovers:
        procs.kill_processes(leftovers)
    for backend in all_backends():  # what runs leave besides processes (docker: containers, networks)
        backend.sweep(run_id, root=root, legacy=entry is not None)
    if entry is not None and not _supervisor_alive(entry, run_id, root):
        # The supervisor died without cleaning up (SIGKILL): do its last step for it.
        if entry.get("owns_state_dir") and entry.get("state_dir"):
            shutil.rmtree(entry["state_dir"], ignore_errors=True)
        state.remove_entry(run_id, root)


def _supervisor_alive(entry: dict[str, Any], run_id: str, root: str) -> bool:
    """The entry's supervisor still runs, as that run's process of that root (not a reused pid)."""
    pid = entry.get("pid")
    if not pid or not procs.pid_alive(pid):
        return False
    try:
        label = procs.label_of(psutil.Process(pid))
    except psutil.Error:
        return False
    return label is not None and label[0] == run_id and label[1] in (root, None)


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
    processes: list[int] = field(default_factory=list)  # every live process of the run (of its root)
    backend: str | None = None    # local | docker (None: unknown, e.g. an orphan of an older version)
    containers: list[str] = field(default_factory=list)  # docker: containers of the run (of its root)
    ours: bool = True             # of the caller's state root (False: listed with others=True only)
    state_root: str | None = None  # the root it belongs to (None: unknown, an unlabelled leftover)
    held_by: int | None = None    # pid of the live harness an attached deployment belongs to


def list_running(*, others: bool = False, root: str | None = None) -> list[RunInfo]:
    """Deployments of the caller's state root (`root`, default state.runtime_root()): its registry
    entries and any process or container labelled with one of its run ids or with the root itself
    (orphans included). With `others`, also what belongs to other roots (or to none we know), with
    ours=False: shown, never stopped."""
    own, foreign = _survey(root)
    return own + (foreign if others else [])


def _survey(root: str | None = None) -> tuple[list[RunInfo], list[RunInfo]]:
    """(the caller's runs, everybody else's): the ownership rule applied to the registry, the labelled
    processes and the labelled containers and networks."""
    mine = state.root_label(root)
    entries = {e["run_id"]: e for e in state.read_entries(mine) if "run_id" in e}
    # (run id, owner root or None) -> processes / containers
    own_procs: dict[str, list[psutil.Process]] = {}
    other_procs: dict[tuple[str, str | None], list[psutil.Process]] = {}
    for proc, run_id, proc_root in procs.scan_labelled():
        if proc_root == mine or (proc_root is None and run_id in entries):
            own_procs.setdefault(run_id, []).append(proc)
        else:
            other_procs.setdefault((run_id, proc_root), []).append(proc)
    objects = [dict(o, backend=b.backend_name) for b in all_backends() for o in b.labelled_objects()]
    own_objects: dict[str, list[str]] = {}
    other_objects: dict[tuple[str, str | None], list[str]] = {}
    own_runs = set(entries) | set(own_procs) | {o["run_id"] for o in objects
                                                  if o["kind"] == "container" and o["root"] == mine}
    # Networks carry no root label: they belong with their run's containers.
    container_roots = {o["run_id"]: o["root"] for o in objects if o["kind"] == "container" and o["root"]}
    own_backend: dict[str, str] = {}
    other_backend: dict[tuple[str, str | None], str] = {}
    for o in objects:
        names = [o["name"]] if o["kind"] == "container" else []
        owner = o["root"] or (None if o["run_id"] in own_runs else container_roots.get(o["run_id"]))
        if owner == mine or (owner is None and o["run_id"] in own_runs):
            own_objects.setdefault(o["run_id"], []).extend(names)
            own_backend[o["run_id"]] = o["backend"]
        else:
            other_objects.setdefault((o["run_id"], owner), []).extend(names)
            other_backend[(o["run_id"], owner)] = o["backend"]

    own = []
    for run_id in sorted(set(entries) | set(own_procs) | set(own_objects)):
        e = entries.get(run_id, {})
        pids = sorted(p.pid for p in own_procs.get(run_id, []))
        pid = e.get("pid")
        alive = bool(pid) and pid in pids  # alive and still ours (not a reused pid)
        # Registry entries say so; an orphan with objects of a backend (docker: containers, networks)
        # is that backend's run even without its entry (its supervisor was SIGKILLed).
        backend = e.get("backend") or own_backend.get(run_id) or ("local" if e else None)
        own.append(RunInfo(run_id=run_id, pid=pid, alive=alive, control_url=e.get("control_url") or None,
                           topology=e.get("topology"), state_dir=e.get("state_dir"),
                           target_file=e.get("target_file"), detached=bool(e.get("detached")),
                           started=e.get("started"), processes=pids, backend=backend,
                           containers=sorted(own_objects.get(run_id, [])), ours=True, state_root=mine,
                           held_by=_holder(pid) if alive and not e.get("detached") else None))
    foreign = []
    for run_id, owner in sorted(set(other_procs) | set(other_objects), key=lambda k: (k[0], k[1] or "")):
        found = other_procs.get((run_id, owner), [])
        supervisors = [p.pid for p in found if _is_supervisor(p)]
        foreign.append(RunInfo(run_id=run_id, pid=supervisors[0] if supervisors else None, alive=bool(supervisors),
                               processes=sorted(p.pid for p in found),
                               backend=other_backend.get((run_id, owner)),
                               containers=sorted(other_objects.get((run_id, owner), [])), ours=False,
                               state_root=owner if owner != procs.UNREADABLE else None))
    return own, foreign


def _is_supervisor(proc: psutil.Process) -> bool:
    try:
        return SUPERVISOR_MODULE in proc.cmdline()
    except psutil.Error:
        return False


def _holder(pid: int | None) -> int | None:
    """The live harness an attached supervisor belongs to (its parent), if any: while it lives, the
    deployment is a run in progress, which `stop_all` leaves alone."""
    try:
        parent = psutil.Process(pid).parent() if pid else None
        if parent is None or parent.pid <= 1 or parent.status() == psutil.STATUS_ZOMBIE:
            return None
        return parent.pid
    except psutil.Error:
        return None


def stop_run(run_id: str, timeout: float = 30.0, *, root: str | None = None) -> bool:
    """Stop one deployment of the caller's state root (politely, then by signals) and remove its
    traces; False if that root has none by this id (another root's is never touched)."""
    mine = state.root_label(root)
    runs = {r.run_id: r for r in list_running(root=mine)}
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
    _sweep(run_id, root=mine)
    return True


def stop_all(timeout: float = 30.0, *, root: str | None = None) -> list[str]:
    """`emulate down --all`: every deployment of the caller's state root (detached ones, and leftovers
    whose supervisor is gone) except those held by a live harness (a run in progress: name it to stop
    it); returns the run ids stopped. Nothing of another state root is touched."""
    mine = state.root_label(root)
    stopped = []
    for run in list_running(root=mine):
        if run.held_by:
            continue
        if stop_run(run.run_id, timeout, root=mine):
            stopped.append(run.run_id)
    for backend in all_backends():
        backend.tidy()  # docker: temporary images, only while no deployment (of any root) has a container
    return stopped


# ---------------------------------------------------------------------------- the fault gate

FAULT_REMEDY = ("run against --target emulated[:TOPOLOGY] or the target file `edge-conformance emulate up` "
                "wrote, with the same state root (EDGE_CONFORMANCE_STATE_ROOT); for a real deployment, "
                "remove the emulation block and give fault hooks with --allow-faults")


def loopback_control(control_url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http URL whose host is a loopback IP literal, else None."""
    import ipaddress

    try:
        parts = urlsplit(control_url)
        port = parts.port
        if parts.scheme != "http" or not parts.hostname or port is None:
            return None
        if not ipaddress.ip_address(parts.hostname).is_loopback:
            return None
    except ValueError:
        return None
    return parts.scheme, parts.hostname, port


def owned_control(control_url: str, run_id: str | None = None, *, root: str | None = None) -> dict[str, Any]:
    """The registry entry of the deployment of the caller's state root whose control API is
    `control_url` (and whose run id is `run_id`, when given): faults may be sent there.

    Raises NotMeasured when it is not ours (not loopback, or no such deployment in this root: a
    hand-written or foreign `emulation:` block) and EmulationError when it is ours but its supervisor
    is gone (its port may belong to anyone now). Never sends a request.
    """
    where = loopback_control(control_url)
    if where is None:
        raise NotMeasured(f"fault refused: control_url {control_url} is not on this machine's loopback; "
                          "faults go only to an emulated deployment this harness started", FAULT_REMEDY)
    mine = state.root_label(root)
    for entry in state.read_entries(mine):
        if loopback_control(str(entry.get("control_url") or "")) != where:
            continue
        if run_id is not None and entry.get("run_id") != run_id:
            continue
        if not _supervisor_alive(entry, str(entry.get("run_id")), mine):
            raise EmulationError(f"emulated deployment {entry.get('run_id')}: its supervisor (pid "
                                 f"{entry.get('pid')}) is gone, so its control API at {control_url} is too")
        return entry
    what = f"run {run_id} at {control_url}" if run_id else f"control_url {control_url}"
    raise NotMeasured(f"fault refused: {what} is not an emulated deployment of this state root ({mine}); "
                      "faults go only to a deployment this harness started", FAULT_REMEDY)


def lab_not_ours(lab: dict[str, Any], target_path: str | None, *, root: str | None = None) -> str | None:
    """None when `lab` (the `lab:` block of the target file at `target_path`) is an SSH lab of the
    caller's state root whose supervisor is alive, and the file is the very one that lab's supervisor
    wrote (a copy with other hosts vouches for nothing); otherwise why not (a hand-written block,
    another root's run, an emulated deployment that is not a lab, a lab gone, another file)."""
    try:
        entry = owned_control(str(lab.get("control_url") or ""), str(lab.get("run_id") or ""), root=root)
    except (NotMeasured, EmulationError) as exc:
        return str(exc.reason if isinstance(exc, NotMeasured) else exc)
    if entry.get("reach") != "ssh":
        return f"run {entry.get('run_id')} is an emulated deployment, not an SSH lab"
    written = entry.get("target_file")
    if not target_path or not written or Path(target_path).resolve() != Path(written).resolve():
        return (f"{target_path or 'this target'} is not the target file SSH lab {entry.get('run_id')} wrote "
                f"({written}): a copy of it vouches for nothing")
    return None


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

