"""Run a load test from the harness process: start the Locust child, wait, always clean up.

Never imports locust or gevent: importing locust monkey-patches the interpreter, so Locust runs only
in the child (`python -m conformance.measure.load.child`). The child starts in a new session
(start_new_session=True) and is its process-group leader; the local workers it starts inherit that
group. One `os.killpg` therefore removes everything, and it runs on every way out: normal end, hard
timeout, KeyboardInterrupt (Ctrl-C), SIGTERM (a handler is installed for the duration of the run),
and interpreter exit (atexit). The children also exit on their own when their parent disappears
(a SIGKILLed harness cannot clean up).

Its temporary working directory (config, child log, raw result) is removed on the same ways out. A
SIGKILLed harness leaves it behind, so each directory's name records its owner, and every run first
removes the stale ones (see "temporary working directories" below).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import LoadConfig, check_targets_allowed
from .result import LoadResult, build_result

CHILD_MODULE = "conformance.measure.load.child"

_live_groups: set[int] = set()  # process groups of runs in progress (for SIGTERM and atexit)
_lock = threading.Lock()


class LoadError(RuntimeError):
    """The run produced no usable result: the child failed, or the hard timeout hit."""


def run_load(config: LoadConfig | dict[str, Any], *, allow_hosts: tuple[str, ...] | list[str] = (),
             workdir: str | os.PathLike | None = None) -> LoadResult:
    """Generate the configured open-model load and return the measured result as data.

    Raises ConfigError (bad config), UnsafeTargetError (a non-loopback host not in `allow_hosts`
    or config.allow_hosts) before anything starts, and LoadError when no result could be measured.
    `workdir` keeps the config, child log and raw result there (default: a temp dir, removed).
    """
    if not isinstance(config, LoadConfig):
        config = LoadConfig.from_dict(config)
    check_targets_allowed(config, allow_hosts)

    remove_stale_workdirs()  # those of harnesses that were SIGKILLed
    tmp = Path(workdir) if workdir else new_workdir()
    tmp.mkdir(parents=True, exist_ok=True)
    config_path, out_path, log_path = tmp / "load-config.json", tmp / "load-raw.json", tmp / "load-child.log"
    config_path.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    try:
        with open(log_path, "wb") as log, _sigterm_cleans_up():
            proc = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, "--config", str(config_path), "--out", str(out_path),
                 "--parent-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=_child_env())
            with _lock:
                _live_groups.add(proc.pid)
            try:
                proc.wait(timeout=config.hard_timeout_s)
            except subprocess.TimeoutExpired:
                raise LoadError(f"load run timed out after {config.hard_timeout_s:g} s; "
                                f"child log tail:\n{_tail(log_path)}") from None
            finally:
                _kill_group(proc.pid)  # also on success: stray workers of this run die with it
                if proc.poll() is None:
                    proc.wait()
        if not out_path.exists():
            raise LoadError(f"load child exited with {proc.returncode} and no result; log tail:\n{_tail(log_path)}")
        raw = json.loads(out_path.read_text(encoding="utf-8"))
        if not raw.get("reports"):
            raise LoadError(f"load child measured nothing: {'; '.join(raw.get('errors') or ['no reports'])}; "
                            f"log tail:\n{_tail(log_path)}")
        return build_result(raw, config)
    finally:
        if not workdir:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- temporary working directories ---------------------------------------------------------------
#
# <tmp>/conformance-load-<pid>-<start>-<pidns>-<random>: the pid, start time and pid namespace of the
# harness process that made it, in its name from the moment it exists (mkdtemp creates it with its
# name: no window in which a directory of ours has no owner). Start time: clock ticks since boot from
# /proc/<pid>/stat on Linux (exact; psutil's create_time() adds the boot time, whose /proc/stat value
# can move by a second between readings), milliseconds since the epoch elsewhere.
#
# Stale, and removed by the next run: ours (this exact name pattern, a real directory, our uid, our pid
# namespace) and the owner is gone: no such pid, a zombie, or a process with another start time (the
# pid was reused). Kept: a live owner's; one we cannot judge (another pid namespace: a container sharing
# /tmp, whose pids we cannot see; /proc unreadable); and every other name, including the
# conformance-load-XXXXXXXX directories of earlier versions, which record no owner. No age rule: a load
# run has no upper bound we could rely on, and an unmarked directory cannot be told apart from a live
# run's; those leftovers are a finite set that tmp cleaners (systemd-tmpfiles) age out.

WORKDIR_PREFIX = "conformance-load-"
_WORKDIR_NAME = re.compile(r"conformance-load-(\d+)-(\d+)-(\d+)-[a-z0-9_]{8}")  # mkdtemp: 8 of [a-z0-9_]


def new_workdir() -> Path:
    """A fresh private temp directory whose name records this process as its owner."""
    pid = os.getpid()
    try:
        start = process_start(pid)
    except (OSError, ValueError, IndexError):
        start = None
    if start is None:  # cannot name the owner (no /proc?): an unmarked directory, never judged stale
        return Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    return Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{pid}-{start}-{_pid_namespace()}-"))


def remove_stale_workdirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the working directories in `root` (default: the temp dir) whose owner process is gone;
    returns them. Never raises: a directory it cannot judge or remove stays."""
    root = Path(root if root is not None else tempfile.gettempdir())
    uid = os.getuid() if hasattr(os, "getuid") else None
    own_ns = _pid_namespace()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _WORKDIR_NAME.fullmatch(entry.name)
        if match is None:
            continue  # not ours, or an earlier version's (no owner recorded)
        pid, start, ns = (int(g) for g in match.groups())
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            if ns != own_ns or process_start(pid) == start:
                continue  # another pid namespace (cannot look its pid up), or the owner is running
        except (OSError, ValueError, IndexError):
            continue  # cannot tell: keep it
        shutil.rmtree(entry.path, ignore_errors=True)  # fd-based on Linux: never follows a symlink inside
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


def process_start(pid: int) -> int | None:
    """When process `pid` started (see above), or None when no such process runs (gone, or a zombie:
    exited, not yet reaped). Raises OSError when it cannot tell."""
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            return None
        fields = stat[stat.rindex(b")") + 2:].split()  # after "pid (comm) ": field 3 (state) onwards
        if fields[0] == b"Z":
            return None
        return int(fields[19])  # field 22: starttime
    import psutil  # late: only off Linux

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return round(proc.create_time() * 1000)
    except psutil.NoSuchProcess:
        return None
    except psutil.Error as exc:
        raise OSError(f"process {pid}: {exc}") from exc


def _pid_namespace() -> int:
    """This process's pid namespace (its inode on Linux), 0 where there is none to tell."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


# ---- process-group hygiene ------------------------------------------------------------------------


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone
    with _lock:
        _live_groups.discard(pgid)


def _kill_all_groups() -> None:
    with _lock:
        groups = list(_live_groups)
    for pgid in groups:
        _kill_group(pgid)


atexit.register(_kill_all_groups)


@contextmanager
def _sigterm_cleans_up() -> Iterator[None]:
    """While a run is in progress, SIGTERM kills its children first, then does what it did before
    (the previous handler, or exit with 143 as SIGTERM's default would). Only the main thread can
    install handlers; elsewhere atexit and the children's parent watch still apply."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        _kill_all_groups()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # From a source checkout that is not installed, the child must still import *this* package.
    # (Installed packages need nothing; never put site-packages itself on PYTHONPATH.)
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").exists():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
