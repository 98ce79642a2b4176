"""DockerSupervisor: the supervisor of a deployment whose sites are containers.

    python -m conformance.emulation.supervisor --backend docker --topology NAME|PATH [...]

It is the local supervisor (conformance.emulation.supervisor.Supervisor) with Docker underneath: the
same control API (so conformance.faults.emulated works unchanged), the same ready line, registry
entry, target file shape, stdin/signal handling and restart policy; only what a site and a link are
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
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...model.topology import LinkSpec
from .. import procs, state
from ..linkctl import Linkd, _q
from ..supervisor import BringUpError, Supervisor, _all, _emit, _log
from . import LABEL_RUN, LABEL_SITE, WORKLOAD_ARGV, backend, images, net

RELAYD_MODULE = "conformance.emulation.docker.relayd"
RESTART_START_TIMEOUT_S = 30.0
KERNEL_FIELDS = net.KERNEL_FIELDS  # what kernel netem takes over from the relay, where the kernel has it
EXECUTOR_THREADS = 24


class RelayClient(Linkd):
    """relayd (linkd + listen_host) as a child of the supervisor."""

    @classmethod
    async def start_relay(cls, *, run_id: str, log_path: Path, timeout: float) -> RelayClient:
        argv = procs.module_argv(RELAYD_MODULE, "--run-id", run_id)
        proc, ready = await procs.spawn(argv, run_id=run_id, log_path=log_path, timeout=timeout)
        return cls(proc, int(ready["control_port"]))

    async def put_bound(self, name: str, listen_host: str, upstream_port: int, params: dict[str, Any],
                        partitioned: bool = False) -> dict[str, Any]:
        body = {"upstream": f"127.0.0.1:{upstream_port}", "listen_host": listen_host, **params,
                "partitioned": partitioned}
        return await self._call("PUT", f"/links/{_q(name)}", body)


@dataclass
class Channel:
    relay_name: str     # the link's name in relayd
    listen_host: str
    upstream: str       # site whose published port the relay forwards to
    port_kind: str      # "api" | "mqtt"
    listen_port: int = 0


class DockerSupervisor(Supervisor):
    backend_name = "docker"

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

    # ------------------------------------------------------------------ main flow

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(EXECUTOR_THREADS, "docker"))
        try:
            self.client = await asyncio.to_thread(backend.connect)
            self.image = await asyncio.to_thread(images.ensure_image, self.client, progress=_log)
            for spec in self.topology.sites:
                backend.stack_of(spec)
        except (backend.DockerUnavailable, images.ImageError, ValueError) as exc:
            _log(f"bring-up failed: {exc}")
            _emit({"ready": False, "error": f"docker backend: {exc}", "pid": os.getpid(), "run_id": self.run_id})
            return 1
        self.netem, self.netem_note = await asyncio.to_thread(net.netem_support)
        _log(f"image {self.image.tag} ({'built' if self.image.built else 'cached'}); WAN delay/jitter/loss by "
             f"{'kernel netem' if self.netem else 'the user-space relay'} ({self.netem_note})")
        return await super().run()

    async def _bring_up(self) -> None:
        started = time.monotonic()
        await self._start_control_api()
        logs = self.state_dir / "logs"
        self._start_events()
        self.mgmt = await asyncio.to_thread(self._prepare_mgmt)  # STATE_DIR/pki, before any container

        async def start_relay() -> None:
            self.linkd = await RelayClient.start_relay(run_id=self.run_id, log_path=logs / "relayd.log",
                                                       timeout=self.timeout)

        async def make_network(name: str) -> None:
            try:
                network, gateway = await asyncio.to_thread(net.create_site_network, self.client, self.run_id, name)
            except net.NetError as exc:
                raise BringUpError(str(exc)) from None
            self.networks[name], self.gateways[name] = network, gateway

        await _all([start_relay(), *(make_network(s.name) for s in self.topology.sites)])
        assert self.image is not None and self.mgmt is not None
        for spec in self.topology.sites:
            self.sites[spec.name] = backend.DockerSite(  # type: ignore[assignment]
                spec, client=self.client, run_id=self.run_id, image=self.image.tag,
                network=self.networks[spec.name].name, start_timeout=self.timeout,
                on_change=self._site_changed, after_start=self._site_started, mgmt=self.mgmt.sites[spec.name])

        for link in self.links.values():
            self.channels[link.name] = self._channels_of(link)
        await _all(self._put_link_channels(link) for link in self.links.values())
        for s in self.sites.values():
            wan = self.channels.get(f"wan:{s.name}")
            if wan:
                s.central_url = f"http://{wan[0].listen_host}:{wan[0].listen_port}"
                mqtt = [c for c in wan if c.port_kind == "mqtt"]
                if mqtt:
                    s.mqtt_uplink = f"{mqtt[0].listen_host}:{mqtt[0].listen_port}"
        await _all(s.start() for s in self.sites.values())
        for s in self.sites.values():
            s.start_timeout = RESTART_START_TIMEOUT_S
        await self._wait_healthy(started + self.timeout - 1.0)
        _log(f"{len(self.sites)} containers and {len(self.links)} links up in {time.monotonic() - started:.1f} s")

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
        assert isinstance(self.linkd, RelayClient)
        first: dict[str, Any] = {}
        for chan in self.channels[link.name]:
            reply = await self.linkd.put_bound(chan.relay_name, chan.listen_host, self._upstream_port(chan),
                                               self._relay_params(link))
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
                from ..link import LinkParams

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
            _log(f"{name}: kernel netem failed ({exc}); the relay shapes this link instead")
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
            _log(f"site {site.name}: out of memory (limit {site.spec.resources.memory_bytes} bytes)")
        elif action == "die":
            try:
                code = int(attrs.get("exitCode", ""))
            except ValueError:
                code = None
            site.container_died(code)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ reporting

    async def status(self) -> dict[str, Any]:
        data = await super().status()
        data["backend"] = "docker"
        data["image"] = self.image.tag if self.image else None
        data["wan_shaping"] = {"netem": self.netem, "why": self.netem_note}
        data["relayd"] = data.get("linkd")  # the same daemon; "linkd" kept for status readers
        by_name = {link.name: link for link in self.links.values()}
        for entry in data["links"]:
            link = by_name.get(entry["name"])
            if link is not None:
                entry.update({k: v for k, v in self._decorate(link, {}).items()})
        return data

    def target_document(self) -> dict[str, Any]:
        sites = []
        for s in self.sites.values():
            assert isinstance(s, backend.DockerSite)
            entry: dict[str, Any] = {"name": s.name, "role": s.spec.role}
            if s.spec.uplink:
                entry["uplink"] = s.spec.uplink
            endpoints = {"api": f"http://127.0.0.1:{self.link_ports[f'access:{s.name}']}",
                         "direct": f"http://127.0.0.1:{s.port}"}
            wan = self.channels.get(f"wan:{s.name}")
            if wan:
                endpoints["wan"] = f"http://{wan[0].listen_host}:{wan[0].listen_port}"
            if s.app_port:
                endpoints["app"] = f"http://127.0.0.1:{s.app_port}"  # the workload itself, behind nginx
            if s.mqtt_port:
                endpoints["mqtt"] = f"tcp://127.0.0.1:{s.mqtt_port}"
            # mgmt: the workload's own TLS port, published at the same number (not via nginx)
            self._add_mgmt(entry, endpoints, s.mgmt_port)
            entry["hosts"] = [f"docker://{s.container_name}"]
            entry["labels"] = {"workload": s.spec.workload, "backend": "docker", "container": s.container_name,
                               "container_id": s.container.id if s.container is not None else None,
                               "container_pid": s.container_pid, "image": s.image, "network": s.network,
                               "data_dir": s.data_dir, "resources_cpus": s.spec.resources.cpus,
                               "resources_memory": s.spec.resources.memory_bytes, "defects": list(s.spec.defects),
                               "stack": s.stack, "log": f"docker logs {s.container_name}",
                               # The container's main process as `ps` shows it: the site's own
                               # process for functional.process on the docker:// host.
                               "command": " ".join(WORKLOAD_ARGV)}
            sites.append(entry)
        return self._target_envelope("docker", sites)

    def _entry(self) -> dict[str, Any]:
        entry = super()._entry()
        entry["backend"] = "docker"
        return entry

    # ------------------------------------------------------------------ teardown

    async def _teardown(self) -> None:
        _log(f"shutting down ({self.stop_reason or 'bring-up failed'})")
        self.stopping.set()
        self._stop_events()
        logs = self.state_dir / "logs"
        await asyncio.gather(*(s.close(keep_logs_to=logs / f"{s.name}.log" if self.keep else None)
                               for s in self.sites.values()), return_exceptions=True)
        await asyncio.to_thread(self._remove_networks)
        if self.linkd is not None:
            await self.linkd.close()
        leftovers = procs.find_labelled(self.run_id).get(self.run_id, [])
        if leftovers:
            _log(f"killing {len(leftovers)} leftover process(es): {[p.pid for p in leftovers]}")
            await asyncio.to_thread(procs.kill_processes, leftovers)
        if self.client is not None:
            try:  # anything labelled with our run id that the steps above missed
                swept = await asyncio.to_thread(backend.sweep_run, self.run_id, self.client)
                if swept["containers"] or swept["networks"]:
                    _log(f"removed leftovers: {swept}")
            except Exception as exc:  # noqa: BLE001 - the daemon may be gone; emulate down --all retries
                _log(f"cleanup by label failed: {exc!r}")
        if self._runner is not None:
            await self._runner.cleanup()
        if not self.keep:
            self._remove_files()
        state.remove_entry(self.run_id)

    def _remove_networks(self) -> None:
        for name, network in list(self.networks.items()):
            try:
                network.remove()
            except Exception as exc:  # noqa: BLE001 - swept by label afterwards
                _log(f"removing network {network.name}: {exc!r}")
            self.networks.pop(name, None)
