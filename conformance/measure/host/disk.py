"""What is on a host's disks: free space under a path, space used by paths, world-readable files.

local:// hosts read through psutil are read directly (os, shutil); other hosts through `df`, `du` and
`find`, named when the host lacks them.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import stat

from ...model.errors import MeasurementError
from .edgehost import EdgeHost


def free_space(host: EdgeHost, path: str) -> tuple[int, int]:
    """(free, total) bytes of the file system holding `path`."""
    if host.uses_psutil:
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            raise MeasurementError(f"{path}: {exc.strerror or exc}") from None
        return usage.free, usage.total
    host.require("df", purpose="measure free disk space")
    out = host.run(f"df -Pk {shlex.quote(path)}", what=f"df {path}")
    rows = [ln.split() for ln in out.stdout.splitlines()[1:] if ln.strip()]
    if out.rc != 0 or not rows or len(rows[-1]) < 4:
        raise MeasurementError(f"host {host.name}: df {path}: {out.stderr.strip()[:200] or 'no answer'}")
    row = rows[-1]
    return int(row[3]) * 1024, int(row[1]) * 1024


def disk_used(host: EdgeHost, paths: list[str]) -> int:
    """Bytes allocated on disk under `paths` (like `du -s`)."""
    if host.uses_psutil:
        return sum(local_disk_used(p) for p in paths)
    host.require("du", purpose="measure disk use")
    quoted = " ".join(shlex.quote(p) for p in paths)
    out = host.run(f"du -sk {quoted}", timeout=max(host.timeout, 30.0), what="du -sk")
    if out.rc != 0:
        cause = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit status {out.rc}"
        raise MeasurementError(f"host {host.name}: du: {cause}")
    total = 0
    for line in out.stdout.splitlines():
        first = line.split(None, 1)[0] if line.strip() else ""
        if first.isdigit():
            total += int(first) * 1024
    return total


def local_disk_used(path: str, max_files: int = 1_000_000) -> int:
    """Bytes allocated on disk under path (like `du -s`), hard links counted once, links not followed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise MeasurementError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise MeasurementError(f"{path}: {exc.strerror or exc}") from None
    seen: set[tuple[int, int]] = set()
    total = 0
    count = 0

    def add(s: os.stat_result) -> None:
        nonlocal total
        key = (s.st_dev, s.st_ino)
        if s.st_nlink > 1:
            if key in seen:
                return
            seen.add(key)
        total += getattr(s, "st_blocks", 0) * 512 if hasattr(s, "st_blocks") else s.st_size

    add(st)
    if not stat.S_ISDIR(st.st_mode):
        return total
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            count += 1
            if count > max_files:
                raise MeasurementError(f"{path}: more than {max_files} files; give narrower paths")
            try:
                s = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            add(s)
            if stat.S_ISDIR(s.st_mode):
                stack.append(entry.path)
    return total


def world_readable(host: EdgeHost, paths: list[str], patterns: list[str],
                   limit: int) -> tuple[list[str], int, list[str]]:
    """Regular files under `paths` whose names match `patterns` and that everyone may read ("PATH (0644)"
    locally, "PATH" elsewhere), how many files were looked at, and notes."""
    if host.uses_psutil:
        return _local_world_readable(paths, patterns, limit)
    host.require("find", purpose="look for secret files")
    names = " -o ".join(f"-name {shlex.quote(pat)}" for pat in patterns)
    roots = " ".join(shlex.quote(p) for p in paths)
    # Count every file, print the matching world-readable ones with their mode.
    script = (f"find {roots} -type f 2>/dev/null | wc -l; echo __found__; "
              f"find {roots} -type f \\( {names} \\) -perm -0004 2>/dev/null")
    out = host.run(script, timeout=max(host.timeout, 30.0), what="find secret files")
    head, _, found = out.stdout.partition("__found__")
    lines = head.strip().splitlines()
    scanned = int(lines[-1]) if lines and lines[-1].strip().isdigit() else 0
    for root in paths:
        check = host.run(f"test -e {shlex.quote(root)} && echo yes", what=f"test -e {root}")
        if "yes" not in check.stdout:
            raise MeasurementError(f"host {host.name}: {root}: no such file or directory")
    return [line.strip() for line in found.splitlines() if line.strip()], scanned, []


def _local_world_readable(paths: list[str], patterns: list[str], limit: int) -> tuple[list[str], int, list[str]]:
    found, notes, scanned = [], [], 0
    for root in paths:
        if not os.path.exists(root):
            raise MeasurementError(f"{root}: no such file or directory")
        for dirpath, _dirnames, filenames in os.walk(root, onerror=lambda e: notes.append(f"cannot read {e.filename}")):
            for name in filenames:
                scanned += 1
                if scanned > limit:
                    raise MeasurementError(f"more than {limit} files under {', '.join(paths)}; "
                                           "give narrower paths or max_files")
                if not any(fnmatch.fnmatch(name, pat) for pat in patterns):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IROTH:
                    found.append(f"{path} ({stat.S_IMODE(st.st_mode):04o})")
    return found, scanned, notes
