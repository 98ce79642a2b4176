"""The emulation backends, by name: what `--backend` chooses (edge-conformance run, emulate up, the
supervisor's command line).

Like pytest-testinfra's BACKENDS, a name maps to the dotted path of its class, imported only when
asked for: a `Supervisor` subclass (conformance.emulation.supervisor) that runs a deployment's sites
its way, and whose class-level hooks the harness calls before a supervisor starts (`prepare`) and
to find and remove what a run left (`labelled_objects`, `sweep`, `tidy`). The order is the one
shown to users; "local" comes first and is the default.

    local   every site a process group on this machine (conformance.emulation.local)
    docker  every site a container, real CPU and memory limits (conformance.emulation.docker)

A topology whose sites the harness reaches by ssh (`reach: ssh`, the SSH lab) has a supervisor of its
own on the backend that can run it (REACHED_BY; `supervisor_class` picks it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..model.errors import did_you_mean

if TYPE_CHECKING:
    from .supervisor import Supervisor

BACKENDS: dict[str, str] = {
    "local": "conformance.emulation.local.LocalSupervisor",
    "docker": "conformance.emulation.docker.docker_supervisor.DockerSupervisor",
}
DEFAULT = "local"
# reach (model/topology.py REACHES) -> (the backend that runs it, its supervisor class)
REACHED_BY: dict[str, tuple[str, str]] = {
    "ssh": ("docker", "conformance.emulation.docker.sshlab_supervisor.SshLabSupervisor"),
}


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no daemon, no image): the message says why."""


class UnknownBackend(ValueError):
    """No backend has that name (the message lists those that exist)."""


def backend_class(name: str) -> type[Supervisor]:
    """The class of backend `name`; UnknownBackend when there is none."""
    try:
        path = BACKENDS[name]
    except KeyError:
        raise UnknownBackend(f'emulation backend "{name}" is not available here{did_you_mean(str(name), BACKENDS)} '
                             f"(available: {', '.join(BACKENDS)})") from None
    return _import(path)


def supervisor_class(name: str, reach: str = "control") -> type[Supervisor]:
    """The supervisor of a topology with `reach` on backend `name`; UnknownBackend when that backend
    cannot run it (the message names the one that can)."""
    cls = backend_class(name)
    if reach not in REACHED_BY:
        return cls
    needs, path = REACHED_BY[reach]
    if name != needs:
        raise UnknownBackend(f"a topology whose sites are reached by {reach} (the SSH lab) runs on the {needs} "
                             f"backend, not {name}: pass --backend {needs}")
    return _import(path)


def _import(path: str) -> type[Supervisor]:
    module, _, cls = path.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def all_backends() -> list[type[Supervisor]]:
    """Every backend's class, for what concerns runs of any backend (leftovers, cleanup)."""
    return [backend_class(name) for name in BACKENDS]
