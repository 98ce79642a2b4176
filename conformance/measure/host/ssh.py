"""SSH hosts: a host spec's options, and the testinfra Host that honours them (docs/real-targets.md).

A target file's ssh://, safe-ssh:// and paramiko:// hosts take testinfra's own options
(ssh_config, ssh_identity_file, timeout, sudo ...) and three of ours (known_hosts, jump,
ssh_extra_args), in the spec's query string (the mapping form of a target file is written into it when
the file loads, model/target.py). Option values may be ${ENV_VAR} references: they are resolved here,
when the host is first used, and never shown (model/secrets.py registers them as known secrets).

Host keys are always checked:

* ssh://: `-o BatchMode=yes -o StrictHostKeyChecking=yes` (unless the spec's own ssh_extra_args set
  StrictHostKeyChecking), `-o UserKnownHostsFile=` the spec's known_hosts, and a jump host through a
  ProxyCommand of ours, so that the jump connection is checked the same way (`ssh -J` does not pass
  `-o` options on);
* paramiko://: StrictParamikoBackend, since testinfra's own paramiko backend accepts any host key.
"""

from __future__ import annotations

import functools
import os
import shlex
import threading
from typing import Any

from ...model.hostspec import PATH_OPTIONS, SSH_OPTIONS, parse_jump, split_spec
from ...model.target import expand_env



_paramiko_hosts: dict[tuple, Any] = {}
_paramiko_lock = threading.Lock()


class HostKeyRefused(RuntimeError):
    """The host's key is not the one known_hosts holds for it, or it has none there."""


def resolved_options(spec: str) -> dict[str, str]:
    """The spec's options with ${ENV_VAR}s resolved (LookupError naming the variable, never a value)."""
    out: dict[str, str] = {}
    for key, value in split_spec(spec)[1]:
        try:
            value = expand_env(value)
        except LookupError as exc:
            raise LookupError(f"{exc} (option {key} of the host spec)") from None
        if key in PATH_OPTIONS:
            value = os.path.expanduser(value)
        out[key] = value
    return out


def _has_option(args: str, name: str) -> bool:
    return name.lower() in args.lower()


def ssh_args(options: dict[str, str]) -> str:
    """The ssh_extra_args testinfra's ssh backend gets: ours first (BatchMode, strict host keys, the
    known_hosts file, the jump host), then the spec's own. A shell fragment (testinfra runs ssh
    through the shell), every value quoted."""
    own = options.get("ssh_extra_args", "")
    args = []
    if not _has_option(own, "batchmode"):
        args.append("-o BatchMode=yes")
    if not _has_option(own, "stricthostkeychecking"):
        args.append("-o StrictHostKeyChecking=yes")
    known = options.get("known_hosts")
    if known and not _has_option(own, "userknownhostsfile"):
        args.append("-o " + shlex.quote(f"UserKnownHostsFile={known}"))
    if options.get("jump"):
        args.append("-o " + shlex.quote("ProxyCommand=" + jump_command(options)))
    if own:
        args.append(own)
    return " ".join(args)


def jump_command(options: dict[str, str]) -> str:
    """`ssh -W [%h]:%p jump` with the same host-key checking, known_hosts, key and ssh_config."""
    jump = parse_jump(options["jump"])
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if options.get("known_hosts"):
        argv += ["-o", f"UserKnownHostsFile={options['known_hosts']}"]
    if options.get("ssh_config"):
        argv += ["-F", options["ssh_config"]]
    if options.get("ssh_identity_file"):
        argv += ["-i", options["ssh_identity_file"]]
    timeout = options.get("timeout")
    if timeout:
        argv += ["-o", f"ConnectTimeout={timeout}"]
    if jump.port:
        argv += ["-p", str(jump.port)]
    if jump.user:
        argv += ["-l", jump.user]
    argv += ["-W", "[%h]:%p", jump.host]
    return " ".join(shlex.quote(a) for a in argv)


def open_host(spec: str, timeout: int) -> Any:
    """The testinfra Host of an ssh://, safe-ssh:// or paramiko:// spec, with the spec's options."""
    import testinfra

    backend = spec.split("://", 1)[0]
    base, pairs = split_spec(spec)
    options = resolved_options(spec)
    unknown = [k for k, _ in pairs if k not in SSH_OPTIONS]
    if unknown:
        raise ValueError(f'unknown option "{unknown[0]}" (options: {", ".join(SSH_OPTIONS)})')
    kwargs: dict[str, Any] = {"timeout": int(float(options.get("timeout") or timeout))}
    for key in ("ssh_config", "ssh_identity_file"):
        if options.get(key):
            kwargs[key] = options[key]
    if options.get("sudo", "").lower() == "true":
        kwargs["sudo"] = True
    if options.get("sudo_user"):
        kwargs["sudo_user"] = options["sudo_user"]
    if backend == "paramiko":
        import testinfra.host

        # one Host (one connection) per spec and options for the process, as testinfra.get_host keeps
        # for the other backends: every check of a site would otherwise open a connection of its own
        key = (base, tuple(sorted(options.items())), tuple(sorted(kwargs.items())))
        with _paramiko_lock:
            if key not in _paramiko_hosts:
                rest = base.split("://", 1)[1]
                paramiko_backend = strict_paramiko()(rest, known_hosts=options.get("known_hosts"),
                                                     jump=options.get("jump"), **kwargs)
                host = testinfra.host.Host(paramiko_backend)
                paramiko_backend.set_host(host)
                _paramiko_hosts[key] = host
            return _paramiko_hosts[key]
    if options.get("controlpersist"):
        kwargs["controlpersist"] = int(options["controlpersist"])
    kwargs["ssh_extra_args"] = ssh_args(options)
    return testinfra.get_host(base, **kwargs)


