"""A package of a host: installed, and at which version (constraints: pkgversion.py).

Read through testinfra's Package module, which picks the host's package database; it is refused where
it would answer from the wrong (or no) database: a host without dpkg-query, rpm, apk or pacman, or whose
tool is a BusyBox applet.
"""

from __future__ import annotations

from .edgehost import EdgeHost, HostLacks

_TOOL_OF_MODULE = {"DebianPackage": "dpkg-query", "RpmPackage": "rpm", "AlpinePackage": "apk",
                   "ArchPackage": "pacman"}


class Package:
    def __init__(self, host: EdgeHost, name: str):
        self.host, self.name = host, name
        f = host.facts
        if not f.has("dpkg-query") and not any(f.has(t) and not f.busybox(t) for t in ("rpm", "apk", "pacman")):
            raise HostLacks(f"host {host.name} lacks a package database (no dpkg-query, rpm, apk or pacman): "
                            f"cannot check package {name}")
        t = host.host
        self._pkg = host.call(lambda: t.package(name), f"package {name}")
        need = _TOOL_OF_MODULE.get(type(self._pkg).__name__)
        if need is not None and not f.has(need):
            raise HostLacks(f"host {host.name} lacks a package database testinfra can read (no dpkg-query, "
                            "rpm, apk or pacman): cannot check packages")
        if need is not None and f.busybox(need):
            raise HostLacks(f"host {host.name}: its `{need}` is a BusyBox applet, not a package database "
                            "(no dpkg-query, rpm, apk or pacman): cannot check packages")

    @property
    def installed(self) -> bool:
        return bool(self.host.call(lambda: self._pkg.is_installed, f"package {self.name} installed"))

    @property
    def version(self) -> str:
        return str(self.host.call(lambda: self._pkg.version, f"package {self.name} version"))
