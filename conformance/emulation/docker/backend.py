"""Containers of a docker deployment: one DockerSite per site, and cleanup by label.

A site container runs `siteinit` (the workload, plus nginx/mosquitto when the site's `stack` asks
for them) under docker-init, on its own bridge network, with the topology's resources as real
limits (`cpus` -> NanoCpus, `memory` -> Memory and MemorySwap: no swap). Its ports (the site's
HTTP port; with nginx also the workload's own; with mosquitto the MQTT port) are chosen once, free
on the host, and published on 127.0.0.1 at the SAME number as inside the container, so what the
site listens on is what its endpoints say, and a stopped, killed or restarted container comes back
at the same address (the links and the target file stay valid).
Data lives in the container's own filesystem (/data), which survives restarts.

Restart policy: the one of every site (conformance.emulation.site, systemd's `Restart=on-failure`);
Docker's own policy is "no". The supervisor watches Docker's events and tells the site when its
container died unasked (`container_died`): a kill (137), an OOM kill, a crash of the workload, nginx
or mosquitto (1) is restarted; a clean exit with status 0 (the `exits-after-start` defect, or a
SIGTERM from outside the API) stays down in state `exited` until `start` or `restart`.

The management interface (docs/workloads.md): its port is published like the others; the site's
certificate and key and the deployment's password file (STATE_DIR/pki, all 0600 but the certificate)
are bind-mounted read-only under /run/mgmt. The CA's key never enters the container, and the password
reaches it only as that 0600 file: never in the image, the spec or the environment.

Everything carries LABEL_HARNESS and LABEL_RUN, and containers also LABEL_STATE_ROOT (the state root
of the harness that started the run, state.py), so `sweep_run(run_id)` finds leftovers of a
supervisor that was SIGKILLed, and only those of the caller's state root: a container labelled with
another root is never removed, one with no root label (an older version's) only when the caller owns
its run id. Networks carry no root label: they go with their run (`sweep_run`), and Docker refuses
to remove one that a container still uses.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

from ...model.topology import SiteSpec
from .. import state
from ..common import log
from ..procs import SpawnError
from ..site import PAUSED, RUNNING, Site, workload_config
from . import (HARNESS, LABEL_HARNESS, LABEL_KIND, LABEL_ROLE, LABEL_RUN, LABEL_SITE, MGMT_CERT, MGMT_KEY,
               MGMT_PASSWORD, SITE_ENV, STACK_DEFECTS, STACK_KEY, STACK_SERVICES, WORKLOAD_ARGV)

LABEL_STATE_ROOT = "io.edge-conformance.state-root"  # containers: the state root that owns the run

STOP_GRACE_S = 5
HEALTH_POLL_S = 0.1
DOCKER_TIMEOUT_S = 60


class DockerUnavailable(RuntimeError):
    """No Docker daemon can be used from here (the message says why)."""


def connect(timeout: float = DOCKER_TIMEOUT_S) -> Any:
    """A docker client whose daemon answered a ping; DockerUnavailable otherwise."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise DockerUnavailable(f"the docker Python SDK is not installed ({exc})") from None
    try:
        client = docker.from_env(timeout=timeout, max_pool_size=64)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds; all mean "not usable"
        raise DockerUnavailable(f"no Docker daemon reachable: {type(exc).__name__}: {exc}") from None


def daemon_problem() -> str | None:
    """None when a Docker daemon answers; else why not (for skips and error messages)."""
    try:
        connect(timeout=5).close()
        return None
    except DockerUnavailable as exc:
        return str(exc)


def container_name(run_id: str, site: str) -> str:
    return f"edgeconf-{run_id}-{site}"


def stack_of(spec: SiteSpec) -> list[str]:
    raw = spec.config.get(STACK_KEY) or []
    if isinstance(raw, str):
        raw = [raw]
    unknown = [s for s in raw if s not in STACK_SERVICES]
    if unknown:
        raise ValueError(f"site {spec.name}: config.{STACK_KEY}: unknown service(s) {unknown} "
                         f"(known: {', '.join(STACK_SERVICES)})")
    for defect in spec.defects:  # a defect of a service the site does not run would change nothing
        service = STACK_DEFECTS.get(defect)
        if service and service not in raw:
            raise ValueError(f"site {spec.name}: defect {defect} breaks {service}, which the site does not run "
                             f"(config.{STACK_KEY}: {list(raw)})")
    return [s for s in STACK_SERVICES if s in raw]


