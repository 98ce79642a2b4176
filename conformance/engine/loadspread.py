"""How a run spreads each load measurement over Locust workers (`run --load-workers N`,
`--load-remote-workers M --load-master HOST:PORT`; under pytest the same with `--edge-`): the LoadConfig
fields it sets, checked before anything starts (docs/load.md, "Workers on other machines").

The options change what generates the load, not what is judged: they are recorded in results.json
`scope.load` and named in `scope.changed_by`, so every report says the run was spread. Remote workers
reach the sites at their declared addresses from their own machines, so an emulated target (its sites on
this machine's loopback) cannot use them.
"""

from __future__ import annotations

import re
from typing import Any

from ..model.errors import ConfigError

MAX_WORKERS = 64
_MASTER = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+|\*):(?P<port>\d{1,5})$")


def load_spread_of(workers: int | None, remote_workers: int, master: str | None, *, emulated: bool,
                   option: str = "--load-") -> dict[str, Any]:
    """LoadConfig fields for the options given (empty when none); ConfigError naming the option."""
    out: dict[str, Any] = {}
    if workers is not None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfigError(None, None, f"{option}workers", f"expected 1 to {MAX_WORKERS} worker processes, "
                                                              f"got {workers}")
        out["workers"] = workers
    if remote_workers:
        if not 1 <= remote_workers <= MAX_WORKERS:
            raise ConfigError(None, None, f"{option}remote-workers",
                              f"expected 0 to {MAX_WORKERS} remote workers, got {remote_workers}")
        if emulated:
            raise ConfigError(None, None, f"{option}remote-workers",
                              "an emulated target's sites listen on this machine's loopback, which workers on "
                              f"other machines cannot reach: use {option}workers")
        if not master:
            raise ConfigError(None, None, f"{option}remote-workers", f"give {option}master HOST:PORT: where "
                                                                     "each load measurement's master listens "
                                                                     "for the remote workers")
        out["remote_workers"] = remote_workers
    if master:
        m = _MASTER.match(master)
        if not m or not 1 <= int(m["port"]) <= 65535:
            raise ConfigError(None, None, f"{option}master", f'"{master}" is not HOST:PORT (e.g. 0.0.0.0:5557)')
        if not remote_workers:
            raise ConfigError(None, None, f"{option}master", f"goes with {option}remote-workers M")
        out["master_bind_host"] = m["host"].strip("[]")
        out["master_port"] = int(m["port"])
    return out


def changed_by(spread: dict[str, Any], option: str = "--load-") -> list[str]:
    """The scope's changed_by lines for a spread run."""
    lines = []
    if "workers" in spread:
        lines.append(f"{option}workers {spread['workers']}")
    if spread.get("remote_workers"):
        lines.append(f"{option}remote-workers {spread['remote_workers']} (master "
                     f"{spread['master_bind_host']}:{spread['master_port']})")
    return lines
