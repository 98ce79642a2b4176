"""The SSH lab: store servers stood in for by containers that the harness reaches ONLY through SSH, as it
reaches a vendor's real sites (docs/real-targets.md, "The SSH lab").

    lab = SshLab.start(client, image, root, sites=[("hq", "central", None, []), ("store-1", "edge", "hq", [])],
                       labels_of=lambda site, role: {...})
    lab.target_doc()     # the target file a real lab would have: ssh:// hosts, probes:, faults:
    lab.stop()           # removes the containers and the network it made

For each site a container of the docker backend's site image (Debian, python3 with aiohttp under
/opt/edge-conformance/lib, nft/iptables, and the distribution's openssh-server: images.py BASE_PACKAGES)
joins one bridge network of the lab's own, with NET_ADMIN in its own network namespace. Each runs only
OpenSSH's sshd (`sshd -D`) with a host key generated here for that container and one user key authorized
for root, published on a loopback port; the site's probe port is published on the same loopback port
number. The target document names each site's `ssh://root@127.0.0.1:PORT` host with its own
`known_hosts` (strict host keys, as always) and key, a `probes:` section (the site's python through a
wrapper that finds aiohttp; an edge's probe reports to its uplink's probe at its address on the lab
network) and a `faults:` section granting the probe's process faults (kill, pause, stop, start through
the probe's keeper) and, on each edge, the WAN cut by nft, the peer being the uplink's address on the lab
network. The harness reaches the sites through the published ports, that is from the
bridge's gateway, so a cut between a store and central never cuts the harness's own ssh session.

What the lab's set-up does through the Docker API (not through ssh): create the network and the
containers and put the keys, the sshd config and the python wrapper in them before they start. Everything
else (probes, faults, host checks) goes through ssh. Used by the `ssh-lab` topology (sshlab_supervisor.py)
and by tests that need a lab that outlives the harness (a harness killed mid-cut).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAB_PYTHON = "/usr/local/bin/lab-python3"
LIB = "/opt/edge-conformance/lib"
SSHD_CONFIG = "/etc/ssh/edge-lab/sshd_config"
ENTRYPOINT = ("mkdir -p /run/sshd && chmod 0755 /run/sshd && (usermod -p '*' root 2>/dev/null || true) && "
              f"exec /usr/sbin/sshd -D -e -f {SSHD_CONFIG}")
SSHD_WAIT_S = 30.0
PORT_ATTEMPTS = 5
DEFAULT_MARGIN = "30 s"


class LabError(RuntimeError):
    """The lab could not be brought up (the message says which site and why)."""


def _free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports free right now (held open together, so never the same one twice)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


def sshd_config() -> str:
    """Keys only (no password, no keyboard-interactive), no forwarding: a locked-down store server."""
    return "\n".join([
        "Port 22", "HostKey /etc/ssh/edge-lab/hostkey", "AuthorizedKeysFile /etc/ssh/edge-lab/authorized_keys",
        "PermitRootLogin prohibit-password", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "AllowTcpForwarding no",
        "X11Forwarding no", "PrintMotd no", "LogLevel VERBOSE", "MaxStartups 100:30:200", "",
    ])


def lab_python() -> str:
    """The site's python for a login shell: sshd does not pass the image's ENV (PYTHONPATH) to a session."""
    return (f"#!/bin/sh\nPYTHONPATH={LIB} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8\n"
            "export PYTHONPATH PYTHONDONTWRITEBYTECODE PYTHONUNBUFFERED LANG\nexec python3 \"$@\"\n")


@dataclass
class LabSite:
    name: str
    role: str
    ssh_port: int
    probe_port: int
    uplink: str | None = None
    defects: list[str] = field(default_factory=list)
    container: Any = None
    address: str = ""  # on the lab network


@dataclass
class SshLab:
    root: Path  # keys and known_hosts (0700)
    sites: list[LabSite] = field(default_factory=list)
    client: Any = None
    network: Any = None
    name: str = "ssh-lab"
    stopped: bool = False  # stop() was called: a bring-up in another thread ends at its next step

    @property
    def key(self) -> Path:
        return self.root / "id_user"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def site(self, name: str) -> LabSite:
        return next(s for s in self.sites if s.name == name)

    @classmethod
    def start(cls, client: Any, image: str, root: Path,
              sites: Sequence[tuple[str, str, str | None, list[str]]], *, prefix: str,
              labels_of: Callable[[str | None, str], dict[str, str]], name: str = "ssh-lab") -> SshLab:
        """Bring a lab up (see bring_up)."""
        lab = cls(root, client=client, name=name)
        lab.bring_up(image, sites, prefix=prefix, labels_of=labels_of)
        return lab

    def bring_up(self, image: str, sites: Sequence[tuple[str, str, str | None, list[str]]], *, prefix: str,
                 labels_of: Callable[[str | None, str], dict[str, str]]) -> None:
        """`sites` are (name, role, uplink, defects); containers and the network are named PREFIX-<site>
        and PREFIX and carry labels_of(site or None, kind). Everything made so far is removed again, and
        LabError says why, if Docker refuses (a port taken meanwhile is tried again with others) or any
        site's sshd does not let us in within SSHD_WAIT_S. stop() from another thread ends it early."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        _keygen(self.key, "edge-lab-user")
        try:
            self._check_stopped()
            self.network = self.client.networks.create(prefix, driver="bridge", labels=labels_of(None, "network"))
            lines = []
            for site_name, role, uplink, defects in sites:
                _keygen(self.root / f"hostkey-{site_name}", f"edge-lab-{site_name}")
                site = self._start_site(image, LabSite(site_name, role, 0, 0, uplink=uplink, defects=list(defects)),
                                        prefix, labels_of)
                pub = (self.root / f"hostkey-{site_name}.pub").read_text().split()[:2]
                lines.append(f"[127.0.0.1]:{site.ssh_port} {' '.join(pub)}\n")
            self.known_hosts.write_text("".join(lines))
            for site in self.sites:
                self._check_stopped()
                site.container.reload()
                site.address = site.container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
                self._await_sshd(site, SSHD_WAIT_S)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, Exception) and not isinstance(exc, LabError):
                raise LabError(f"the SSH lab could not be brought up: {exc}") from None
            raise

    def _start_site(self, image: str, site: LabSite, prefix: str,
                    labels_of: Callable[[str | None, str], dict[str, str]]) -> LabSite:
        """Create and start one site's container on two free loopback ports; a port that another process
        took between our check and Docker's publish is tried again with new ones."""
        from docker.errors import APIError

        for _attempt in range(PORT_ATTEMPTS):
            self._check_stopped()
            site.ssh_port, site.probe_port = _free_ports(2)
            site.container = self.client.containers.create(
                image, name=f"{prefix}-{site.name}", labels=labels_of(site.name, "site"),
                network=self.network.name, entrypoint=["sh", "-c", ENTRYPOINT], cap_add=["NET_ADMIN"],
                init=True, hostname=site.name,
                ports={"22/tcp": ("127.0.0.1", site.ssh_port),
                       f"{site.probe_port}/tcp": ("127.0.0.1", site.probe_port)})
            if site not in self.sites:
                self.sites.append(site)
            site.container.put_archive("/", self._archive(site.name))
            try:
                site.container.start()
                return site
            except APIError as exc:
                if "already allocated" not in str(exc) and "address already in use" not in str(exc).lower():
                    raise
                site.container.remove(force=True)
                site.container = None
        raise LabError(f"site {site.name}: no free loopback ports after {PORT_ATTEMPTS} attempts")

    def _check_stopped(self) -> None:
        if self.stopped:
            raise LabError("the lab was stopped while it was coming up")

    def _archive(self, name: str) -> bytes:
        buf = io.BytesIO()
        files = [("etc/ssh/edge-lab/sshd_config", sshd_config().encode(), 0o644),
                 ("etc/ssh/edge-lab/hostkey", (self.root / f"hostkey-{name}").read_bytes(), 0o600),
                 ("etc/ssh/edge-lab/authorized_keys", (self.root / "id_user.pub").read_bytes(), 0o644),
                 (LAB_PYTHON.lstrip("/"), lab_python().encode(), 0o755)]
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("etc/ssh/edge-lab")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for path, data, mode in files:
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.uid, info.gid = len(data), mode, 0, 0
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def _await_sshd(self, site: LabSite, timeout: float) -> None:
        """Until the site's sshd answers through ssh itself (strict host key, our key): `true` exits 0."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            done = subprocess.run(self.ssh(site.name, "true"), capture_output=True, text=True, timeout=15)
            if done.returncode == 0:
                return
            last = done.stderr.strip()
            site.container.reload()
            if site.container.status not in ("created", "running"):
                break
            time.sleep(0.2)
        logs = site.container.logs(tail=20).decode(errors="replace")
        raise LabError(f"sshd of lab site {site.name} did not let us in: {last}; its log: {logs}")

    def ssh(self, name: str, command: str) -> list[str]:
        """The argv of `ssh` to a lab site as the harness would run it (strict host keys)."""
        site = self.site(name)
        return ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "ConnectTimeout=5", "-i", str(self.key),
                "-p", str(site.ssh_port), "root@127.0.0.1", "--", command]

    def target_doc(self, *, margin: str = DEFAULT_MARGIN, extra: dict[str, Any] | None = None) -> dict:
        """The target document of the lab: pure (from the sites' ports and addresses), so testable without
        Docker. `extra` adds top-level keys (the topology's `lab:` block)."""
        by_name = {s.name: s for s in self.sites}
        sites: list[dict] = []
        for s in self.sites:
            site: dict[str, Any] = {"name": s.name, "role": s.role, "hosts": [{
                "spec": f"ssh://root@127.0.0.1:{s.ssh_port}", "ssh_identity_file": str(self.key),
                "known_hosts": str(self.known_hosts)}]}
            probes: dict[str, Any] = {"port": s.probe_port, "address": "127.0.0.1", "listen": "0.0.0.0",
                                      "python": LAB_PYTHON, "dir": "/tmp"}
            # every site's probe may be killed, paused, stopped and started (its keeper restarts it after
            # a crash, as a platform's supervisor would); an edge's WAN may be cut by nft on the site
            site["faults"] = {"margin": margin, "process": {"probe": True}}
            if s.role == "edge" and s.uplink:
                up = by_name[s.uplink]
                site["uplink"] = up.name
                probes["central_url"] = f"http://{up.address}:{up.probe_port}"
                site["faults"]["wan"] = {"peer": up.address, "interface": "eth0", "filter": "nft"}
            if s.defects:
                probes["defects"] = list(s.defects)
            site["probes"] = probes
            sites.append(site)
        return {"name": self.name, **(extra or {}), "sites": sites}

    def stop(self) -> list[str]:
        """Remove the containers and the network; what could not be removed, one line each."""
        self.stopped = True
        problems = []
        for site in self.sites:
            if site.container is not None:
                try:
                    site.container.remove(force=True)
                except Exception as exc:  # noqa: BLE001 - already gone, or the daemon: said, not raised
                    if "No such container" not in str(exc):
                        problems.append(f"container of {site.name}: {exc}")
        if self.network is not None:
            try:
                self.network.remove()
            except Exception as exc:  # noqa: BLE001
                if "not found" not in str(exc).lower():
                    problems.append(f"network {self.network.name}: {exc}")
        return problems