def mgmt_mounts(mgmt: Any) -> dict[str, dict[str, str]]:
    """Bind mounts (docker SDK `volumes`) of a site's management files (a pki.SiteTls), read-only."""
    return {str(mgmt.cert): {"bind": MGMT_CERT, "mode": "ro"},
            str(mgmt.key): {"bind": MGMT_KEY, "mode": "ro"},
            str(mgmt.password_file): {"bind": MGMT_PASSWORD, "mode": "ro"}}


def free_port() -> int:
    """A port free on 127.0.0.1 now (Docker binds it a moment later; a clash is retried)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------- one site


class DockerSite(Site):
    """One site container and its life (a `Site`: the control API drives it as any other)."""

    def __init__(self, spec: SiteSpec, *, client: Any, run_id: str, image: str, network: str,
                 start_timeout: float, on_change: Callable[[], None] | None = None,
                 after_start: Callable[[DockerSite], Any] | None = None, mgmt: Any = None):
        super().__init__(spec, run_id=run_id, start_timeout=start_timeout, on_change=on_change, mgmt=mgmt)
        self.client = client
        self.image = image
        self.network = network
        self.container_name = container_name(run_id, spec.name)
        self.stack = stack_of(spec)
        self.port = free_port()                       # the site's HTTP port (direct), inside and out
        self.app_port = free_port() if "nginx" in self.stack else None  # the workload behind nginx
        self.mqtt_port = free_port() if "mosquitto" in self.stack else None
        self.mgmt_port = free_port() if mgmt is not None else None  # the workload's own, even behind nginx
        self.mqtt_uplink: str | None = None           # host:port of the WAN link's MQTT channel
        self.container: Any = None
        self.data_dir = "/data"
        self._after_start = after_start
        self._expect_exit = False

    # ------------------------------------------------------------------ container

    def site_document(self) -> dict[str, Any]:
        """The spec siteinit reads from $EDGE_CONFORMANCE_SITE."""
        return {"name": self.name, "role": self.spec.role, "workload": self.spec.workload,
                "defects": list(self.spec.defects), "config": workload_config(self.spec),
                "central_url": self.central_url, "stack": self.stack, "mqtt_uplink": self.mqtt_uplink,
                "cache_ttl_s": self.spec.config.get("cache_ttl_s", 5.0), "port": self.port,
                "app_port": self.app_port, "mqtt_port": self.mqtt_port, "mgmt_port": self.mgmt_port}

    def _create(self) -> Any:
        from docker.types import LogConfig

        ports = {f"{p}/tcp": ("127.0.0.1", p)
                 for p in (self.port, self.app_port, self.mqtt_port, self.mgmt_port) if p}
        volumes = mgmt_mounts(self.mgmt) if self.mgmt is not None else {}
        res = self.spec.resources
        limits: dict[str, Any] = {}
        if res.cpus:
            limits["nano_cpus"] = int(round(res.cpus * 1e9))
        if res.memory_bytes:
            limits["mem_limit"] = int(res.memory_bytes)
            limits["memswap_limit"] = int(res.memory_bytes)  # no swap: a small box's RAM is its RAM
        labels = {LABEL_HARNESS: HARNESS, LABEL_RUN: self.run_id, LABEL_SITE: self.name,
                  LABEL_ROLE: self.spec.role, LABEL_KIND: "site", LABEL_STATE_ROOT: state.root_label()}
        return self.client.containers.create(
            self.image, name=self.container_name, hostname=self.name[:63], labels=labels,
            environment={SITE_ENV: json.dumps(self.site_document(), sort_keys=True)},
            network=self.network, ports=ports, volumes=volumes, init=True, stop_signal="SIGTERM",
            restart_policy={"Name": "no"}, detach=True,
            log_config=LogConfig(type="json-file", config={"max-size": "2m", "max-file": "1"}), **limits)

    def _ensure_created(self) -> Any:
        if self.container is None:
            self.container = self._create()
        return self.container

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    async def _docker_state(self) -> dict[str, Any]:
        if self.container is None:
            return {}
        await self._call(self.container.reload)
        return self.container.attrs.get("State") or {}

    # ------------------------------------------------------------------ lifecycle

    async def _alive(self) -> bool:
        return bool((await self._docker_state()).get("Running"))

    async def _launch(self, state: str) -> None:
        import docker

        self.state = state
        self._expect_exit = False
        try:
            container = await self._call(self._ensure_created)
            await self._call(container.start)
        except docker.errors.APIError as exc:
            raise SpawnError(f"container {self.container_name}: {exc.explanation or exc}") from None
        exited = await self._wait_ready()
        if self.closing:
            raise SpawnError("deployment is shutting down")
        self.started_at = time.time()
        if exited:  # ready, then a clean exit before we saw it answer: started, and already down
            self.exited(0)
            return
        self.state = RUNNING
        if self._after_start is not None:
            await self._after_start(self)
        self._on_change()

    async def _wait_ready(self) -> bool:
        """Until the site answers on its published port(s) and the workload has printed its ready line
        (it does so once every listener, the management interface's included, is up). True when the
        container already exited with status 0 after its ready line (the site started, then stopped
        cleanly by itself); SpawnError when it exited before it was ready, or never got ready."""
        import aiohttp

        deadline = time.monotonic() + self.start_timeout
        url = self.health_url
        last = "no answer"
        checked = 0.0
        started_at: float | None = None
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)) as http:
            while time.monotonic() < deadline:
                if self.closing:
                    raise SpawnError("deployment is shutting down")
                if time.monotonic() - checked > 0.5:
                    checked = time.monotonic()
                    st = await self._docker_state()
                    started_at = docker_time(st.get("StartedAt"))
                    if not st.get("Running"):
                        self.last_exit = st.get("ExitCode")
                        if st.get("ExitCode") == 0 and not st.get("OOMKilled") \
                                and await self._printed_ready_line(started_at):
                            return True
                        why = (f" (killed by the kernel's OOM killer at the container's memory limit, "
                               f"{self.spec.resources.memory_bytes} bytes)" if st.get("OOMKilled") else "")
                        raise SpawnError(f"container {self.container_name} exited with status "
                                         f"{st.get('ExitCode')}{why} before it was ready{await self.log_tail()}")
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            if self.mqtt_port is not None and not await mqtt_ready("127.0.0.1", self.mqtt_port):
                                last = "mosquitto not answering yet"
                            elif self.mgmt_port is not None and not await self._printed_ready_line(started_at):
                                last = "no ready line from the workload yet (management interface starting)"
                            else:
                                return False
                        else:
                            last = f"HTTP {resp.status}"
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    last = repr(exc)
                await asyncio.sleep(HEALTH_POLL_S)
        raise SpawnError(f"container {self.container_name} not ready within {self.start_timeout:g} s "
                         f"({last}){await self.log_tail()}")

    async def _printed_ready_line(self, since: float | None) -> bool:
        """The workload's ready line (its only stdout line per start) since the container's start."""
        if self.container is None:
            return False
        kwargs: dict[str, Any] = {"stdout": True, "stderr": False}
        if since:
            kwargs["since"] = since
        try:
            out = (await self._call(self.container.logs, **kwargs)).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - retried by the caller's loop
            return False
        return any(_is_ready_line(line) for line in out.splitlines())

    async def log_tail(self, lines: int = 8) -> str:
        if self.container is None:
            return ""
        try:
            text = (await self._call(self.container.logs, tail=lines)).decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 - best effort, for an error message
            return ""
        return ("; last log lines: " + " | ".join(t.strip() for t in text.splitlines())) if text else ""

    async def _halt(self) -> None:
        import docker

        if self.container is None:
            return
        self._expect_exit = True
        try:
            st = await self._docker_state()
            if st.get("Paused"):
                await self._call(self.container.unpause)
            if st.get("Running"):
                await self._call(self.container.stop, timeout=STOP_GRACE_S)
            st = await self._docker_state()
            self.last_exit = st.get("ExitCode")
        except docker.errors.NotFound:
            self.container = None

    async def _kill(self) -> int | None:
        """SIGKILL the container (its init and everything in it)."""
        if (await self._docker_state()).get("Paused"):
            await self._call(self.container.unpause)
        await self._call(self.container.kill, signal="SIGKILL")
        waited = await self._call(self.container.wait, timeout=10)
        return (waited or {}).get("StatusCode")

    async def _pause(self) -> None:
        if not (await self._docker_state()).get("Paused"):
            await self._call(self.container.pause)

    async def _resume(self) -> None:
        if (await self._docker_state()).get("Paused"):
            await self._call(self.container.unpause)

    async def _remove(self, keep_logs_to: Any = None) -> None:
        """The container is removed (its logs saved to `keep_logs_to` first, with --keep)."""
        import docker

        if self.container is None:
            return
        if keep_logs_to is not None:
            try:
                keep_logs_to.write_bytes(await self._call(self.container.logs))
            except Exception:  # noqa: BLE001 - logs are a courtesy
                pass
        try:
            st = await self._docker_state()
            if st.get("Paused"):
                await self._call(self.container.unpause)
            await self._call(self.container.remove, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            log(f"removing {self.container_name}: {exc.explanation or exc}")

    # ------------------------------------------------------------------ Docker's events

    def container_died(self, exit_code: int | None) -> None:
        """Docker says the container died (called on the event loop)."""
        if self.closing or not self.want_running or self._expect_exit:
            return
        asyncio.get_running_loop().create_task(self._after_death(exit_code))

    async def _after_death(self, exit_code: int | None) -> None:
        """Decided under the lock, on what Docker says now, so a late event of a container that was
        started again meanwhile, or a death during a start (which that start reports itself), changes
        nothing; then the restart policy (Site.exited)."""
        async with self.lock:
            if self.closing or not self.want_running or self._expect_exit:
                return
            try:
                st = await self._docker_state()
            except Exception:  # noqa: BLE001 - removed or no daemon: decide on the event's code
                st = {"ExitCode": exit_code}
            if st.get("Running"):
                return
            self.exited(st.get("ExitCode", exit_code), oom=bool(st.get("OOMKilled")))

    # ------------------------------------------------------------------ reporting

    @property
    def container_pid(self) -> int | None:
        if self.container is None:
            return None
        pid = (self.container.attrs.get("State") or {}).get("Pid")
        return pid or None

    def pid(self) -> int | None:
        return self.container_pid if self.state in (RUNNING, PAUSED) else None

    def status(self) -> dict[str, Any]:
        c = self.container
        return {**super().status(), "data_dir": self.data_dir, "log": f"docker logs {self.container_name}",
                "container": self.container_name, "container_id": c.id if c is not None else None,
                "image": self.image, "network": self.network, "stack": self.stack, "app_port": self.app_port,
                "mqtt_port": self.mqtt_port, "mgmt_port": self.mgmt_port}

    def extra_endpoints(self) -> dict[str, str]:
        endpoints = {}
        if self.app_port:
            endpoints["app"] = f"http://127.0.0.1:{self.app_port}"  # the workload itself, behind nginx
            if self.central_url:  # nginx's content cache of central's origin (stack.http_cache)
                endpoints["cache"] = f"http://127.0.0.1:{self.port}/cdn/"
        if self.mqtt_port:
            endpoints["mqtt"] = f"mqtt://127.0.0.1:{self.mqtt_port}"  # mosquitto (stack.mqtt_bridge)
        return endpoints

    def target_hosts(self) -> list[str]:
        return [f"docker://{self.container_name}"]

    def target_labels(self) -> dict[str, Any]:
        return {"workload": self.spec.workload, "backend": "docker", "container": self.container_name,
                "container_id": self.container.id if self.container is not None else None,
                "container_pid": self.container_pid, "image": self.image, "network": self.network,
                "data_dir": self.data_dir, "resources_cpus": self.spec.resources.cpus,
                "resources_memory": self.spec.resources.memory_bytes, "defects": list(self.spec.defects),
                "stack": self.stack, "log": f"docker logs {self.container_name}",
                # The container's main process as `ps` shows it: the site's own process for
                # functional.process on the docker:// host.
                "command": " ".join(WORKLOAD_ARGV)}


def _is_ready_line(line: str) -> bool:
    try:
        doc = json.loads(line)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("ready") is True


def docker_time(value: str | None) -> float | None:
    """Docker's RFC 3339 timestamp ("2025-01-02T03:04:05.123456789Z") as epoch seconds; None if unset."""
    import datetime as dt

    if not value or value.startswith("0001-"):
        return None
    text = value.rstrip("Z")
    whole, _, frac = text.partition(".")
    try:
        base = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    digits = "".join(ch for ch in frac if ch.isdigit())
    return base.timestamp() + (int(digits) / 10 ** len(digits) if digits else 0.0)


async def mqtt_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """An MQTT 3.1.1 CONNECT answered by a CONNACK: the broker behind a published port is up."""
    connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0])
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    try:
        writer.write(connect)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readexactly(4), timeout)
        return reply[0] == 0x20 and reply[3] == 0
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()


