"""One file of a host: whether it exists, its content (the first MiB), permission bits and owner."""

from __future__ import annotations

import shlex

from ...model.errors import MeasurementError
from .edgehost import EdgeHost

MAX_CONTENT = 1 << 20


class File:
    """Read through testinfra's File module (stat) and `head` (content), every call under a deadline."""

    def __init__(self, host: EdgeHost, path: str):
        self.host, self.path = host, path
        t = host.host
        self._file = host.call(lambda: t.file(path), f"file {path}")

    @property
    def exists(self) -> bool:
        return bool(self.host.call(lambda: self._file.exists, f"test -e {self.path}"))

    @property
    def content(self) -> str:
        """The first MAX_CONTENT bytes, as text."""
        out = self.host.run(f"head -c {MAX_CONTENT} -- {shlex.quote(self.path)}", what=f"read {self.path}")
        if out.rc != 0:
            raise MeasurementError(f"host {self.host.name}: cannot read {self.path}: {out.stderr.strip()[:200]}")
        return out.stdout

    @property
    def mode(self) -> int:
        """Permission bits of the file a symbolic link points to (of the file itself otherwise)."""
        host, f, path = self.host, self._file, self.path
        if host.call(lambda: f.is_symlink, f"test -L {path}"):
            real = host.call(lambda: f.linked_to, f"readlink -f {path}")
            t = host.host
            f = host.call(lambda: t.file(real), f"file {real}")
        target = f
        return int(host.call(lambda: target.mode, f"stat {path}"))

    @property
    def user(self) -> str:
        return str(self.host.call(lambda: self._file.user, f"owner of {self.path}"))
