"""A kernel parameter (sysctl) of a host: /proc/sys/KEY read with `cat`, else testinfra's `sysctl`."""

from __future__ import annotations

import re
import shlex

from ...model.errors import MeasurementError
from .edgehost import EdgeHost, HostLacks

_KEY = re.compile(r"[A-Za-z0-9_.\-/]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class Sysctl:
    def __init__(self, host: EdgeHost, key: str):
        if not _KEY.fullmatch(key):
            raise MeasurementError(f"key: {key!r} is not a sysctl key")
        self.host, self.key = host, key
        self.proc_path = "/proc/sys/" + key.replace(".", "/")

    @property
    def value(self) -> str:
        """The value as text, whitespace runs made one space ("4096 87380 6291456")."""
        host, key = self.host, self.key
        out = host.run(f"cat {shlex.quote(self.proc_path)} 2>/dev/null", what=f"read {self.proc_path}")
        text = out.stdout.strip() if out.rc == 0 else None
        if text is None and host.facts.has("sysctl"):
            t = host.host
            try:
                text = str(host.call(lambda: t.sysctl(key), f"sysctl {key}")).strip()
            except MeasurementError:
                text = None
        if text is None:
            if not host.facts.proc and not host.facts.has("sysctl"):
                raise HostLacks(f"host {host.name} lacks /proc/sys and `sysctl`: cannot read {key}")
            raise MeasurementError(f"host {host.name}: no sysctl {key} ({self.proc_path} does not exist)")
        return " ".join(text.split())


def as_number(value: str) -> float | None:
    """A sysctl value that is one number, as a number; None otherwise."""
    return float(value) if _NUMBER.fullmatch(value) else None


def same_value(value: str, want: object) -> bool:
    """The value read equals the one expected, compared as text (true/false as 1/0)."""
    expected = ("1" if want else "0") if isinstance(want, bool) else " ".join(str(want).split())
    return value == expected