# ------------------------------------------------------------------------------- stats, cleanup


def container_stats(client: Any, name_or_id: str) -> dict[str, Any]:
    """Docker's one-shot stats: memory in use (without page cache), its limit, CPU seconds used."""
    raw = client.api.stats(name_or_id, stream=False, one_shot=True)
    mem = raw.get("memory_stats") or {}
    stats = mem.get("stats") or {}
    usage = mem.get("usage") or 0
    cache = stats.get("total_inactive_file", stats.get("inactive_file", 0)) or 0
    cpu = (raw.get("cpu_stats") or {}).get("cpu_usage") or {}
    return {"memory_bytes": max(0, usage - cache), "memory_usage_bytes": usage, "memory_limit_bytes": mem.get("limit"),
            "rss_bytes": stats.get("total_rss", stats.get("rss")), "cpu_seconds": (cpu.get("total_usage") or 0) / 1e9,
            "pids": (raw.get("pids_stats") or {}).get("current")}


def _label_filter(run_id: str | None) -> dict[str, list[str]]:
    labels = [f"{LABEL_HARNESS}={HARNESS}"]
    if run_id is not None:
        labels.append(f"{LABEL_RUN}={run_id}")
    return {"label": labels}


def labelled_objects(client: Any | None = None) -> list[dict[str, Any]]:
    """Every container and network of ours on the daemon, of every state root (for the ownership
    rule in deployment.py to sort out): {kind, id, name, run_id, root (None: no root label), state}."""
    client = client or connect(timeout=10)
    out: list[dict[str, Any]] = []
    for c in client.api.containers(all=True, filters=_label_filter(None)):
        labels = c.get("Labels") or {}
        if labels.get(LABEL_RUN):
            out.append({"kind": "container", "id": c["Id"], "name": ((c.get("Names") or ["?"])[0]).lstrip("/"),
                        "run_id": labels[LABEL_RUN], "root": _root_of(labels), "state": c.get("State")})
    for n in client.api.networks(filters=_label_filter(None)):
        labels = n.get("Labels") or {}
        if labels.get(LABEL_RUN):
            out.append({"kind": "network", "id": n["Id"], "name": n.get("Name", n["Id"]),
                        "run_id": labels[LABEL_RUN], "root": _root_of(labels), "state": None})
    return out


