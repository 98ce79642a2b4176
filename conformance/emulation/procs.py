"""Child processes of an emulated deployment: start them labelled, read their ready line, kill them.

Every process we start carries the run id in its environment (EDGE_CONFORMANCE_RUN_ID) and, where the
program accepts it, in its command line (--run-id), and the state root that started it in its
environment (EDGE_CONFORMANCE_STATE_ROOT, see state.py), so leftovers of a crashed run can always be
found (`find_labelled`) and removed (`kill_processes`), and never those of another state root: a
process is ours when its root label is ours, or when it has none (an older version's) and its run id
is in our registry (deployment.py decides that part). Each child gets its own session, hence its own
process group: signals go to the whole group (a site that forks cannot leak grandchildren), and a
Ctrl-C in the terminal reaches only the harness, which then tears the deployment down in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from . import state

RUN_ID_ENV = "EDGE_CONFORMANCE_RUN_ID"
ROOT_ENV = state.ROOT_ENV
UNREADABLE = "?"  # the root label of a process whose environment we may not read: never ours
# Only processes running one of our modules are ever swept up by run id: a user's shell that happens
# to export the variable must never be killed. The sites run the reference workloads' package.
OUR_MODULES = ("conformance.emulation", "edge_workloads")


class SpawnError(RuntimeError):
    """A child did not come up (exited, timed out, or printed no ready line)."""


def child_env(run_id: str) -> dict[str, str]:
    env = dict(os.environ)
    env[RUN_ID_ENV] = run_id
    env[ROOT_ENV] = state.root_label()  # the child registers, and is found, in the caller's state root
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the log files as they happen
    return env


def module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


async def spawn(argv: list[str], *, run_id: str, log_path: Path, timeout: float,
                pass_fds: tuple[int, ...] = (), extra_env: dict[str, str] | None = None,
                forkserver: Any = None) -> tuple[Any, dict[str, Any]]:
    """Start a child and wait for its one-line JSON ready message.

    stdin is a pipe we never write: when we die, the child reads EOF and exits. stderr goes straight
    to `log_path` (appended, so restarts keep the history); stdout after the ready line is copied
    there too, so a chatty child can never block on a full pipe. With a `forkserver`
    (forkserver.ForkServer) a site is forked by it instead of exec'd: the same contract, a
    ForkedProcess instead of asyncio's Process.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if forkserver is not None:
        proc = await forkserver.spawn(argv, log_path)
    else:
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                env={**child_env(run_id), **(extra_env or {})}, start_new_session=True, limit=1 << 20,
                pass_fds=pass_fds)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        await reap(proc)
        raise SpawnError(f"no ready line within {timeout:g} s{log_tail(log_path)}") from None
    except BaseException:  # cancelled (bring-up aborted): the child must not outlive the wait
        signal_group(proc.pid, signal.SIGKILL)
        raise
    try:
        ready = json.loads(line.decode("utf-8", "replace")) if line else None
    except ValueError:
        ready = None
    if not isinstance(ready, dict) or ready.get("ready") is not True:
        rc = await reap(proc)
        said = line.decode("utf-8", "replace").strip()
        what = (f"printed {said[:200]!r} instead of a ready line" if said
                else f"exited with status {rc} before it was ready")
        raise SpawnError(f"{what}{log_tail(log_path)}")
    asyncio.get_running_loop().create_task(_copy_rest(proc.stdout, log_path))
    return proc, ready


async def _copy_rest(stream: asyncio.StreamReader, log_path: Path) -> None:
    try:
        with open(log_path, "ab") as log:
            while chunk := await stream.read(65536):
                log.write(chunk)
                log.flush()
    except (OSError, ValueError):
        pass


async def reap(proc: asyncio.subprocess.Process, grace: float = 3.0) -> int | None:
    """SIGTERM the child's group, SIGKILL it after `grace` seconds; wait for the child."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGCONT)  # a paused child cannot act on SIGTERM
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            pass
    signal_group(proc.pid, signal.SIGKILL)  # also takes any grandchild left in the group
    try:
        return await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        return None


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("; last log lines: " + " | ".join(t.strip() for t in text)) if text else ""


# --------------------------------------------------------------------------- finding leftovers


def run_id_of(proc: psutil.Process) -> str | None:
    """The run id a process is labelled with, if it runs one of our modules."""
    label = label_of(proc)
    return label[0] if label else None


def label_of(proc: psutil.Process) -> tuple[str, str | None] | None:
    """(run id, state root) of a process running one of our modules, else None.

    The root is None for a process labelled with a run id only (started by an older version), and
    UNREADABLE when its environment cannot be read (another user's: never ours).
    """
    try:
        cmdline = proc.cmdline()
        if not any(module in part for part in cmdline for module in OUR_MODULES):
            return None
        try:
            env = proc.environ()
        except psutil.AccessDenied:
            env = None
        run_id = None
        if "--run-id" in cmdline:
            i = cmdline.index("--run-id")
            if i + 1 < len(cmdline):
                run_id = cmdline[i + 1]
        if run_id is None and env is not None:
            run_id = env.get(RUN_ID_ENV)
        if not run_id:
            return None
        if env is None:
            return run_id, UNREADABLE
        root = env.get(ROOT_ENV)
        return run_id, (os.path.realpath(root) if root else None)
    except (psutil.Error, OSError):
        return None


def scan_labelled(run_id: str | None = None) -> list[tuple[psutil.Process, str, str | None]]:
    """(process, run id, root label) of every live process of this user labelled with a run id (or
    with `run_id`), whatever its state root: the raw material of the ownership rule.

    Never lists this process or its ancestors: the harness itself may carry the variables.
    """
    me = psutil.Process()
    skip = {me.pid} | {p.pid for p in _parents(me)}
    uid = os.getuid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid in skip:
            continue
        label = label_of(proc)
        if label is None or (run_id is not None and label[0] != run_id):
            continue
        try:
            if proc.uids().real != uid:
                continue  # another user's: never ours (and we could not signal it anyway)
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        found.append((proc, label[0], label[1]))
    return found


def find_labelled(run_id: str | None = None, *, root: str | os.PathLike | None = None,
                  legacy: bool = True) -> dict[str, list[psutil.Process]]:
    """run id -> live processes labelled with it (all runs, or just `run_id`) that belong to the
    state root `root` (default: the caller's): labelled with that root, or (with `legacy`) with no
    root at all, which the caller must then own by its registry (a supervisor sweeping its own run id
    does). Processes of another state root are never returned.
    """
    mine = state.root_label(root)
    found: dict[str, list[psutil.Process]] = {}
    for proc, label, proc_root in scan_labelled(run_id):
        if proc_root == mine or (legacy and proc_root is None):
            found.setdefault(label, []).append(proc)
    return found


def _parents(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.parents()
    except psutil.Error:
        return []


def kill_processes(procs: Iterable[psutil.Process], grace: float = 3.0) -> None:
    """SIGTERM (with SIGCONT for paused ones), then SIGKILL whatever is left after `grace`."""
    procs = list(procs)
    for p in procs:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)
