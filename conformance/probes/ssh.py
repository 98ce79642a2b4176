"""The ssh probe runtime: the reference workload as a zipapp run by the site's python, as the child of a
long-lived `ssh` of the harness (docs/real-targets.md, "Probes").

Two ssh connections per site, with the host's own options (strict host keys, known_hosts, key, jump
host: measure/host/ssh.py):

1. install: `mkdir DIR && cat > DIR/probe.pyz && python3 DIR/probe.pyz --check` (the zipapp on stdin;
   the check names a missing dependency or an old python before anything runs);
2. run: `cd DIR && python3 probe.pyz --keep --listen ADDR ARGS; rm -rf DIR`, its stdin a pipe the
   harness holds. The harness reads the probe's ready line from its stdout, then only keeps the pipe
   open. The keeper (probes/keeper.py) runs the workload as its child, restarts it after a crash and
   holds it down after a stop, so the probe can be killed, stopped and started as faults.

The probe ends when its stdin ends (the keeper's and the workload's own contract): when the harness closes the pipe
(remove), and when the harness dies however it dies (SIGKILL included): the pipe's writer is gone, ssh
sends EOF, or the connection drops and sshd closes the session. The shell around it then removes
its directory. `remove` also runs an explicit clean-up over a third connection: pkill of what this
run's directory started, rm -rf of the directory. DIR is `<probes.dir>/edge-conformance-probe-<run
id>/<site>`, so every process and file carries the run id and a clean-up touches nothing else.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shlex
import subprocess
import threading
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from ..measure.host.ssh import resolved_options, ssh_args
from ..model.hostspec import split_spec
from .base import READY_TIMEOUT_S, Deployed, ProbeError, ProbeRequest
from .zipapp import build

INSTALL_TIMEOUT_S = 60.0
REMOVE_TIMEOUT_S = 20.0
STOP_WAIT_S = 10.0


def regex_literal(text: str) -> str:
    """`text` as a pattern that matches only itself, both for pgrep (POSIX ERE) and Python's re, and that
    reads like the path it is in reports (re.escape would also escape every '-')."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