def _root_of(labels: dict[str, str]) -> str | None:
    root = labels.get(LABEL_STATE_ROOT)
    return root or None


def labelled_run_ids(client: Any | None = None) -> set[str]:
    """Run ids of every container or network of ours that still exists (any state root)."""
    return set(labelled_containers(client))


def labelled_containers(client: Any | None = None) -> dict[str, list[str]]:
    """run id -> names of its containers (any state), for every run with a container or network of ours
    (any state root: for display; ownership is deployment.py's)."""
    runs: dict[str, list[str]] = {}
    for obj in labelled_objects(client):
        names = runs.setdefault(obj["run_id"], [])
        if obj["kind"] == "container":
            names.append(obj["name"])
    return {run: sorted(names) for run, names in runs.items()}


def sweep_run(run_id: str | None, client: Any | None = None, *, root: str | None = None,
              legacy: bool = True) -> dict[str, list[str]]:
    """Remove the containers, then the networks, of `run_id` that belong to the state root `root`
    (default: the caller's): containers labelled with that root, or (with `legacy`) with none; the
    run's networks once its containers are gone. `run_id` None: every run whose containers carry
    that root (never a container of another root, nor an unlabelled one)."""
    import docker

    client = client or connect(timeout=30)
    mine = state.root_label(root)
    removed: dict[str, list[str]] = {"containers": [], "networks": []}
    objects = [o for o in labelled_objects(client) if run_id is None or o["run_id"] == run_id]
    if run_id is None:
        runs = {o["run_id"] for o in objects if o["kind"] == "container" and o["root"] == mine}
        objects = [o for o in objects if o["run_id"] in runs]
        legacy = False
    foreign_runs = {o["run_id"] for o in objects if o["root"] not in (mine, None)}
    for c in (o for o in objects if o["kind"] == "container"):
        if not (c["root"] == mine or (legacy and c["root"] is None)):
            continue  # another state root's (or, without `legacy`, nobody's we know): not ours
        try:
            if c.get("state") == "paused":
                client.api.unpause(c["id"])
            client.api.remove_container(c["id"], force=True)
            removed["containers"].append(c["name"])
        except docker.errors.APIError:
            pass
    for n in (o for o in objects if o["kind"] == "network"):
        if n["root"] not in (mine, None) or (n["root"] is None and n["run_id"] in foreign_runs):
            continue  # the same run id in another state root: its network, not ours to judge
        try:
            client.api.remove_network(n["id"])  # refused while a container (anyone's) still uses it
            removed["networks"].append(n["name"])
        except docker.errors.APIError:
            pass
    return removed


