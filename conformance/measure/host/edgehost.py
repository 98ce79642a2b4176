"""One host of a site, reached through pytest-testinfra, with a deadline on every command.

A site lists its hosts as testinfra host specs (local://, ssh://user@host, paramiko://host,
docker://container ...). `EdgeHost` wraps `testinfra.get_host(spec)` and adds what edge checks need:

* ssh://, safe-ssh:// and paramiko:// hosts are opened by ssh.py: the spec's options (known_hosts, jump,
  ${ENV_VAR} key paths), host keys always checked (docs/real-targets.md);
* a deadline on every call: ssh/paramiko get testinfra's own `timeout` (connect timeout) and BatchMode,
  every command additionally runs under the host's `timeout` when it has a working one, and the call
  itself runs in a daemon thread that we stop waiting for at the deadline;
* the host's facts (facts.py), probed once, so the reading modules next to this one choose how to read
  (psutil for local://, procps `ps` or /proc, `ss` or `netstat`, systemd or OpenRC ...) once per host.

Everything that goes wrong while reaching a host raises MeasurementError (subclasses HostUnavailable
and HostLacks): the verdict becomes `error` with the cause, never a wrong pass.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar
from collections.abc import Callable

from ...model.errors import MeasurementError
from .facts import PROBE_MARK, Facts, parse_facts, probe_script

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
LOCAL_COMMANDS_ENV = "EDGE_CONFORMANCE_LOCAL_COMMANDS"
_REMOTE_SHELL_BACKENDS = ("ssh", "safe-ssh", "paramiko")
ANSIBLE_INVENTORY_TIMEOUT = 30.0


class HostUnavailable(MeasurementError):
    """The host cannot be reached or does not run commands (bad spec, ssh refused, no container)."""


class HostLacks(MeasurementError):
    """The host answers, but lacks a tool or facility the check needs."""


def with_deadline(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run fn in a daemon thread; give up (HostUnavailable) when it has not returned by the deadline.

    A daemon thread never blocks interpreter exit; the command it waits for is itself bounded by the
    host's `timeout` wrapper (or by ssh's connect timeout), so nothing lingers for long.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="edge-host-call", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise HostUnavailable(f"{what}: no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def backend_of(spec: str) -> str:
    return spec.split("://", 1)[0] if "://" in spec else "paramiko"


def container_of(spec: str) -> str | None:
    """docker://[user@]name[?...] -> name."""
    if backend_of(spec) not in ("docker", "podman"):
        return None
    rest = spec.split("://", 1)[1].split("?", 1)[0]
    return rest.rsplit("@", 1)[-1] or None


