"""A service of a host: running, enabled, and how that was asked.

`Service.of(host, name)` chooses the way once, from the host's facts, as testinfra's Service module does:
systemd (when it is PID 1's init), OpenRC or upstart through testinfra's Service, or a SysV init script
through `service NAME status` and the rc?.d links. A host with none of these is HostLacks: the caller is
told to check the service's process instead (functional.process), never given a wrong answer.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ...model.errors import MeasurementError
from .edgehost import EdgeHost, HostLacks

_SYSV_NAME = re.compile(r"[A-Za-z0-9@._-]+")


@dataclass(frozen=True)
class ServiceState:
    running: bool
    enabled: bool | None  # None: the init system cannot tell
    how: str  # "systemd", "OpenRC", "upstart" or "SysV init script /etc/init.d/NAME"


class Service:
    kind = ""

    def __init__(self, host: EdgeHost, name: str):
        self.host, self.name = host, name

    @staticmethod
    def of(host: EdgeHost, name: str) -> Service:
        f = host.facts
        if f.systemd_running:
            return SystemdService(host, name)
        if f.has("rc-service"):
            return OpenRCService(host, name)
        if f.has("initctl") and f.has("status"):
            return UpstartService(host, name)
        script = f"/etc/init.d/{name}"
        if f.has("service") and _SYSV_NAME.fullmatch(name):
            t = host.host
            if host.call(lambda: t.file(script).exists, f"test -e {script}"):
                return SysvService(host, name)
        if f.has("systemctl"):
            raise HostLacks(f"host {host.name}: systemd is installed but not running (PID 1 is "
                            f"`{f.pid1 or '?'}`), and there is no {script}: cannot query service {name}; "
                            "check its process with functional.process")
        raise HostLacks(f"host {host.name} lacks an init system testinfra can query (no systemd, OpenRC, "
                        f"upstart or SysV `service`): cannot query service {name}; check its process with "
                        "functional.process")

    def state(self) -> ServiceState:
        raise NotImplementedError


class _TestinfraService(Service):
    """Asked through testinfra's Service module (which knows this init system's commands)."""

    def state(self) -> ServiceState:
        host, name, t = self.host, self.name, self.host.host
        svc = host.call(lambda: t.service(name), f"service {name}")
        running = host.call(lambda: svc.is_running, f"service {name} is running")
        try:
            enabled = host.call(lambda: svc.is_enabled, f"service {name} is enabled")
        except MeasurementError:
            enabled = None
        return ServiceState(bool(running), enabled, self.kind)


class SystemdService(_TestinfraService):
    kind = "systemd"


class OpenRCService(_TestinfraService):
    kind = "OpenRC"


class UpstartService(_TestinfraService):
    kind = "upstart"


class SysvService(Service):
    """An /etc/init.d script: `service NAME status` (LSB exit codes), enabled when an rc?.d S link exists."""

    def state(self) -> ServiceState:
        host, name = self.host, self.name
        out = host.run(f"service {shlex.quote(name)} status >/dev/null 2>&1; echo rc=$?",
                       what=f"service {name} status")
        m = re.search(r"rc=(\d+)", out.stdout)
        rc = int(m[1]) if m else -1
        if rc == 4 or rc < 0:
            raise MeasurementError(f"host {host.name}: `service {name} status` cannot tell (exit {rc})")
        links = host.run(f"ls /etc/rc[2345].d/S*{shlex.quote(name)} 2>/dev/null | head -n 1", what="rc links")
        return ServiceState(rc == 0, bool(links.stdout.strip()), f"SysV init script /etc/init.d/{name}")
