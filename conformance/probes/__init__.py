"""Probe runtimes: how `run --deploy-probes` installs the reference workloads (edge_workloads) on a real
site, and removes them (docs/real-targets.md, "Probes").

A runtime is a class with one small interface (base.Runtime): deploy(request) -> Deployed (the
probe's URL once it answered its ready line), health(deployed), remove(deployed). RUNTIMES maps the
`probes.runtime` names a target file may give to the dotted path of their class, imported when
asked for, like emulation/backends.py:

    ssh     a zipapp of edge_workloads run by the site's python over a long-lived ssh connection (ssh.py)
    docker  the workloads image on the site's Docker engine, `docker run -i --rm` through the site's ssh
            host (docker.py)

kubernetes.py is the same interface on paper (kubectl commands; tested against a recorded kubectl,
never run against a cluster) and is not registered.
"""

from __future__ import annotations

import importlib

from .base import Deployed, ProbeError, ProbeRequest, Runtime

RUNTIMES: dict[str, str] = {
    "ssh": "conformance.probes.ssh.SshRuntime",
    "docker": "conformance.probes.docker.DockerRuntime",
}


def runtime_class(name: str) -> type[Runtime]:
    module, _, cls = RUNTIMES[name].rpartition(".")
    return getattr(importlib.import_module(module), cls)


__all__ = ["RUNTIMES", "Deployed", "ProbeError", "ProbeRequest", "Runtime", "runtime_class"]
