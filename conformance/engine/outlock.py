"""One lock per output directory: two runs never write into the same --out at once.

Without it, two runs given the same --out (two CI jobs sharing a workspace, a re-run started while the
first still runs) rewrite each other's results.json: one run's results are lost, and one run reads the
other's file. The lock is an flock on `<out>/.edge-conformance.lock`, taken before anything is started
(so an unwritable or busy --out is one line and exit 2, not a failure after a deployment came up) and
held until the run's reports are written. The kernel drops it when the process dies, so a crashed run
never leaves a stale lock. The file names the run id and pid that hold it, for the error message.

Re-entrant within a process: `edge-conformance run` takes it, and the pytest plugin it runs in the same
process takes it again for the same directory (plain `pytest --edge-profile` takes it only there).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from ..model.errors import ConfigError

LOCK_NAME = ".edge-conformance.lock"


@dataclass
class OutLock:
    directory: Path
    fd: int
    holders: int = 1


_HELD: dict[Path, OutLock] = {}


def acquire(out_dir: Path, run_id: str, option: str = "--out") -> OutLock:
    """Lock `out_dir` (created if missing) for this run, or ConfigError naming who holds it."""
    directory = Path(out_dir).resolve()
    held = _HELD.get(directory)
    if held is not None:
        held.holders += 1
        return held
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ConfigError(None, None, option, f"{out_dir}: cannot write there ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _owner(fd)
        os.close(fd)
        raise ConfigError(None, None, option, f"{out_dir} is in use by another run{owner}: give each run its own "
                                              f"{option}") from None
    except OSError as exc:
        os.close(fd)
        raise ConfigError(None, None, option, f"{out_dir}: cannot lock it ({exc.strerror or exc})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{run_id} {os.getpid()}\n".encode(), 0)
    lock = OutLock(directory, fd)
    _HELD[directory] = lock
    return lock


def release(lock: OutLock) -> None:
    lock.holders -= 1
    if lock.holders > 0:
        return
    _HELD.pop(lock.directory, None)
    try:
        os.close(lock.fd)  # closing the last descriptor drops the flock
    except OSError:
        pass


def _owner(fd: int) -> str:
    try:
        run_id, pid = os.pread(fd, 200, 0).decode("utf-8", "replace").split()[:2]
    except (OSError, ValueError):
        return ""
    return f" (run {run_id}, pid {pid})"
