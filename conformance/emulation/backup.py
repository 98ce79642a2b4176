"""Back up, wipe and restore an emulated site's data directory: what an operator's backup tool does to
a real site (OPNFV Edge Cloud test case #15), done by the supervisor to a site it started.

    info = archive_site(data_dir, archive)      # live: the site keeps running
    wipe_site(data_dir)                          # the site must be stopped
    restore_site(archive, data_dir)              # the site must be stopped

A live backup must not copy a database file half-written: each SQLite database (a file that starts
with SQLite's header) is copied with SQLite's online backup API, which takes a consistent snapshot
while the site keeps writing; its -wal and -shm files are left out (the snapshot holds what they held).
Every other file (keys, certificates) is copied as it is. The archive is a gzipped tar with a manifest
(`manifest.json`: the files with their sizes and SHA-256), so a restore can refuse a damaged archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
MANIFEST = "manifest.json"


class BackupError(Exception):
    """The archive could not be written or read back as it was written."""


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _sqlite_snapshot(source: Path, dest: Path) -> None:
    """A consistent copy of a live WAL database (SQLite's online backup API)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_site(data_dir: Path, archive: Path) -> dict[str, Any]:
    """Write a backup of `data_dir` to `archive` (tar.gz); returns what it holds."""
    data_dir, archive = Path(data_dir), Path(archive)
    if not data_dir.is_dir():
        raise BackupError(f"no data directory {data_dir}")
    archive.parent.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="backup-", dir=archive.parent) as staging_dir:
        staging = Path(staging_dir)
        for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(data_dir)
            if path.name.endswith(SQLITE_SIDE_FILES) and _is_sqlite(path.with_name(_strip_side(path.name))):
                continue  # the snapshot of its database holds what it held
            copy = staging / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            if _is_sqlite(path):
                _sqlite_snapshot(path, copy)
            else:
                shutil.copy2(path, copy)
            files.append({"path": str(relative), "bytes": copy.stat().st_size, "sha256": _sha256(copy),
                          "mode": path.stat().st_mode & 0o777})
        manifest = {"taken_at": time.time(), "files": files}
        partial = archive.with_name(archive.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            body = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(body), int(manifest["taken_at"])
            tar.addfile(info, io.BytesIO(body))
            for entry in files:
                tar.add(staging / entry["path"], arcname=f"data/{entry['path']}", recursive=False)
        os.replace(partial, archive)  # never a half-written archive under the final name
    return {"archive": str(archive), "bytes": archive.stat().st_size, "sha256": _sha256(archive),
            "files": len(files), "taken_at": manifest["taken_at"]}


def _strip_side(name: str) -> str:
    for suffix in SQLITE_SIDE_FILES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def wipe_site(data_dir: Path) -> int:
    """Remove everything the site keeps (a reinstalled site); returns the files removed."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        return 0
    removed = sum(1 for p in data_dir.rglob("*") if p.is_file())
    shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    return removed


def restore_site(archive: Path, data_dir: Path) -> dict[str, Any]:
    """Replace `data_dir` with the archive's files, each checked against the manifest first."""
    archive, data_dir = Path(archive), Path(data_dir)
    if not archive.is_file():
        raise BackupError(f"no backup {archive}")
    with tempfile.TemporaryDirectory(prefix="restore-", dir=data_dir.parent) as staging_dir:
        staging = Path(staging_dir)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                manifest_file = tar.extractfile(MANIFEST)
                if manifest_file is None:
                    raise BackupError(f"{archive}: no {MANIFEST}")
                manifest = json.loads(manifest_file.read())
                members = [m for m in tar.getmembers() if m.name.startswith("data/") and m.isfile()]
                tar.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError, ValueError, KeyError) as exc:
            raise BackupError(f"{archive}: cannot be read: {exc}") from None
        for entry in manifest["files"]:
            path = staging / "data" / entry["path"]
            if not path.is_file() or _sha256(path) != entry["sha256"]:
                raise BackupError(f"{archive}: {entry['path']} is missing or differs from the manifest")
            os.chmod(path, entry.get("mode", 0o600))
        if data_dir.exists():
            shutil.rmtree(data_dir)
        shutil.move(str(staging / "data"), data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return {"archive": str(archive), "files": len(manifest["files"]), "taken_at": manifest.get("taken_at")}


def lose_records(data_dir: Path, table: str, every: int = 10) -> int:
    """The `restore-loses-records` defect: a faulty restore that drops every `every`-th row of `table`
    in each restored database that has it. Returns the rows dropped."""
    dropped = 0
    for path in sorted(p for p in Path(data_dir).rglob("*") if p.is_file() and _is_sqlite(p)):
        conn = sqlite3.connect(path)
        try:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (table,)).fetchone()
            if exists:
                cursor = conn.execute(f"DELETE FROM {table} WHERE rowid % ? = 0", (every,))  # noqa: S608 - our own table name
                dropped += cursor.rowcount
                conn.commit()
        finally:
            conn.close()
    return dropped
