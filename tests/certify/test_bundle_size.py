"""A bundle whose members decompress to far more than a run writes is refused from its tar headers:
one line and exit 2, quickly and in bounded memory (issue 15: 3 x 500 MiB members took 1.6 GB)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time

from conformance.certify import verify as V


class _Zeros(io.RawIOBase):
    """`size` zero bytes, never all in memory."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def _bomb(path, members: int, size: int) -> None:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for i in range(members):
            info = tarfile.TarInfo(f"bundle/raw/big-{i}.json")
            info.size = size
            tar.addfile(info, io.BufferedReader(_Zeros(size)))


def test_an_oversized_member_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    _bomb(path, 3, V.MAX_MEMBER_BYTES + 1)
    assert path.stat().st_size < 2 * 2**20  # small on disk
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "conformance.cli", "verify", str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert err.strip().splitlines() == [f"edge-conformance: error: {path}: bundle too large to verify: member "
                                        f"bundle/raw/big-0.json is 64 MiB (at most 64 MiB a member)"]
    assert time.monotonic() - started < 20


def test_many_members_within_the_member_limit_are_refused_by_the_total_before_any_is_read(tmp_path, monkeypatch):
    path = tmp_path / "many.tar.gz"
    _bomb(path, 4, V.MAX_MEMBER_BYTES)
    read = []
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, member: read.append(member) or None)
    try:
        V.read_members(path)
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        assert "more than 192 MiB in all" in str(exc), exc
    else:
        raise AssertionError("a bundle of 4 x 64 MiB was read")
    assert read == []  # refused from the headers: no member was held in memory
