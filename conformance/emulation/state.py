"""Where an emulated deployment leaves its traces, and the files it writes there.

* The registry: one JSON file per running supervisor, `<runtime root>/runs/<run_id>.json`, so that
  `emulate status` and `emulate down --all` find deployments started by other processes (detached
  ones, or those of a harness that was SIGKILLed).
* The state dir of a run: target.yaml (what the harness reads), state.json (pids, ports), logs/ and
  the sites' data dirs (sites/<name>/). By default `<runtime root>/state/<run_id>`.

The runtime root (the *state root*) is $EDGE_CONFORMANCE_STATE_ROOT when set, else
$XDG_RUNTIME_DIR/edge-conformance when that is usable, else <tmp>/edge-conformance-<uid>: private to
the user, and cleared on reboot on most systems. Concurrent jobs of one user on one machine (two CI
jobs on a runner, a developer and a CI job) set EDGE_CONFORMANCE_STATE_ROOT each to a directory of
their own.

Ownership (one rule, used by `emulate status/down`, the sweeps and the fault gate): a deployment is
the caller's when its run id has a registry entry in the caller's state root. Every process and
container of a deployment carries the run id AND its state root (ROOT_ENV in the environment,
`io.edge-conformance.state-root` on containers), so a leftover is matched to the root that started
it; a process or container labelled with another root, or with no root and a run id this root's
registry does not know, is never ours.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..model.atomicfile import PRIVATE, write_atomic


def new_run_id() -> str:
    """Same shape as the engine's run ids: sortable, unique enough for one machine."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{os.urandom(3).hex()}"


ROOT_ENV = "EDGE_CONFORMANCE_STATE_ROOT"  # the state root; also the root label of every process we start


def runtime_root() -> Path:
    """The caller's state root (created, mode 0700): $EDGE_CONFORMANCE_STATE_ROOT, else the runtime dir."""
    explicit = os.environ.get(ROOT_ENV)
    if explicit:
        root = Path(explicit).expanduser().absolute()
    else:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
            root = Path(xdg) / "edge-conformance"
        else:
            root = Path(tempfile.gettempdir()) / f"edge-conformance-{os.getuid()}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def root_label(root: Path | str | None = None) -> str:
    """How processes and containers name their state root: its real path (symlinks resolved)."""
    return os.path.realpath(str(root if root is not None else runtime_root()))


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else runtime_root()


def runs_dir(root: Path | str | None = None) -> Path:
    path = _root(root) / "runs"
    path.mkdir(exist_ok=True)
    return path


def default_state_dir(run_id: str) -> Path:
    return runtime_root() / "state" / run_id


def entry_path(run_id: str, root: Path | str | None = None) -> Path:
    return runs_dir(root) / f"{run_id}.json"


def write_entry(entry: dict[str, Any]) -> None:
    write_state(entry_path(entry["run_id"]), json.dumps(entry, indent=2, sort_keys=True) + "\n")


def read_entry(run_id: str, root: Path | str | None = None) -> dict[str, Any] | None:
    try:
        data = json.loads(entry_path(run_id, root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_entries(root: Path | str | None = None) -> list[dict[str, Any]]:
    """Every registry entry of the state root `root` (default: the caller's)."""
    out = []
    for path in sorted(runs_dir(root).glob("*.json")):
        entry = read_entry(path.stem, root)
        if entry is not None:
            out.append(entry)
    return out


def remove_entry(run_id: str, root: Path | str | None = None) -> None:
    try:
        entry_path(run_id, root).unlink()
    except FileNotFoundError:
        pass


def write_state(path: Path, text: str) -> None:
    """The deployment's state files (registry entries, state.json, target.yaml): private to the user."""
    write_atomic(path, text, mode=PRIVATE)


def write_yaml(path: Path, data: Any) -> None:
    write_state(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