# ------------------------------------------------------------------- for deployment.py (harness side)


def _daemon_configured() -> bool:
    import os

    return bool(os.environ.get("DOCKER_HOST")) or os.path.exists("/var/run/docker.sock")


def quiet_run_ids() -> set[str]:
    """labelled_run_ids(), or nothing when there is no usable daemon (never raises)."""
    return {o["run_id"] for o in quiet_objects()}


def quiet_containers() -> dict[str, list[str]]:
    """labelled_containers(), or nothing when there is no usable daemon (never raises)."""
    runs: dict[str, list[str]] = {}
    for obj in quiet_objects():
        names = runs.setdefault(obj["run_id"], [])
        if obj["kind"] == "container":
            names.append(obj["name"])
    return {run: sorted(names) for run, names in runs.items()}


def quiet_objects() -> list[dict[str, Any]]:
    """labelled_objects(), or nothing when there is no usable daemon (never raises)."""
    if not _daemon_configured():
        return []
    try:
        client = connect(timeout=10)
        try:
            return labelled_objects(client)
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no daemon, no docker leftovers we could remove anyway
        return []


def quiet_sweep(run_id: str | None, *, images: bool = False, root: str | None = None,
                legacy: bool = True) -> dict[str, list[str]]:
    """sweep_run() of the caller's state root (and, with images, remove_temporary_images() when no
    deployment could be using them) when a daemon answers; never raises."""
    if not _daemon_configured():
        return {}
    try:
        client = connect(timeout=10)
    except DockerUnavailable:
        return {}
    try:
        removed = sweep_run(run_id, client, root=root, legacy=legacy)
        if images:
            removed["images"] = _remove_temporary_images_if_unused(client)
        return removed
    except Exception:  # noqa: BLE001
        return {}
    finally:
        client.close()


