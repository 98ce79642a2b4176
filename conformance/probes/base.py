"""The one interface every probe runtime implements, and what it is given and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..model.target import ProbeSpec

PROBE_PREFIX = "edge-conformance-probe-"  # every directory, process and object a run installs carries it + run id
READY_TIMEOUT_S = 30.0


class ProbeError(RuntimeError):
    """A probe could not be installed or did not come up; the message names the site and what to do."""


@dataclass
class ProbeRequest:
    site: str
    workload: str               # "central" | "edge" (edge_workloads --role)
    spec: ProbeSpec
    run_id: str
    log_dir: Path               # the harness side's log of the probe (its stderr)
    central_url: str | None = None  # edge: the central probe as this site reaches it

    @property
    def tag(self) -> str:
        """What everything this probe installs is named after: the run id, then the site."""
        return f"{PROBE_PREFIX}{self.run_id}"

    def workload_args(self, data_dir: str, port: int) -> list[str]:
        """`python -m edge_workloads` arguments (docs/workloads.md, the process contract)."""
        import json

        args = ["--role", self.workload, "--name", self.site, "--data-dir", data_dir, "--port", str(port)]
        if self.central_url:
            args += ["--central-url", self.central_url]
        if self.spec.defects:
            args += ["--defects", ",".join(self.spec.defects)]
        if self.spec.config:
            args += ["--site-config", json.dumps(self.spec.config, sort_keys=True)]
        return args


@dataclass
class Deployed:
    request: ProbeRequest
    url: str                    # http://ADDRESS:PORT, as the harness reaches it
    port: int
    handle: Any = None          # the runtime's own (a child process, a kubectl port-forward ...)
    info: dict[str, Any] = field(default_factory=dict)


class Runtime(Protocol):
    name: str

    def deploy(self, request: ProbeRequest) -> Deployed: ...

    def health(self, deployed: Deployed) -> bool: ...

    def remove(self, deployed: Deployed) -> None: ...
