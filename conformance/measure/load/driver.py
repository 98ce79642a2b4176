"""Run a load test from the harness process: start the Locust child, wait, always clean up.

Never imports locust or gevent: importing locust monkey-patches the interpreter, so Locust runs only
in the child (`python -m conformance.measure.load.child`). The child starts in a new session
(start_new_session=True) and is its process-group leader; the local workers it starts inherit that
group. One `os.killpg` therefore removes everything, and it runs on every way out: normal end, hard
timeout, KeyboardInterrupt (Ctrl-C), SIGTERM (a handler is installed for the duration of the run),
and interpreter exit (atexit). The children also exit on their own when their parent disappears
(a SIGKILLed harness cannot clean up).
"""

from __future__ import annotations

import atexit
import json
import os
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

    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="conformance-load-"))
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
