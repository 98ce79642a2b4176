"""The one way this project writes a file: atomically, with a mode chosen on purpose.

A reader (a CI job collecting artifacts, `verify`, a second terminal tailing results.json) sees the
old file or the new one, never half of one: the data goes to a temp file in the same directory, is
fsynced, given its mode and renamed over the target. A failure or Ctrl-C leaves no temp file behind.

Modes are deliberate, not whatever mkstemp made (0600):
  PUBLIC  0644  reports and bundles, meant to be shared as CI artifacts
  PRIVATE 0600  secrets: private keys, the management password, the supervisor's state
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

PUBLIC = 0o644
PRIVATE = 0o600


def write_atomic(path: Path | str, data: str | bytes, *, mode: int) -> None:
    """Write `data` (text as UTF-8 with \\n line ends, or bytes) to `path` with `mode`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomic_with(path, lambda f: f.write(payload), mode=mode)


def write_atomic_with(path: Path | str, fill: Callable[[IO[bytes]], object], *, mode: int) -> None:
    """Like write_atomic, for writers that stream into a binary file object (tar, gzip)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