def quiet_remove_temporary_images() -> list[str]:
    """`emulate down --all`: temporary images, when a daemon answers and nothing could be using them
    (see _remove_temporary_images_if_unused); never raises."""
    if not _daemon_configured():
        return []
    try:
        client = connect(timeout=10)
    except DockerUnavailable:
        return []
    try:
        return _remove_temporary_images_if_unused(client)
    except Exception:  # noqa: BLE001
        return []
    finally:
        client.close()


def _remove_temporary_images_if_unused(client: Any) -> list[str]:
    """Images are shared by every state root of the user: temporary ones go only while no container of
    ours (any root) exists and no build holds the images module's build lock."""
    import fcntl

    from .images import cache_dir, remove_temporary_images

    if client.api.containers(all=True, filters=_label_filter(None)):
        return []
    with open(cache_dir() / "build.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []  # an image is being built right now (perhaps for another state root)
        try:
            return remove_temporary_images(client)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(progress: Callable[[str], None] | None = None) -> str:
    """Harness side, before a docker supervisor starts: a daemon answers and the site image exists
    (built now if needed, which may take a minute). Returns the image tag; raises DockerUnavailable
    or images.ImageError."""
    from .images import ensure_image

    client = connect()
    try:
        return ensure_image(client, progress=progress).tag
    finally:
        client.close()
