"""Networks of a docker deployment and the kernel side of its WAN links.

Every site gets its own bridge network (labelled with the run id) from a private pool
(EDGE_CONFORMANCE_DOCKER_SUBNETS, default 10.231.0.0/16 cut into /28s: 4096 sites). Docker's
isolation rules drop forwarding between two of our bridges, so an edge container cannot reach
central's container at all: its only way out is the host's address on its own bridge (the network's
gateway), where the supervisor's relay (relayd) listens for that site's WAN link. The networks are
not `internal` because Docker ignores published ports on internal networks, and the harness reaches
every site through ports published on 127.0.0.1 (there is no route out of this machine anyway).

Kernel netem: `netem_support()` tries `tc qdisc add dev lo root netem` once in a throwaway network
namespace. Where it works (and EDGE_CONFORMANCE_NETEM is not "off"), `NetemShaper` applies the WAN
link's delay, jitter, loss and rate in the kernel (`split_shaping`), per direction: on the edge
container's eth0 for packets to the relay, and on the host end of its veth for packets from the
relay (prio qdisc + u32 filter + netem leaf). The relay then carries only partitions. On kernels
without netem (such as the one this was developed on: CONFIG_NET_SCH_NETEM is not set) the relay does
everything, as in the local backend. The netem path is unit-tested with the detection faked; it has
not run on a kernel with netem.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import zlib
from typing import Any

from . import HARNESS, LABEL_HARNESS, LABEL_KIND, LABEL_RUN, LABEL_SITE

SUBNETS_ENV = "EDGE_CONFORMANCE_DOCKER_SUBNETS"
DEFAULT_POOL = "10.231.0.0/16"
SITE_PREFIX = 28
NETEM_ENV = "EDGE_CONFORMANCE_NETEM"  # auto (default) | off | on
TC_TIMEOUT_S = 10.0


class NetError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------ networks


def network_name(run_id: str, site: str) -> str:
    return f"edgeconf-{run_id}-{site}"


def _pools() -> list[ipaddress.IPv4Network]:
    text = os.environ.get(SUBNETS_ENV, "").strip() or DEFAULT_POOL
    pools = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            pools.append(ipaddress.IPv4Network(part.strip(), strict=False))
    return pools


def _used_subnets(client: Any) -> list[ipaddress.IPv4Network]:
    used = []
    for net in client.api.networks():
        for cfg in ((net.get("IPAM") or {}).get("Config") or []):
            try:
                used.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.netmask and ":" not in a.address:
                    try:
                        used.append(ipaddress.IPv4Network(f"{a.address}/{a.netmask}", strict=False))
                    except ValueError:
                        pass
    except ImportError:
        pass
    return [u for u in used if u.version == 4]


def create_site_network(client: Any, run_id: str, site: str, *, attempts: int = 64) -> tuple[Any, str]:
    """A bridge network for one site; returns (network, gateway address)."""
    import docker
    from docker.types import IPAMConfig, IPAMPool

    name = network_name(run_id, site)
    labels = {LABEL_HARNESS: HARNESS, LABEL_RUN: run_id, LABEL_SITE: site, LABEL_KIND: "network"}
    used = _used_subnets(client)
    candidates = [s for pool in _pools() for s in pool.subnets(new_prefix=SITE_PREFIX)]
    if not candidates:
        raise NetError(f"{SUBNETS_ENV}: no /{SITE_PREFIX} subnet in {_pools()}")
    start = zlib.crc32(name.encode()) % len(candidates)  # spread concurrent runs over the pool
    tried = 0
    last = ""
    for i in range(len(candidates)):
        subnet = candidates[(start + i) % len(candidates)]
        if any(subnet.overlaps(u) for u in used):
            continue
        gateway = str(next(subnet.hosts()))
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)])
        try:
            network = client.networks.create(name, driver="bridge", ipam=ipam, labels=labels, check_duplicate=True,
                                              options={"com.docker.network.bridge.enable_icc": "true"})
            return network, gateway
        except docker.errors.APIError as exc:
            last = str(exc.explanation or exc)
            if "overlap" not in last.lower():
                raise NetError(f"network {name}: {last}") from None
            used.append(subnet)  # another run took it meanwhile
        tried += 1
        if tried >= attempts:
            break
    raise NetError(f"network {name}: no free /{SITE_PREFIX} subnet in {SUBNETS_ENV}={_pools()} ({last})")


# -------------------------------------------------------------------------------- kernel netem

_netem: tuple[bool, str] | None = None


def netem_support() -> tuple[bool, str]:
    """(usable, why): can this kernel do `tc ... netem`? Tried once per process, in a fresh netns."""
    global _netem
    if _netem is not None:
        return _netem
    mode = os.environ.get(NETEM_ENV, "auto").strip().lower()
    if mode in ("off", "0", "no", "false"):
        _netem = (False, f"{NETEM_ENV}={mode}")
    elif os.geteuid() != 0:
        _netem = (False, "needs root (tc in the containers' network namespaces)")
    else:
        try:
            done = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                                   "delay", "1ms"], capture_output=True, text=True, timeout=TC_TIMEOUT_S)
            ok = done.returncode == 0
            why = "kernel netem works" if ok else f"no kernel netem: {(done.stderr or done.stdout).strip()[:200]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, why = False, f"cannot try netem: {exc}"
        _netem = (ok, why)
    return _netem


# What kernel netem takes over from the relay on a WAN link; partitions always stay in the relay
# (it cuts connections, which a qdisc cannot do cleanly).
KERNEL_FIELDS = ("delay_ms", "jitter_ms", "loss", "bandwidth_bps")


def split_shaping(params: dict[str, Any], netem: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the relay's parameters, kernel netem's parameters or None) for one WAN link.

    Without netem the relay does everything. With netem the kernel gets delay, jitter, loss and rate
    and the relay keeps nothing of them (no delay, no loss, unlimited bandwidth), so nothing is applied
    twice.
    """
    if not netem:
        return dict(params), None
    kernel = {k: params.get(k) for k in KERNEL_FIELDS}
    relay = {**params, "delay_ms": 0.0, "jitter_ms": 0.0, "loss": 0.0, "bandwidth_bps": None}
    return relay, kernel


