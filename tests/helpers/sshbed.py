"""A real SSH test bed: OpenSSH's sshd on loopback ports, with keys of its own.

`SshBed.start(root)` generates a host key, a user key (authorized for the current user), a known_hosts
file holding the host key, a "wrong" known_hosts (another key for the same addresses), and starts two
sshds: `port` (the host the checks read) and `jump_port` (a jump host that allows TCP forwarding). Each
logs to its own file, so a test can see which one a connection went through. `stop()` ends both.

Skips (pytest.skip, with the reason) when there is no sshd: `apt-get install openssh-server`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def sshd_path() -> str | None:
    found = shutil.which("sshd")
    if found:
        return found
    return next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


@dataclass
class SshBed:
    root: Path
    user: str = field(default_factory=getpass.getuser)
    port: int = 0
    jump_port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def key(self) -> Path:
        return self.root / "id_user"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def wrong_known_hosts(self) -> Path:
        return self.root / "wrong_known_hosts"

    def log(self, which: str) -> str:
        path = self.root / f"{which}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @classmethod
    def start(cls, root: Path) -> SshBed:
        sshd = sshd_path()
        if sshd is None:
            pytest.skip("no sshd here (apt-get install openssh-server): the SSH test bed cannot start")
        if shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
            pytest.skip("no ssh client here (openssh-client)")
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        bed = cls(root)
        _keygen(root / "hostkey", "edge-test-host")
        _keygen(root / "jump_hostkey", "edge-test-jump")
        _keygen(root / "otherkey", "edge-test-other")
        _keygen(bed.key, "edge-test-user")
        (root / "authorized_keys").write_text((root / "id_user.pub").read_text())
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        host_pub = (root / "hostkey.pub").read_text().split()[:2]
        jump_pub = (root / "jump_hostkey.pub").read_text().split()[:2]
        other_pub = (root / "otherkey.pub").read_text().split()[:2]
        for _ in range(3):
            bed.port, bed.jump_port = _free_port(), _free_port()
            if bed.port == bed.jump_port:
                continue
            bed.known_hosts.write_text(f"[127.0.0.1]:{bed.port} {' '.join(host_pub)}\n"
                                       f"[127.0.0.1]:{bed.jump_port} {' '.join(jump_pub)}\n")
            bed.wrong_known_hosts.write_text(f"[127.0.0.1]:{bed.port} {' '.join(other_pub)}\n"
                                             f"[127.0.0.1]:{bed.jump_port} {' '.join(jump_pub)}\n")
            try:
                bed._sshd(sshd, "sshd", bed.port, "hostkey", forwarding=False)
                bed._sshd(sshd, "jump", bed.jump_port, "jump_hostkey", forwarding=True)
                return bed
            except OSError:  # a port taken meanwhile: again with others
                bed.stop()
        pytest.fail("sshd did not start on loopback (see the logs in the test's tmp dir)")

    def _sshd(self, sshd: str, name: str, port: int, hostkey: str, *, forwarding: bool) -> None:
        config = self.root / f"{name}_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {self.root / hostkey}",
            f"PidFile {self.root / name}.pid", f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "UsePAM no",
            f"AllowTcpForwarding {'yes' if forwarding else 'no'}", "X11Forwarding no", "PrintMotd no",
            "LogLevel VERBOSE", "MaxStartups 100:30:200", "",
        ]))
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise OSError(f"sshd {name} exited {proc.returncode}: {self.log(name)[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise OSError(f"sshd {name} did not answer on port {port}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
