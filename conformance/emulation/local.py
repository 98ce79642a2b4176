"""The local backend: every site a process group on this machine, every link a relay in linkd.

    python -m conformance.emulation.supervise --topology NAME|PATH [--backend local] [...]

Needs nothing but this package: no root, no Docker, no netem (docs/emulation.md). Bring-up: linkd and
the central sites start together (central needs no link); then a WAN link per edge site (upstream:
its uplink), since an edge reaches its uplink only through it; then every edge site at once (its
central URL is its WAN link); then an access link in front of every site (what clients use). Sites
start concurrently, so 50 stores come up in seconds; above forkserver.FORK_ABOVE sites (or with
EDGE_CONFORMANCE_SITE_PROCESSES=fork) they are forked by one fork server instead of exec'd one by one,
which a thousand sites need to fit in memory and start in a minute.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..model.topology import LinkSpec
from .common import gather_all
from .forkserver import ForkServer, mode_for
from .linkctl import Linkd
from .local_site import LocalSite
from .supervisor import Supervisor


class LocalSupervisor(Supervisor):
    backend_name = "local"

    forkserver: ForkServer | None = None

    async def _start_sites(self) -> None:
        assert self.mgmt is not None
        logs = self.state_dir / "logs"
        self.site_processes = mode_for(len(self.topology.sites))
        if self.site_processes == "fork":
            self.forkserver = ForkServer(run_id=self.run_id, log_path=logs / "forkserver.log", timeout=self.timeout)
        for spec in self.topology.sites:
            self.sites[spec.name] = LocalSite(
                spec, run_id=self.run_id, data_dir=self.state_dir / "sites" / spec.name,
                log_path=logs / f"{spec.name}.log", start_timeout=self.timeout, on_change=self._site_changed,
                mgmt=self.mgmt.sites[spec.name], forkserver=self.forkserver)
        centrals = [s for s in self.sites.values() if s.spec.uplink is None]
        edges = [s for s in self.sites.values() if s.spec.uplink is not None]

        async def start_linkd() -> None:
            self.linkd = await Linkd.start(run_id=self.run_id, log_path=logs / "linkd.log", timeout=self.timeout)

        await gather_all([start_linkd(), *(s.start() for s in centrals)])
        await gather_all(self._put_link(self.links[f"wan:{s.name}"]) for s in edges)
        for s in edges:
            s.central_url = f"http://127.0.0.1:{self.link_ports[f'wan:{s.name}']}"
        await gather_all(s.start() for s in edges)
        await gather_all(self._put_link(self.links[f"access:{s.name}"]) for s in self.sites.values())

    async def _after_sites_close(self) -> None:
        if self.forkserver is not None:
            await self.forkserver.close()

    def _upstream_port(self, link: LinkSpec) -> int:
        return self.sites[link.peer if link.kind == "wan" else link.site].port

    async def _put_link(self, link: LinkSpec) -> dict[str, Any]:
        """Create the link, or put it back to the topology's parameters, healed (same listen port)."""
        assert self.linkd is not None
        reply = await self.linkd.put(link.name, self._upstream_port(link), link.params())
        self.link_ports[link.name] = int(reply["listen_port"])
        return reply

    async def patch_links(self, links: list[LinkSpec], fields: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.linkd is not None
        return list(await asyncio.gather(*(self.linkd.patch(link.name, fields) for link in links)))

    async def reset_links(self, links: list[LinkSpec]) -> list[dict[str, Any]]:
        return [await self._put_link(link) for link in links]

