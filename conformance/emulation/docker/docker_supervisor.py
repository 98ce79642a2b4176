"""DockerSupervisor: the docker backend, a deployment whose sites are containers.

    python -m conformance.emulation.supervise --backend docker --topology NAME|PATH [...]

It is a Supervisor (conformance.emulation.supervisor) like the local backend's: the same control API
(so conformance.faults.emulated works unchanged), the same ready line, registry entry, target file
shape, stdin/signal handling, and the restart policy of every Site; only what a site and a link are
differs:

* a site is a DockerSite (backend.py): a container on its own bridge network, with the topology's
  CPU and memory limits; kill = SIGKILL of the container, stop/start/restart = docker stop/start,
  pause/resume = docker pause/unpause (cgroup freezer);
* links are served by relayd (linkd's relay, on the host): access links on 127.0.0.1 in front of
  each site's published port; the WAN link of an edge on the gateway address of the edge's own
  network, relaying to its uplink's published port. An edge with mosquitto has a second relay on
  the same WAN link for MQTT ("wan:<site>#mqtt"): partition, heal, PATCH and reset act on both.
  Where the kernel has netem, delay/jitter/loss of WAN links are applied by tc netem instead of the
  relay (net.py); partitions and bandwidth stay in the relay.

Bring-up: Docker ping and the site image (images.py; built if missing, cached by digest), then the
control API, the events watcher, the management interface's CA, certificates and password
(STATE_DIR/pki, as the local backend), relayd and one network per site, the links, every container
at once, and finally /health through the published port and through the access link of every site.
Every site serves the TLS management interface on its own published port (endpoint `mgmt`, the
deployment's CA as the site's `ca_file`); its certificate, key and the password file are
bind-mounted read-only into its container (backend.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...model.topology import LinkSpec
from ..common import gather_all, log
from ..link import LinkParams
from ..linkctl import Linkd
from ..backends import BackendUnavailable
from ..supervisor import BringUpError, Supervisor
from . import LABEL_RUN, LABEL_SITE, backend, images, net

RELAYD_MODULE = "conformance.emulation.docker.relayd"
KERNEL_FIELDS = net.KERNEL_FIELDS  # what kernel netem takes over from the relay, where the kernel has it
EXECUTOR_THREADS = 24


@dataclass
class Channel:
    relay_name: str     # the link's name in relayd
    listen_host: str
    upstream: str       # site whose published port the relay forwards to
    port_kind: str      # "api" | "mqtt"
    listen_port: int = 0


class DockerSupervisor(Supervisor):
    backend_name = "docker"
    site_processes = "container"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.client: Any = None
        self.image: images.SiteImage | None = None
        self.networks: dict[str, Any] = {}
        self.gateways: dict[str, str] = {}
        self.channels: dict[str, list[Channel]] = {}
        self.shapers: dict[str, net.NetemShaper] = {}
        self.kernel_params: dict[str, dict[str, Any]] = {}
        self.netem, self.netem_note = False, ""
        self._events: Any = None

    # ------------------------------------------------------------------ the harness's side

    @classmethod
    def prepare(cls, progress: Callable[[str], None]) -> None:
        """A daemon answers and the site image exists (built now if needed, about a minute once)."""
        try:
            backend.prepare(progress=progress)
        except (backend.DockerUnavailable, images.ImageError) as exc:
            raise BackendUnavailable(f"docker backend: {exc}") from None

    @classmethod
    def labelled_objects(cls) -> list[dict[str, Any]]:
        return backend.quiet_objects()

    @classmethod
    def sweep(cls, run_id: str | None, *, root: str | None = None, legacy: bool = True) -> None:
        backend.quiet_sweep(run_id, root=root, legacy=legacy)  # the run's containers, then its networks

    @classmethod
    def tidy(cls) -> None:
        backend.quiet_remove_temporary_images()  # only while no deployment (of any root) has a container

    # ------------------------------------------------------------------ bring-up

    async def _prepare(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(EXECUTOR_THREADS, "docker"))
        try:
            self.client = await asyncio.to_thread(backend.connect)
            self.image = await asyncio.to_thread(images.ensure_image, self.client, progress=log)
            for spec in self.topology.sites:
                backend.stack_of(spec)
        except (backend.DockerUnavailable, images.ImageError, ValueError) as exc:
            raise BackendUnavailable(f"docker backend: {exc}") from None
        self.netem, self.netem_note = await asyncio.to_thread(net.netem_support)
        log(f"image {self.image.tag} ({'built' if self.image.built else 'cached'}); WAN delay/jitter/loss by "
            f"{'kernel netem' if self.netem else 'the user-space relay'} ({self.netem_note})")

    async def _start_sites(self) -> None:
        logs = self.state_dir / "logs"
        self._start_events()

        async def start_relay() -> None:
            self.linkd = await Linkd.start(run_id=self.run_id, log_path=logs / "relayd.log",
                                           timeout=self.timeout, module=RELAYD_MODULE)

        async def make_network(name: str) -> None:
            try:
                network, gateway = await asyncio.to_thread(net.create_site_network, self.client, self.run_id, name)
            except net.NetError as exc:
                raise BringUpError(str(exc)) from None
            self.networks[name], self.gateways[name] = network, gateway

        await gather_all([start_relay(), *(make_network(s.name) for s in self.topology.sites)])
        assert self.image is not None and self.mgmt is not None
        for spec in self.topology.sites:
            self.sites[spec.name] = backend.DockerSite(
                spec, client=self.client, run_id=self.run_id, image=self.image.tag,
                network=self.networks[spec.name].name, start_timeout=self.timeout,
                on_change=self._site_changed, after_start=self._site_started, mgmt=self.mgmt.sites[spec.name])

        for link in self.links.values():
            self.channels[link.name] = self._channels_of(link)
        await gather_all(self._put_link_channels(link) for link in self.links.values())
        for s in self._docker_sites():
            wan = self.channels.get(f"wan:{s.name}")
            if wan:
                s.central_url = f"http://{wan[0].listen_host}:{wan[0].listen_port}"
                mqtt = [c for c in wan if c.port_kind == "mqtt"]
                if mqtt:
                    s.mqtt_uplink = f"{mqtt[0].listen_host}:{mqtt[0].listen_port}"
        await gather_all(s.start() for s in self.sites.values())

    def _docker_sites(self) -> list[backend.DockerSite]:
        return [s for s in self.sites.values() if isinstance(s, backend.DockerSite)]

    # ------------------------------------------------------------------ links

    def _channels_of(self, link: LinkSpec) -> list[Channel]:
        if link.kind == "access":
            return [Channel(link.name, "127.0.0.1", link.site, "api")]
        site, peer = self.sites[link.site], self.sites[link.peer]
        gateway = self.gateways[link.site]
        chans = [Channel(link.name, gateway, peer.name, "api")]
        if site.mqtt_port and peer.mqtt_port:
            chans.append(Channel(f"{link.name}#mqtt", gateway, peer.name, "mqtt"))
        kernel = net.split_shaping(link.params(), self.netem)[1]
        if kernel is not None:
            self.kernel_params[link.name] = kernel
        return chans

    def _relay_params(self, link: LinkSpec) -> dict[str, Any]:
        return net.split_shaping(link.params(), link.name in self.kernel_params)[0]

    def _upstream_port(self, chan: Channel) -> int:
        site = self.sites[chan.upstream]
        return site.mqtt_port if chan.port_kind == "mqtt" else site.port

    async def _put_link_channels(self, link: LinkSpec) -> dict[str, Any]:
        assert self.linkd is not None
        first: dict[str, Any] = {}
        for chan in self.channels[link.name]:
            reply = await self.linkd.put(chan.relay_name, self._upstream_port(chan), self._relay_params(link),
                                         listen_host=chan.listen_host)
            chan.listen_port = int(reply["listen_port"])
            first = first or reply
        self.link_ports[link.name] = self.channels[link.name][0].listen_port
        return self._decorate(link, first)

    def _decorate(self, link: LinkSpec, reply: dict[str, Any]) -> dict[str, Any]:
        out = dict(reply)
        kernel = self.kernel_params.get(link.name)
        if kernel is not None:
            out.update(kernel)
        out["shaping"] = "netem+relay" if kernel is not None else "relay"
        out["channels"] = [c.relay_name for c in self.channels.get(link.name, [])]
        return out

    async def patch_links(self, links: list[LinkSpec], fields: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.linkd is not None
        return list(await asyncio.gather(*(self._patch_one(link, fields) for link in links)))

    async def _patch_one(self, link: LinkSpec, fields: dict[str, Any]) -> dict[str, Any]:
        assert self.linkd is not None
        relay_fields = dict(fields)
        if link.name in self.kernel_params:
            kernel = {k: relay_fields.pop(k) for k in KERNEL_FIELDS if k in relay_fields}
            if kernel:
                LinkParams.from_mapping(kernel)  # validate as the relay would (ValueError -> 500 otherwise)
                self.kernel_params[link.name].update(kernel)
                shaper = self.shapers.get(link.name)
                if shaper is not None:
                    await asyncio.to_thread(shaper.change, self.kernel_params[link.name])
        replies = [await self.linkd.patch(c.relay_name, relay_fields) for c in self.channels[link.name]]
        return self._decorate(link, replies[0])

    async def reset_links(self, links: list[LinkSpec]) -> list[dict[str, Any]]:
        replies = []
        for link in links:
            if link.name in self.kernel_params:
                self.kernel_params[link.name] = {k: link.params()[k] for k in KERNEL_FIELDS}
                shaper = self.shapers.get(link.name)
                if shaper is not None:
                    await asyncio.to_thread(shaper.change, self.kernel_params[link.name])
            replies.append(await self._put_link_channels(link))
        return replies

    async def _site_started(self, site: backend.DockerSite) -> None:
        """After every (re)start: kernel shaping lives in the container's (new) network namespace."""
        name = f"wan:{site.name}"
        if name not in self.kernel_params or site.container_pid is None:
            return
        chans = self.channels[name]
        shaper = self.shapers.get(name) or net.NetemShaper(chans[0].listen_host, [c.listen_port for c in chans])
        try:
            await asyncio.to_thread(shaper.install, site.container_pid, self.kernel_params[name])
            self.shapers[name] = shaper
        except (net.NetError, OSError) as exc:
            log(f"{name}: kernel netem failed ({exc}); the relay shapes this link instead")
            params = self.kernel_params.pop(name)
            self.shapers.pop(name, None)
            if self.linkd is not None:
                for c in chans:
                    await self.linkd.patch(c.relay_name, params)

    # ------------------------------------------------------------------ docker events

    def _start_events(self) -> None:
        loop = asyncio.get_running_loop()
        stream = self.client.events(decode=True, filters={"type": "container", "event": ["die", "oom"],
                                                          "label": [f"{LABEL_RUN}={self.run_id}"]})
        self._events = stream

        def pump() -> None:
            try:
                for event in stream:
                    loop.call_soon_threadsafe(self._docker_event, event)
            except Exception:  # noqa: BLE001 - closed at shutdown, or the daemon went away
                pass

        threading.Thread(target=pump, name="docker-events", daemon=True).start()

    def _stop_events(self) -> None:
        if self._events is not None:
            try:
                self._events.close()
            except Exception:  # noqa: BLE001
                pass
            self._events = None

    def _docker_event(self, event: dict[str, Any]) -> None:
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        site = self.sites.get(attrs.get(LABEL_SITE, ""))
        action = event.get("Action") or event.get("status")
        if site is None or self.stopping.is_set():
            return
        if action == "oom":
            log(f"site {site.name}: out of memory (limit {site.spec.resources.memory_bytes} bytes)")
        elif action == "die":
            try:
                code = int(attrs.get("exitCode", ""))
            except ValueError:
                code = None
            if isinstance(site, backend.DockerSite):
                site.container_died(code)

    # ------------------------------------------------------------------ reporting

    async def status(self) -> dict[str, Any]:
        data = await super().status()
        data["image"] = self.image.tag if self.image else None
        data["wan_shaping"] = {"netem": self.netem, "why": self.netem_note}
        data["relayd"] = data.get("linkd")  # the same daemon; "linkd" kept for status readers
        by_name = {link.name: link for link in self.links.values()}
        for entry in data["links"]:
            link = by_name.get(entry["name"])
            if link is not None:
                entry.update({k: v for k, v in self._decorate(link, {}).items()})
        return data

    # ------------------------------------------------------------------ teardown

    def _before_sites_close(self) -> None:
        self._stop_events()

    async def _after_sites_close(self) -> None:
        await asyncio.to_thread(self._remove_networks)
        if self.client is not None:
            try:  # anything labelled with our run id that the steps above missed
                swept = await asyncio.to_thread(backend.sweep_run, self.run_id, self.client)
                if swept["containers"] or swept["networks"]:
                    log(f"removed leftovers: {swept}")
            except Exception as exc:  # noqa: BLE001 - the daemon may be gone; emulate down --all retries
                log(f"cleanup by label failed: {exc!r}")

    def _remove_networks(self) -> None:
        for name, network in list(self.networks.items()):
            try:
                network.remove()
            except Exception as exc:  # noqa: BLE001 - swept by label afterwards
                log(f"removing network {network.name}: {exc!r}")
            self.networks.pop(name, None)