def ssh_argv(spec: str) -> list[str]:
    """`ssh ... HOST --` for an ssh:// host spec, with the options a host check's connection has."""
    base, _ = split_spec(spec)
    options = resolved_options(spec)
    parts = urlsplit(base)
    argv = ["ssh", *shlex.split(ssh_args(options)), "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if options.get("ssh_config"):
        argv += ["-F", options["ssh_config"]]
    if options.get("ssh_identity_file"):
        argv += ["-i", options["ssh_identity_file"]]
    if options.get("timeout"):
        argv += ["-o", f"ConnectTimeout={int(float(options['timeout']))}"]
    if parts.port:
        argv += ["-p", str(parts.port)]
    if parts.username:
        argv += ["-l", parts.username]
    return [*argv, parts.hostname or "", "--"]


class SshRuntime:
    name = "ssh"

    # ------------------------------------------------------------------ paths and commands

    @staticmethod
    def run_dir(request: ProbeRequest) -> str:
        return f"{request.spec.dir.rstrip('/')}/{request.tag}"

    def site_dir(self, request: ProbeRequest) -> str:
        return f"{self.run_dir(request)}/{request.site}"

    def install_command(self, request: ProbeRequest) -> str:
        d = shlex.quote(self.site_dir(request))
        return (f"umask 077 && mkdir -p {d}/data && cat > {d}/probe.pyz && "
                f"exec {shlex.quote(request.spec.python)} {d}/probe.pyz --check")

    def start_command(self, request: ProbeRequest) -> str:
        spec = request.spec
        d = self.site_dir(request)
        args = ["--keep", "--pid-file", f"{d}/keeper.pid", "--listen", spec.listen,
                *request.workload_args(f"{d}/data", spec.port)]
        probe = " ".join(shlex.quote(a) for a in [spec.python, f"{d}/probe.pyz", *args])
        return (f"cd {shlex.quote(d)} && {{ {probe}; rc=$?; cd / && rm -rf -- {shlex.quote(d)} 2>/dev/null; "
                f"rmdir -- {shlex.quote(self.run_dir(request))} 2>/dev/null; exit $rc; }}")

    def site_facts(self, request: ProbeRequest) -> dict[str, str]:
        """What the run takes for the site's own: its workload process and data dir (the host checks'
        labels.process and labels.data_dir; the keeper is not the site's workload: with the workload
        down, a process check must see it gone), and how a `process: {probe: true}` grant kills, stops
        and starts it (the workload below its keeper; SIGUSR2 and SIGUSR1 to the keeper: probes/keeper.py)."""
        d = self.site_dir(request)
        probe = f"{d}/probe.pyz"
        # the keeper by its pid file: a pattern would also hit the shell whose command line started it
        pid_file = shlex.quote(f"{d}/keeper.pid")
        workload = regex_literal(probe) + " --serve"  # the workload itself: not its keeper nor their shell
        return {"process": workload, "data_dir": f"{d}/data", "fault_pattern": workload,
                "fault_start": f"kill -USR1 \"$(cat {pid_file})\"",
                "fault_stop": f"kill -USR2 \"$(cat {pid_file})\""}

    def cleanup_command(self, request: ProbeRequest) -> str:
        d = self.site_dir(request)
        pattern = "[/]" + d[1:] + "/probe.pyz"  # d is absolute; [/] keeps pkill off this shell's own line
        return (f"pkill -TERM -f -- {shlex.quote(pattern)} 2>/dev/null; sleep 0.2; "
                f"pkill -KILL -f -- {shlex.quote(pattern)} 2>/dev/null; rm -rf -- {shlex.quote(d)}; "
                f"rmdir -- {shlex.quote(self.run_dir(request))} 2>/dev/null; true")

    # ------------------------------------------------------------------ the interface

    def deploy(self, request: ProbeRequest) -> Deployed:
        spec = request.spec
        try:
            ssh = ssh_argv(spec.host)
        except LookupError as exc:
            raise ProbeError(f"probe of site {request.site}: {exc}") from None
        where = f"probe of site {request.site} (through {split_spec(spec.host)[0]})"
        self._install(request, ssh, where)
        request.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = request.log_dir / f"{request.site}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([*ssh, self.start_command(request)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        deployed = Deployed(request, url="", port=0, handle=proc, info={
            "log": str(log_path), "ssh": ssh, **self.site_facts(request)})
        try:
            ready = _ready_line(proc, log_path, READY_TIMEOUT_S)
        except ProbeError as exc:
            self.remove(deployed)
            raise ProbeError(f"{where}: {exc}") from None
        deployed.port = int(ready["port"])
        deployed.url = f"http://{_url_host(spec.address)}:{deployed.port}"
        deployed.info["pid"] = ready.get("pid")
        return deployed

    def health(self, deployed: Deployed) -> bool:
        from edge_workloads.defects import readiness_path

        from ..measure.http import request

        proc = deployed.handle
        if proc is None or proc.poll() is not None:
            return False
        return request(deployed.url + readiness_path(deployed.request.spec.defects), timeout=3.0).status == 200

    def remove(self, deployed: Deployed) -> None:
        """Close the probe's stdin (it stops, and its shell removes its directory), then make sure:
        pkill what this run's directory of the site started, rm -rf the directory."""
        proc: subprocess.Popen | None = deployed.handle
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            try:
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        ssh = deployed.info.get("ssh") or ssh_argv(deployed.request.spec.host)
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run([*ssh, self.cleanup_command(deployed.request)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=REMOVE_TIMEOUT_S)

    # ------------------------------------------------------------------ steps

    def _install(self, request: ProbeRequest, ssh: list[str], where: str) -> None:
        try:
            done = subprocess.run([*ssh, self.install_command(request)], input=build(), capture_output=True,
                                  timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._cleanup(request, ssh)
            raise ProbeError(f"{where}: no answer within {INSTALL_TIMEOUT_S:g} s") from None
        out = done.stdout.decode("utf-8", "replace").strip().splitlines()
        try:
            check: Any = json.loads(out[-1]) if out else None
        except ValueError:
            check = None
        if not isinstance(check, dict):
            self._cleanup(request, ssh)
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ProbeError(f"{where}: could not install it (ssh exit {done.returncode}"
                             f"{': ' + said[-1] if said else ''})")
        if not check.get("ok"):
            self._cleanup(request, ssh)
            missing = ", ".join(check.get("missing") or ["?"])
            raise ProbeError(f"{where}: {request.spec.python} there (python {check.get('python')}) lacks {missing}: "
                             f"install it for that interpreter (pip install aiohttp), or give probes.python one "
                             "that has it")

    def _cleanup(self, request: ProbeRequest, ssh: list[str]) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run([*ssh, self.cleanup_command(request)], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=REMOVE_TIMEOUT_S)


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _ready_line(proc: subprocess.Popen, log_path: Path, timeout: float) -> dict:
    """The probe's one JSON ready line; the rest of its stdout is copied to its log."""
    lines: queue.Queue[bytes] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(proc.stdout, lines, log_path), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise ProbeError(f"no ready line within {timeout:g} s{_tail(log_path)}") from None
    try:
        ready = json.loads(line.decode("utf-8", "replace")) if line else None
    except ValueError:
        ready = None
    if not isinstance(ready, dict) or ready.get("ready") is not True:
        said = line.decode("utf-8", "replace").strip()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        what = f"printed {said[:200]!r} instead of a ready line" if said else "ended before it was ready"
        raise ProbeError(f"{what}{_tail(log_path)}")
    return ready


def _pump(stream: IO[bytes], lines: queue.Queue, log_path: Path) -> None:
    lines.put(stream.readline())
    with contextlib.suppress(OSError, ValueError), open(log_path, "ab") as log:
        while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            log.write(chunk)
            log.flush()


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f" (its log: {lines[-1][:300]})" if lines else ""
