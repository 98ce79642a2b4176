"""The SSH lab: store servers stood in for by containers that the harness reaches ONLY through SSH
(docs/real-targets.md, "The SSH lab").

`SshLab.start(client, image, root)` starts, for each site (default: central `hq`, edge `store-1`), a
container of the docker backend's site image (Debian, python3 with aiohttp under /opt/edge-conformance/lib,
nft/iptables, and the distribution's openssh-server: images.py BASE_PACKAGES) on a bridge network of the
lab's own, with NET_ADMIN and its own network namespace. Each runs only OpenSSH's sshd (`sshd -D`), with a
host key generated here for that container and one user key (authorized for root), published on a loopback
port; the site's probe port is published on the same loopback port number. `target()` writes the target
file a real lab would have: each site's `ssh://root@127.0.0.1:PORT` host with its own `known_hosts` (strict
host keys, as always) and key, a `probes:` section (the site's python through a wrapper that finds aiohttp;
the edge's probe reports to the central probe at its address on the lab network), and on each edge a
`faults:` section granting the WAN cut by nft, the peer being central's address on the lab network. The
harness reaches the sites through the published ports, that is from the bridge's gateway, so a cut between
a store and central never cuts the harness's own ssh session.

What the lab's set-up itself does through `docker` (not through ssh): create the network and the containers
and put the keys, the sshd config and the python wrapper in them before they start; `stop()` removes them
(by the containers and the network it made, all labelled LABEL=<lab id>). The tests only read through
`docker exec` what they observe (`sh()`), never what the harness measures.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LABEL = "io.edge-conformance.test"  # ours only: no harness label, so no sweep of the harness touches them
LAB_PYTHON = "/usr/local/bin/lab-python3"
LIB = "/opt/edge-conformance/lib"
SSHD_CONFIG = "/etc/ssh/edge-lab/sshd_config"
ENTRYPOINT = ("mkdir -p /run/sshd && chmod 0755 /run/sshd && (usermod -p '*' root 2>/dev/null || true) && "
              f"exec /usr/sbin/sshd -D -e -f {SSHD_CONFIG}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


def sshd_config() -> str:
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
    container: Any = None
    address: str = ""  # on the lab network

    def host(self, lab: SshLab) -> dict:
        return {"spec": f"ssh://root@127.0.0.1:{self.ssh_port}", "ssh_identity_file": str(lab.key),
                "known_hosts": str(lab.known_hosts)}


def target_doc(lab: SshLab, *, margin: str = "30 s", defects: dict[str, list[str]] | None = None,
               name: str = "ssh-lab") -> dict:
    """The target document of the lab: pure (from the sites' ports and addresses), so testable without Docker."""
    central = next(s for s in lab.sites if s.role == "central")
    sites: list[dict] = []
    for s in lab.sites:
        site: dict[str, Any] = {"name": s.name, "role": s.role, "hosts": [s.host(lab)]}
        probes: dict[str, Any] = {"port": s.probe_port, "address": "127.0.0.1", "listen": "0.0.0.0",
                                  "python": LAB_PYTHON, "dir": "/tmp"}
        if s.role == "edge":
            site["uplink"] = central.name
            probes["central_url"] = f"http://{central.address}:{central.probe_port}"
            site["faults"] = {"margin": margin, "wan": {"peer": central.address, "interface": "eth0", "filter": "nft"}}
        if defects and defects.get(s.name):
            probes["defects"] = list(defects[s.name])
        site["probes"] = probes
        sites.append(site)
    return {"name": name, "sites": sites}


@dataclass
class SshLab:
    root: Path
    sites: list[LabSite] = field(default_factory=list)
    lab_id: str = field(default_factory=lambda: f"sshlab-{os.getpid()}-{os.urandom(2).hex()}")
    client: Any = None
    network: Any = None

    @property
    def key(self) -> Path:
        return self.root / "id_user"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def site(self, name: str) -> LabSite:
        return next(s for s in self.sites if s.name == name)

    @classmethod
    def start(cls, client, image: str, root: Path,
              sites: tuple[tuple[str, str], ...] = (("hq", "central"), ("store-1", "edge"))) -> SshLab:
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        lab = cls(root, client=client)
        _keygen(lab.key, "edge-lab-user")
        labels = {LABEL: lab.lab_id}
        try:
            lab.network = client.networks.create(f"edgeconf-test-{lab.lab_id}", driver="bridge", labels=labels)
            lines = []
            for name, role in sites:
                site = LabSite(name, role, _free_port(), _free_port())
                lab.sites.append(site)
                _keygen(root / f"hostkey-{name}", f"edge-lab-{name}")
                site.container = client.containers.create(
                    image, name=f"edgeconf-test-{lab.lab_id}-{name}", labels=labels, network=lab.network.name,
                    entrypoint=["sh", "-c", ENTRYPOINT], cap_add=["NET_ADMIN"], init=True, hostname=name,
                    ports={"22/tcp": ("127.0.0.1", site.ssh_port),
                           f"{site.probe_port}/tcp": ("127.0.0.1", site.probe_port)})
                site.container.put_archive("/", lab._archive(name))
                site.container.start()
                pub = (root / f"hostkey-{name}.pub").read_text().split()[:2]
                lines.append(f"[127.0.0.1]:{site.ssh_port} {' '.join(pub)}\n")
            lab.known_hosts.write_text("".join(lines))
            for site in lab.sites:
                site.container.reload()
                site.address = site.container.attrs["NetworkSettings"]["Networks"][lab.network.name]["IPAddress"]
                lab._await_sshd(site, 30)
        except BaseException:
            lab.stop()
            raise
        return lab

    def _archive(self, name: str) -> bytes:
        buf = io.BytesIO()
        files = [("etc/ssh/edge-lab/sshd_config", sshd_config().encode(), 0o644),
                 ("etc/ssh/edge-lab/hostkey", (self.root / f"hostkey-{name}").read_bytes(), 0o600),
                 ("etc/ssh/edge-lab/authorized_keys", (self.root / "id_user.pub").read_bytes(), 0o644),
                 (LAB_PYTHON.lstrip("/"), lab_python().encode(), 0o755)]
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for directory in ("etc/ssh/edge-lab",):
                info = tarfile.TarInfo(directory)
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
        raise RuntimeError(f"sshd of lab site {site.name} did not let us in: {last}; its log: {logs}")

    def ssh(self, name: str, command: str) -> list[str]:
        """The argv of `ssh` to a lab site as the harness would run it (strict host keys)."""
        site = self.site(name)
        return ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "ConnectTimeout=5", "-i", str(self.key),
                "-p", str(site.ssh_port), "root@127.0.0.1", "--", command]

    def target(self, path: Path, **kwargs: Any) -> Path:
        path.write_text(yaml.safe_dump(target_doc(self, **kwargs), sort_keys=False))
        return path

    def sh(self, name: str, command: str) -> tuple[int, str]:
        """What a test observes on a site (docker exec: not the harness's way in)."""
        code, out = self.site(name).container.exec_run(["sh", "-c", command])
        return code, out.decode(errors="replace")

    def stop(self) -> None:
        for site in self.sites:
            if site.container is not None:
                try:
                    site.container.remove(force=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        if self.network is not None:
            try:
                self.network.remove()
            except Exception:  # noqa: BLE001
                pass

    def left(self) -> dict[str, list[str]]:
        """Containers and networks that still carry the lab's label (nothing, after stop())."""
        flt = {"label": [f"{LABEL}={self.lab_id}"]}
        return {"containers": [c["Names"][0] for c in self.client.api.containers(all=True, filters=flt)],
                "networks": [n["Name"] for n in self.client.api.networks(filters=flt)]}