def netem_args(delay_ms: float, jitter_ms: float, loss: float, bandwidth_bps: float | None = None) -> list[str]:
    args = ["netem", "limit", "100000", "delay", f"{delay_ms:g}ms"]
    if jitter_ms:
        args.append(f"{jitter_ms:g}ms")
    args += ["loss", f"{loss * 100:g}%"]
    if bandwidth_bps:  # None/0: unlimited
        args += ["rate", f"{int(bandwidth_bps)}bit"]
    return args


def _netem_of(params: dict[str, Any]) -> list[str]:
    return netem_args(params.get("delay_ms") or 0.0, params.get("jitter_ms") or 0.0, params.get("loss") or 0.0,
                      params.get("bandwidth_bps"))


def shaping_commands(dev: str, *, match: str, address: str, ports: list[int],
                     params: dict[str, Any]) -> list[list[str]]:
    """tc commands: traffic on `dev` whose `match` (dst|src) address/port is the relay gets netem.

    Other traffic (the site's clients, the harness) stays on band 1:2, unshaped.
    """
    port_key = "dport" if match == "dst" else "sport"
    cmds = [["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "prio", "bands", "3",
             "priomap", *["1"] * 16],
            ["tc", "qdisc", "replace", "dev", dev, "parent", "1:3", "handle", "30:", *_netem_of(params)]]
    for port in ports:
        cmds.append(["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                     "match", "ip", match, f"{address}/32", "match", "ip", port_key, str(port), "0xffff",
                     "flowid", "1:3"])
    return cmds


def change_commands(dev: str, params: dict[str, Any]) -> list[list[str]]:
    return [["tc", "qdisc", "change", "dev", dev, "parent", "1:3", "handle", "30:", *_netem_of(params)]]


def _run(cmd: list[str], netns_pid: int | None = None) -> str:
    full = (["nsenter", "-t", str(netns_pid), "-n", *cmd]) if netns_pid else cmd
    done = subprocess.run(full, capture_output=True, text=True, timeout=TC_TIMEOUT_S)
    if done.returncode != 0:
        raise NetError(f"{' '.join(full)}: {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


def host_veth_of(container_pid: int, dev: str = "eth0") -> str:
    """The host end of a container's veth: `eth0@ifN` inside names the host's interface index N."""
    out = _run(["ip", "-o", "link", "show", dev], netns_pid=container_pid)
    m = re.search(rf"{re.escape(dev)}@if(\d+)", out)
    if not m:
        raise NetError(f"cannot find the peer of {dev} in `{out.strip()[:200]}`")
    index = m.group(1)
    for line in _run(["ip", "-o", "link", "show"]).splitlines():
        head = line.split(":", 2)
        if len(head) >= 2 and head[0].strip() == index:
            return head[1].strip().split("@", 1)[0]
    raise NetError(f"no host interface with index {index}")


class NetemShaper:
    """Delay, jitter and loss of one WAN link in the kernel (both directions), for one container run.

    Re-`install()` after every (re)start of the container: its namespace and veth are new.
    """

    def __init__(self, relay_address: str, relay_ports: list[int]):
        self.address = relay_address
        self.ports = list(relay_ports)
        self.pid: int | None = None
        self.host_dev: str | None = None

    def install(self, container_pid: int, params: dict[str, Any]) -> None:
        self.pid = container_pid
        self.host_dev = host_veth_of(container_pid)
        for cmd in shaping_commands("eth0", match="dst", address=self.address, ports=self.ports, params=params):
            _run(cmd, netns_pid=container_pid)
        for cmd in shaping_commands(self.host_dev, match="src", address=self.address, ports=self.ports, params=params):
            _run(cmd)

    def change(self, params: dict[str, Any]) -> None:
        if self.pid is None or self.host_dev is None:
            return  # not installed (container down): applied by the next install()
        for cmd in change_commands("eth0", params):
            _run(cmd, netns_pid=self.pid)
        for cmd in change_commands(self.host_dev, params):
            _run(cmd)
