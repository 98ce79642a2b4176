"""A site's host specs: testinfra's `backend://[user@]host[:port][?option=value&...]`, checked on load.

For ssh://, safe-ssh:// and paramiko:// hosts a target file may also write a mapping,
`{spec: ssh://ops@10.0.0.5, known_hosts: known_hosts, jump: ops@bastion}`: `normalize()` writes its
options into the spec's query string, so a host is one string everywhere after loading (results.json,
`--site`/`host` matching, measure/host/ssh.py which opens it). Options are testinfra's own and three of
ours (docs/real-targets.md, "SSH hosts in a target file"); values may be ${ENV_VAR} references, resolved
only when the host is used. A literal relative path is made absolute (relative to the target file) and
must exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from .errors import did_you_mean

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SSH_BACKENDS = ("ssh", "safe-ssh", "paramiko")
TESTINFRA_OPTIONS = ("ssh_config", "ssh_identity_file", "timeout", "controlpersist", "sudo", "sudo_user")
OUR_OPTIONS = ("known_hosts", "jump", "ssh_extra_args")
SSH_OPTIONS = TESTINFRA_OPTIONS + OUR_OPTIONS
PATH_OPTIONS = ("ssh_config", "ssh_identity_file", "known_hosts")
ONLY_FOR = {"ssh_extra_args": ("ssh", "safe-ssh"), "controlpersist": ("ssh", "safe-ssh")}
_JUMP = re.compile(r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
                   r"(?P<host>[A-Za-z0-9_][A-Za-z0-9._-]*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$")
_SAFE = "/${}@:~,.-_+[]"  # kept as written in a spec's query (readable paths and references)


@dataclass
class Jump:
    host: str
    port: int | None
    user: str | None


def parse_jump(text: str) -> Jump:
    """`[user@]host[:port]` -> Jump; ValueError saying what is wrong."""
    m = _JUMP.match(text.strip())
    if not m:
        raise ValueError(f'"{text}" is not a jump host [user@]host[:port]')
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f'"{text}" has an invalid port')
    return Jump(m["host"].strip("[]"), port, m["user"])


def backend_of(spec: str) -> str:
    return spec.split("://", 1)[0] if "://" in spec else "paramiko"


def split_spec(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """"ssh://u@h:22?a=1&b=2" -> ("ssh://u@h:22", [("a", "1"), ("b", "2")]) (values unquoted)."""
    if "?" not in spec:
        return spec, []
    base, query = spec.split("?", 1)
    return base, parse_qsl(query, keep_blank_values=True)


def join_spec(base: str, options: list[tuple[str, str]]) -> str:
    if not options:
        return base
    return base + "?" + "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in options)


def references(spec: str) -> list[str]:
    """The ${VAR}s a host spec names (in its option values)."""
    return ENV_REF.findall(spec)


Fail = Callable[[tuple, str], Exception]  # (field path, message) -> the located error to raise


def normalize(raw: Any, path: tuple, fail: Fail, base_dir: Path | None) -> str:
    """A target file's host (a spec string, or a mapping with `spec` and options) as one checked spec
    string. `fail(path, message)` makes the located error (target.py: doc.error)."""
    if isinstance(raw, dict):
        spec = str(raw["spec"])
        if "?" in spec:
            raise fail(path + ("spec",), "give the options either in the spec's query or as keys, not both")
        options = [(k, _text(v)) for k, v in raw.items() if k != "spec"]
        where = {k: path + (k,) for k, _ in options}
        spec_path = path + ("spec",)
    else:
        spec = str(raw)
        spec, options = split_spec(spec)
        where = {k: path for k, _ in options}
        spec_path = path
    check_base(spec, spec_path, fail)
    backend = backend_of(spec)
    if backend not in SSH_BACKENDS:
        if isinstance(raw, dict):
            raise fail(path, f"options as keys are for {', '.join(b + '://' for b in SSH_BACKENDS)} hosts: "
                             "give this one's options in its spec's query")
        return join_spec(spec, options)
    seen = set()
    out = []
    for key, value in options:
        at = where[key]
        if key not in SSH_OPTIONS:
            raise fail(at, f'unknown option "{key}" of an {backend}:// host{did_you_mean(key, SSH_OPTIONS)} '
                           f"(options: {', '.join(SSH_OPTIONS)})")
        if key in seen:
            raise fail(at, f'option "{key}" given twice')
        seen.add(key)
        if backend not in ONLY_FOR.get(key, (backend,)):
            raise fail(at, f'option "{key}" is for {" and ".join(b + "://" for b in ONLY_FOR[key])} hosts')
        if not value.strip():
            raise fail(at, f'option "{key}" is empty')
        if key in PATH_OPTIONS and not references(value):
            value = _existing_path(value, at, fail, base_dir, key)
        elif key == "jump" and not references(value):
            try:
                parse_jump(value)
            except ValueError as exc:
                raise fail(at, str(exc)) from None
        elif key in ("timeout", "controlpersist") and not (value.isdigit() and int(value) > 0):
            raise fail(at, f'option "{key}" must be a whole number of seconds above 0, got "{value}"')
        elif key == "sudo" and value.lower() not in ("true", "false"):
            raise fail(at, f'option "sudo" must be true or false, got "{value}"')
        elif key == "ssh_extra_args" and re.search(r"(?i)\bpassword\b|sshpass", value):
            raise fail(at, "no passwords in ssh options: use ssh keys, the ssh-agent or ${ENV_VAR} key paths")
        out.append((key, value))
    return join_spec(spec, out)


def check_base(spec: str, path: tuple, fail: Fail) -> None:
    """A spec's `backend://[user@]host[:port]`: a backend testinfra knows, and no password."""
    if "://" not in spec:
        raise fail(path, f'"{spec}" is not a testinfra host spec such as local://, ssh://user@host or '
                         "docker://container")
    backend = backend_of(spec)
    from testinfra.backend import BACKENDS  # the real list, so we accept exactly what testinfra does

    if backend not in BACKENDS:
        raise fail(path, f'unknown testinfra backend "{backend}"{did_you_mean(backend, BACKENDS)}')
    try:
        password = urlsplit(spec).password
    except ValueError:
        password = None
    if password or re.match(r"^[a-z-]+://[^/?@]*:[^/?@]*@", spec):
        raise fail(path, "no passwords in host specs: use ssh keys, the ssh-agent or ${ENV_VAR} key paths")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _existing_path(value: str, path: tuple, fail: Fail, base_dir: Path | None, key: str) -> str:
    file = Path(os.path.expanduser(value))
    if not file.is_absolute():
        file = (base_dir or Path.cwd()) / file
    if not file.is_file():
        raise fail(path, f"{key}: {file}: no such file")
    return str(file.resolve())