def harden_ansible_host(host: Any) -> None:
    """An ansible:// host connects as the inventory says, through an ssh or paramiko testinfra host of
    its own (testinfra.utils.ansible_runner): never let that ssh prompt (BatchMode), and check paramiko
    connections' host keys. Runs `ansible-inventory` (testinfra's, once per inventory and process)."""
    backend = host.backend
    if getattr(backend, "force_ansible", False):
        return
    inner = backend.ansible_runner.get_host(backend.host, ssh_config=backend.ssh_config,
                                            ssh_identity_file=backend.ssh_identity_file)
    if inner is None:
        return
    ib = inner.backend
    if ib.NAME in ("ssh", "safe-ssh"):
        extra = ib.ssh_extra_args or ""
        if not _has_option(extra, "batchmode"):
            ib.ssh_extra_args = ("-o BatchMode=yes " + extra).strip()
    elif ib.NAME == "paramiko" and not getattr(ib, "strict_host_keys", False):
        spec = ib.host
        name = f"[{spec.name}]" if ":" in spec.name else spec.name
        rest = (f"{spec.user}@" if spec.user else "") + name + (f":{spec.port}" if spec.port else "")
        strict = strict_paramiko()(rest, ssh_config=ib.ssh_config, ssh_identity_file=ib.ssh_identity_file,
                                       timeout=ib.timeout, sudo=ib.sudo, sudo_user=ib.sudo_user)
        strict.set_host(inner)
        inner.backend = strict


@functools.cache
def strict_paramiko() -> type:
    """StrictParamikoBackend (made on first use: testinfra's paramiko backend needs paramiko installed,
    which only paramiko:// hosts do)."""
    from testinfra.backend.paramiko import ParamikoBackend

    class StrictParamikoBackend(ParamikoBackend):
        """testinfra's paramiko backend with host keys checked: known_hosts (the spec's file, else
        ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts) and paramiko's RejectPolicy, whatever an ssh_config
        says; and a jump host (a direct-tcpip channel through a connection checked the same way)."""

        NAME = "paramiko"
        strict_host_keys = True

        def __init__(self, hostspec: str, *args: Any, known_hosts: str | None = None, jump: str | None = None,
                     **kwargs: Any):
            self.known_hosts = known_hosts
            self.jump = jump
            self._jump_client: Any = None
            super().__init__(hostspec, *args, **kwargs)

        def _new_client(self) -> Any:
            import paramiko

            client = paramiko.SSHClient()
            keys = client.get_host_keys()
            if self.known_hosts:
                keys.load(self.known_hosts)  # FileNotFoundError names the file: a missing file is an error
            else:
                for path in (os.path.expanduser("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"):
                    if os.path.isfile(path):
                        keys.load(path)
            return client

        def _config(self, client: Any) -> dict[str, Any]:
            import paramiko

            cfg: dict[str, Any] = {"hostname": self.host.name, "port": int(self.host.port) if self.host.port else 22,
                                   "username": self.host.user, "timeout": self.timeout, "password": self.host.password}
            path = self.ssh_config or os.path.expanduser("~/.ssh/config")
            if self.ssh_config or os.path.isfile(path):
                with open(path) as f:
                    config = paramiko.SSHConfig()
                    config.parse(f)
                self._load_ssh_config(client, cfg, config, os.path.dirname(path))
            if self.ssh_identity_file:
                cfg["key_filename"] = self.ssh_identity_file
            return cfg

        @functools.cached_property
        def client(self) -> Any:
            import paramiko

            client = self._new_client()
            cfg = self._config(client)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())  # after the ssh_config: it may not relax it
            if self.jump:
                cfg["sock"] = self._through_jump(cfg["hostname"], cfg["port"])
            _connect(client, cfg)
            return client

        def _through_jump(self, hostname: str, port: int) -> Any:
            import paramiko

            jump = parse_jump(self.jump or "")
            client = self._new_client()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            cfg: dict[str, Any] = {"hostname": jump.host, "port": jump.port or 22,
                                   "username": jump.user or self.host.user, "timeout": self.timeout}
            if self.ssh_identity_file:
                cfg["key_filename"] = self.ssh_identity_file
            _connect(client, cfg, what="jump host ")
            self._jump_client = client
            transport = client.get_transport()
            return transport.open_channel("direct-tcpip", (hostname, port), ("127.0.0.1", 0), timeout=self.timeout)

    return StrictParamikoBackend


def _connect(client: Any, cfg: dict[str, Any], what: str = "") -> None:
    """client.connect, with paramiko's host-key refusals said the way ssh says them."""
    import paramiko

    where = f"[{cfg['hostname']}]:{cfg['port']}" if cfg.get("port", 22) != 22 else str(cfg["hostname"])
    try:
        client.connect(**cfg)
    except paramiko.BadHostKeyException:
        raise HostKeyRefused(f"{what}host key for {where} does not match known_hosts: host key verification "
                             "failed") from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostKeyRefused(f"no host key is known for {what}{where} (not in known_hosts): host key "
                                 "verification failed") from None
        raise RuntimeError(f"{what}{where}: {exc}") from None
    except OSError as exc:  # socket.timeout is an OSError
        raise RuntimeError(f"{what}{where}: {exc.strerror or exc}") from None
