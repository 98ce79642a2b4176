"""Where a run writes when no --out is given: ./edge-results/<run-id>, and ./edge-results/latest.

`latest` is a symbolic link to the newest run's directory, moved when a run starts writing there (so
`edge-conformance report edge-results/latest` and the commands' examples work). It is replaced
atomically (a new link renamed over the old), so a reader never sees it missing; where links cannot be
made (some Windows setups) it is simply not there. A run given --out never touches it.
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_DIR = "edge-results"
LATEST = "latest"


def default_out_dir(run_id: str) -> Path:
    return Path.cwd() / RESULTS_DIR / run_id


def point_latest(out_dir: Path) -> None:
    """Make <parent>/latest point at `out_dir` (relative, so the directory can be moved or archived)."""
    link = out_dir.parent / LATEST
    tmp = out_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(out_dir.name, target_is_directory=True)
        if link.exists() and not link.is_symlink():
            tmp.unlink()  # a real file or directory called latest is the user's: left alone
            return
        os.replace(tmp, link)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