def redact_spec(spec: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", spec)


@dataclass
class CommandResult:
    rc: int
    stdout: str
    stderr: str


class EdgeHost:
    """One of a site's hosts. Cheap to create; the testinfra Host is made on first use."""

    def __init__(self, spec: str, timeout: float = DEFAULT_TIMEOUT, *, prefer_psutil: bool | None = None):
        self.spec = spec
        # How messages name it: an ssh host's options (key paths, known_hosts ...) are left out
        self.name = redact_spec(spec.split("?", 1)[0] if backend_of(spec) in _REMOTE_SHELL_BACKENDS else spec)
        self.backend = backend_of(spec)
        self.timeout = float(timeout or DEFAULT_TIMEOUT)
        # local:// is this machine: psutil answers process/socket/memory questions directly. With
        # EDGE_CONFORMANCE_LOCAL_COMMANDS=1 it answers through shell commands like a remote host
        # (a testing aid: it shows what a check does on a host reached over ssh or docker).
        if prefer_psutil is None:
            prefer_psutil = os.environ.get(LOCAL_COMMANDS_ENV, "") not in ("1", "true", "yes")
        self.uses_psutil = self.backend == "local" and prefer_psutil
        self._host = None
        self._facts: Facts | None = None
        # On every command this harness runs, so its own shells are told apart from the host's.
        self.marker = f"__edge_{uuid.uuid4().hex[:12]}__"

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    @property
    def container(self) -> str | None:
        return container_of(self.spec)

    @property
    def is_root(self) -> bool:
        """Whether the checks read this host as root (every socket's owner is visible then)."""
        return os.geteuid() == 0 if self.uses_psutil else self.facts.uid == 0

    # -- testinfra -----------------------------------------------------------------------------
    @property
    def host(self):
        if self._host is None:
            import testinfra

            try:
                if self.backend in _REMOTE_SHELL_BACKENDS:
                    # the spec's options (known_hosts, jump, ${ENV_VAR} paths ...) and strict host keys
                    from .ssh import open_host

                    host = open_host(self.spec, max(1, int(round(self.timeout))))
                else:
                    host = testinfra.get_host(self.spec)
            except Exception as exc:  # noqa: BLE001 - bad spec, unknown backend, missing client library
                raise HostUnavailable(f"host {self.name}: cannot use this host spec: "
                                      f"{type(exc).__name__}: {exc}") from None
            if self.backend == "ansible":
                from .ssh import harden_ansible_host

                # testinfra's ansible backend runs ansible-inventory to find how to connect: bounded
                self.call(lambda: harden_ansible_host(host), "reading the Ansible inventory",
                          timeout=max(self.timeout, ANSIBLE_INVENTORY_TIMEOUT))
            self._host = host
        return self._host

    def call(self, fn: Callable[[], T], what: str, timeout: float | None = None) -> T:
        """A testinfra module call (host.file(...).mode, host.package(...).version ...) with a deadline."""
        limit = (timeout or self.timeout) + 2.0
        try:
            return with_deadline(fn, limit, f"host {self.name}: {what}")
        except MeasurementError:
            raise
        except RuntimeError as exc:  # ssh exits 255, testinfra raises RuntimeError(CommandResult)
            raise HostUnavailable(f"host {self.name}: {what}: {_runtime_error_text(exc)}") from None
        except OSError as exc:  # a known_hosts or key file that is not there, a socket error
            raise HostUnavailable(f"host {self.name}: {what}: {exc.strerror or exc}"
                                  + (f": {exc.filename}" if getattr(exc, "filename", None) else "")) from None
        except AssertionError as exc:
            raise MeasurementError(f"host {self.name}: {what}: {str(exc).splitlines()[0]}") from None
        except (NotImplementedError, ValueError) as exc:
            raise HostLacks(f"host {self.name}: {what}: testinfra cannot do this here "
                            f"({type(exc).__name__}: {exc})") from None

    def run(self, command: str, timeout: float | None = None, what: str | None = None) -> CommandResult:
        """Run a shell command on the host, bounded by `timeout` seconds (default: the host's)."""
        limit = float(timeout or self.timeout)
        facts = self._facts
        script = f": {self.marker}; {command}"
        wrapped = facts is not None and facts.timeout_ok
        if wrapped:
            script = f"timeout {max(1, int(limit + 0.999))} sh -c {shlex.quote(script)}"
        host = self.host
        what = what or f"`{_short(command)}`"
        out = self.call(lambda: host.run(script), what, timeout=limit)
        if wrapped and out.rc == 124:  # killed by the host's `timeout`
            raise MeasurementError(f"host {self.name}: {what}: no answer within {limit:g} s")
        return CommandResult(out.rc, _text(out, "stdout"), _text(out, "stderr"))

    # -- facts ---------------------------------------------------------------------------------
    @property
    def facts(self) -> Facts:
        if self._facts is None:
            self._facts = self.probe()
        return self._facts

    def probe(self) -> Facts:
        self.host  # noqa: B018 - a bad spec is reported as such, not as an unreachable host
        try:
            out = self.run(probe_script(), what="probe")
        except HostUnavailable as exc:
            if "host key verification failed" in str(exc).lower():
                raise HostUnavailable(f"{exc} (the host's key is not the one its known_hosts holds for it: "
                                      "make sure it is that host, then put its key in known_hosts)") from None
            raise HostUnavailable(f"{exc} (is the host reachable, and the spec right?)") from None
        if PROBE_MARK not in out.stdout:
            cause = (out.stderr.strip() or out.stdout.strip() or f"exit status {out.rc}").splitlines()
            text = "; ".join(line.strip() for line in cause[:3] if line.strip())
            raise HostUnavailable(f"host {self.name} does not run commands: {text}")
        return parse_facts(out.stdout)

    def require(self, *alternatives: str, purpose: str) -> str:
        """The first tool of `alternatives` the host has, or HostLacks naming them all."""
        for tool in alternatives:
            if self.facts.has(tool):
                return tool
        names = " and ".join(f"`{t}`" for t in alternatives) if len(alternatives) <= 2 else \
            ", ".join(f"`{t}`" for t in alternatives[:-1]) + f" and `{alternatives[-1]}`"
        raise HostLacks(f"host {self.name} lacks {names}: cannot {purpose}")


def _short(command: str, limit: int = 60) -> str:
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 3] + "..."


def _text(out: Any, name: str) -> str:
    try:
        return getattr(out, name)
    except UnicodeDecodeError:
        return getattr(out, name + "_bytes").decode("utf-8", "replace")


def _runtime_error_text(exc: RuntimeError) -> str:
    arg = exc.args[0] if exc.args else exc
    stderr = getattr(arg, "stderr", None)
    if isinstance(stderr, str) and stderr.strip():
        lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
        return "; ".join(lines[-2:])
    rc = getattr(arg, "rc", None)
    return f"exit status {rc}" if rc is not None else str(exc)
