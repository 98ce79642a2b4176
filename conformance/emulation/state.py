"""Where an emulated deployment leaves its traces, and the files it writes there.

* The registry: one JSON file per running supervisor, `<runtime root>/runs/<run_id>.json`, so that
  `emulate status` and `emulate down --all` find deployments started by other processes (detached
  ones, or those of a harness that was SIGKILLed).
* The state dir of a run: target.yaml (what the harness reads), state.json (pids, ports), logs/ and
  the sites' data dirs (sites/<name>/). By default `<runtime root>/state/<run_id>`.

The runtime root is $XDG_RUNTIME_DIR/edge-conformance when that is usable, else
<tmp>/edge-conformance-<uid>: private to the user, and cleared on reboot on most systems.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def new_run_id() -> str:
    """Same shape as the engine's run ids: sortable, unique enough for one machine."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{os.urandom(3).hex()}"


def runtime_root() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        root = Path(xdg) / "edge-conformance"
    else:
        root = Path(tempfile.gettempdir()) / f"edge-conformance-{os.getuid()}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def runs_dir() -> Path:
    path = runtime_root() / "runs"
    path.mkdir(exist_ok=True)
    return path


def default_state_dir(run_id: str) -> Path:
    return runtime_root() / "state" / run_id


def entry_path(run_id: str) -> Path:
    return runs_dir() / f"{run_id}.json"


def write_entry(entry: dict[str, Any]) -> None:
    atomic_write(entry_path(entry["run_id"]), json.dumps(entry, indent=2, sort_keys=True) + "\n")


def read_entry(run_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads(entry_path(run_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_entries() -> list[dict[str, Any]]:
    out = []
    for path in sorted(runs_dir().glob("*.json")):
        entry = read_entry(path.stem)
        if entry is not None:
            out.append(entry)
    return out


def remove_entry(run_id: str) -> None:
    try:
        entry_path(run_id).unlink()
    except FileNotFoundError:
        pass


def atomic_write(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_yaml(path: Path, data: Any) -> None:
    atomic_write(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
