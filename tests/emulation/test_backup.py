"""Backing up, wiping and restoring a site's data directory (conformance/emulation/backup.py): a live
backup of a database that is being written is consistent, a restore gives back exactly what was backed
up, a damaged archive is refused, and the defect's faulty restore loses records."""

from __future__ import annotations

import sqlite3
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conformance.emulation.backup import BackupError, archive_site, lose_records, restore_site, wipe_site


def make_site(data_dir: Path) -> sqlite3.Connection:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "site.key").write_bytes(b"secret key bytes")
    (data_dir / "site.key").chmod(0o600)
    conn = sqlite3.connect(data_dir / "site.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE pos_tx (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, amount INTEGER)")
    return conn


def ids(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / "site.db")
    try:
        return [r[0] for r in conn.execute("SELECT id FROM pos_tx ORDER BY seq")]
    finally:
        conn.close()


def test_a_live_backup_is_consistent_and_a_restore_returns_exactly_what_was_backed_up(tmp_path):
    data = tmp_path / "store-1"
    conn = make_site(data)
    for i in range(200):
        conn.execute("INSERT INTO pos_tx (id, amount) VALUES (?, ?)", (f"s{i}", i))
    stop = threading.Event()

    def keep_selling():  # the site keeps writing while it is backed up
        i = 200
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO pos_tx (id, amount) VALUES (?, ?)", (f"s{i}", i))
            conn.execute("INSERT INTO pos_tx (id, amount) VALUES (?, ?)", (f"s{i}-pair", i))
            conn.execute("COMMIT")
            i += 1

    writer = threading.Thread(target=keep_selling)
    writer.start()
    try:
        time.sleep(0.05)
        info = archive_site(data, tmp_path / "backups" / "store-1-1.tar.gz")
        time.sleep(0.05)
    finally:
        stop.set()
        writer.join()
    assert info["files"] == 2 and info["bytes"] > 0 and len(info["sha256"]) == 64
    with tarfile.open(info["archive"]) as tar:
        names = sorted(tar.getnames())
    assert names == ["data/site.db", "data/site.key", "manifest.json"]  # no -wal/-shm: the snapshot has it

    written = ids(data)
    assert wipe_site(data) >= 2 and list(data.iterdir()) == []
    restore_site(Path(info["archive"]), data)
    restored = ids(data)
    # a prefix of what was written (nothing after the snapshot), whole transactions only
    assert 200 <= len(restored) < len(written) and restored == written[: len(restored)]
    assert all(f"{i}-pair" in restored for i in restored if not i.endswith("-pair") and int(i[1:]) >= 200)
    assert (data / "site.key").read_bytes() == b"secret key bytes"
    assert (data / "site.key").stat().st_mode & 0o777 == 0o600


def test_a_damaged_or_missing_archive_is_refused_and_the_data_is_left_alone(tmp_path):
    data = tmp_path / "store-1"
    conn = make_site(data)
    conn.execute("INSERT INTO pos_tx (id, amount) VALUES ('a', 1)")
    info = archive_site(data, tmp_path / "b.tar.gz")
    with pytest.raises(BackupError, match="no backup"):
        restore_site(tmp_path / "nothing.tar.gz", data)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(Path(info["archive"]).read_bytes()[:100])
    with pytest.raises(BackupError, match="cannot be read"):
        restore_site(broken, data)
    assert ids(data) == ["a"]  # untouched by the refused restores


def test_the_faulty_restore_of_the_defect_loses_every_tenth_record(tmp_path):
    data = tmp_path / "store-1"
    conn = make_site(data)
    for i in range(100):
        conn.execute("INSERT INTO pos_tx (id, amount) VALUES (?, ?)", (f"s{i}", i))
    conn.close()
    assert lose_records(data, "pos_tx") == 10
    assert len(ids(data)) == 90
    assert lose_records(data, "no_such_table") == 0
