"""SshLabSupervisor: the supervisor of a topology whose sites the harness reaches by ssh (`reach: ssh`,
the built-in `ssh-lab`), on the docker backend.

    edge-conformance run --profile retail --target emulated:ssh-lab --backend docker

It is a DockerSupervisor for everything a deployment shares (the image, the ready line, the registry
entry, the control API for `emulate status`, stdin/signal handling, cleanup by the run's labels), but
its sites are the SSH lab's store servers (sshlab.py): containers that run only sshd, no workload, no
relay. Its target file is the one a real lab would have (ssh:// hosts with strict known_hosts, a
`probes:` section per site, a WAN grant per edge) plus a `lab:` block naming this run, which is how the
harness knows the sites are its own: it deploys the probes there without --deploy-probes and injects
the built-in faults (nft inside the store, over ssh) without --allow-faults, as it does on any emulated
deployment it started (conformance.faults.faults_for asks the registry, as for a control API). The
emulator's own link faults are refused here: the lab's WAN is cut on the sites themselves.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ...model.topology import LinkSpec
from .. import state
from ..common import log
from ..supervisor import BringUpError
from . import HARNESS, LABEL_HARNESS, LABEL_KIND, LABEL_ROLE, LABEL_RUN, LABEL_SITE
from .backend import LABEL_STATE_ROOT
from .docker_supervisor import DockerSupervisor
from .sshlab import LabError, SshLab

NO_LINK_FAULTS = ("the SSH lab's WAN is cut on the sites themselves (built-in faults over ssh), "
                  "not by the emulator's links")


class SshLabSupervisor(DockerSupervisor):
    backend_name = "docker"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lab: SshLab | None = None

    def _labels(self, site: str | None, kind: str) -> dict[str, str]:
        labels = {LABEL_HARNESS: HARNESS, LABEL_RUN: self.run_id, LABEL_KIND: kind,
                  LABEL_STATE_ROOT: state.root_label()}
        if site is not None:
            labels.update({LABEL_SITE: site, LABEL_ROLE: self.topology.site(site).role})
        return labels

    async def _bring_up(self) -> None:
        started = time.monotonic()
        await self._start_control_api()
        assert self.image is not None
        sites = [(s.name, s.role, s.uplink, list(s.defects)) for s in self.topology.sites]
        # held before it starts: a bring-up cancelled (Ctrl-C, the timeout) is stopped by teardown, and the
        # thread that brings it up ends at its next step
        self.lab = SshLab(self._make_dir(self.state_dir / "lab"), client=self.client,
                          name=f"emulated-{self.topology.name}")
        try:
            await asyncio.to_thread(self.lab.bring_up, self.image.tag, sites, prefix=f"edgeconf-{self.run_id}",
                                    labels_of=self._labels)
        except LabError as exc:
            raise BringUpError(str(exc)) from None
        log(f"SSH lab: {len(sites)} sites answering ssh in {time.monotonic() - started:.1f} s")

    async def _start_sites(self) -> None:  # the lab's sites are started by _bring_up
        raise NotImplementedError

    async def patch_links(self, links: list[LinkSpec], fields: dict[str, Any]) -> list[dict[str, Any]]:
        raise LookupError(NO_LINK_FAULTS)

    async def reset_links(self, links: list[LinkSpec]) -> list[dict[str, Any]]:
        raise LookupError(NO_LINK_FAULTS)

    def target_document(self) -> dict[str, Any]:
        assert self.lab is not None
        lab = {"run_id": self.run_id, "backend": self.backend_name, "topology": self.topology.name,
               "control_url": self.control_url, "state_dir": str(self.state_dir)}
        return self.lab.target_doc(extra={"lab": lab})

    def _entry(self) -> dict[str, Any]:
        return {**super()._entry(), "reach": "ssh"}  # lab_not_ours: only an SSH lab's entry vouches for a lab

    def _lab_sites(self) -> list[dict[str, Any]]:
        if self.lab is None:
            return []
        return [{"name": s.name, "role": s.role, "ssh_port": s.ssh_port, "probe_port": s.probe_port,
                 "address": s.address, "container": s.container.name if s.container is not None else None}
                for s in self.lab.sites]

    def _state_document(self) -> dict[str, Any]:
        return {**super()._state_document(), "sites": {s["name"]: s for s in self._lab_sites()}}

    async def status(self) -> dict[str, Any]:
        data = await super().status()
        data["sites"] = self._lab_sites()
        data["links"] = []  # no emulated links: the sites share one bridge network, cut with nft on site
        data["reach"] = "ssh"
        return data

    async def _after_sites_close(self) -> None:
        if self.lab is not None:
            for problem in await asyncio.to_thread(self.lab.stop):
                log(f"SSH lab: {problem}")
        await super()._after_sites_close()  # and anything else labelled with the run id
