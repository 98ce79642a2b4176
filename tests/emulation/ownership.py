"""What the ownership tests (test_ownership.py, test_ownership_emulated.py) share: a small topology, run
ids of their own, and the CLI run under a given state root with no Docker daemon."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conformance.emulation import state as emu_state

from tests.helpers.cli import CLI, cli_env

NO_DOCKER = "unix:///nonexistent/edge-conformance-test.sock"  # no daemon: docker listings are empty
SMALL = """\
sites:
  - {name: central, role: central}
  - {name: shop, role: edge}
wan: {default_delay: 2 ms}
"""


def run_id(tag: str) -> str:
    return f"test-own-{tag}-{os.getpid()}-{os.urandom(2).hex()}"


def root_env(root: Path | None, **extra: str) -> dict[str, str]:
    """This environment, with the state root `root` (None: no root at all) and no Docker daemon."""
    env = cli_env()
    env.pop(emu_state.ROOT_ENV, None)
    if root is not None:
        env[emu_state.ROOT_ENV] = str(root)
    env["DOCKER_HOST"] = NO_DOCKER
    env.update(extra)
    return env


def cli(*args, root: Path, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], env=root_env(root, **extra), capture_output=True, text=True,
                          timeout=timeout)
