"""The target's secrets: which values are secret, and the one redaction of them.

A target never holds a secret, only `${VAR}` references: its credentials (`credentials: {api_token:
"${STORE1_TOKEN}"}`), the `${VAR}`s of its hook commands and those of its hosts' options (an ssh key's
path, `ssh_identity_file: ${STORE_KEY}`). Every variable a target refers to this
way is a secret, and its value, read from the environment when the run starts, is a **known secret
value**. Whatever the harness writes or shows goes through `redact()`, which replaces each known value
with its reference (`${STORE1_TOKEN}`): results.json (engine/record.py, so every report rendered from
it: junit.xml, summary.md, report.html, the terminal summary), the lines pytest prints for a result,
and a hook's output before any line of it is quoted. `edge-conformance bundle` looks for the same
values (`find()`) and refuses a bundle that holds one.

Short values: a value shorter than MIN_SECRET_LENGTH characters would be found everywhere ("admin"
in "administrator", a port in every number), so it is never redacted or looked for. A *credential*
that short is refused when the run starts (`check_lengths`: exit 2), since nothing could keep it out
of the reports. A hook command's variable that short is left alone: a value of a few characters is a
parameter (an interface, a port, a user name), not a secret.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigError
from .target import ENV_REF

MIN_SECRET_LENGTH = 6  # shorter values (ports, "true", "eth0") would be found everywhere


def references(obj: Any) -> list[str]:
    """The variables `${VAR}` references name in a text, or in every string of a list or a mapping
    (its keys too), in order."""
    if isinstance(obj, str):
        return ENV_REF.findall(obj)
    if isinstance(obj, dict):
        return [name for k, v in obj.items() for name in references(k) + references(v)]
    if isinstance(obj, (list, tuple)):
        return [name for part in obj for name in references(part)]
    return []


def target_variables(target: Any) -> dict[str, str]:
    """Every variable a target refers to -> where (for messages): its sites' credentials first, then
    the `${VAR}`s of their hook commands."""
    out: dict[str, str] = {}
    for site in getattr(target, "sites", None) or []:
        for cname, var in (site.credentials or {}).items():
            out.setdefault(var, f"credentials.{cname} of site {site.name}")
    for site in getattr(target, "sites", None) or []:
        for hname, hook in (site.hooks or {}).items():
            for var in references(hook.command):
                out.setdefault(var, f"hook {hname} of site {site.name}")
    for site in getattr(target, "sites", None) or []:  # an ssh host's ${ENV_VAR} options (key paths ...)
        for j, host in enumerate(site.hosts or []):
            for var in references(host):
                out.setdefault(var, f"hosts[{j}] of site {site.name}")
    return out


def values_of(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """variable -> value, for each variable set in `environ` (default: os.environ) with a value of at
    least MIN_SECRET_LENGTH characters: the values redact() replaces and find() looks for."""
    env = os.environ if environ is None else environ
    out = {}
    for name in sorted(set(names)):
        value = env.get(name)
        if value is not None and len(value) >= MIN_SECRET_LENGTH:
            out[name] = value
    return out


def known_secret_values(target: Any, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """variable -> value of every variable the target refers to that is set here (and long enough)."""
    return values_of(target_variables(target), environ)


def run_secret_values(target: Any, profiles: Iterable[Any] = (),
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The known secret values of a run: the target's, and those of the `${VAR}`s in the params of the
    profiles' requirements (an HTTP check's `headers: {Authorization: "Bearer ${API_TOKEN}"}`)."""
    names = set(target_variables(target))
    for profile in profiles:
        for req in getattr(profile, "requirements", None) or []:
            names.update(references(getattr(req, "params", None) or {}))
    return values_of(names, environ)


def check_lengths(target: Any, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a credential whose value is too short to be redacted (ConfigError naming it, never the value)."""
    env = os.environ if environ is None else environ
    for i, site in enumerate(getattr(target, "sites", None) or []):
        for cname, var in (site.credentials or {}).items():
            value = env.get(var)
            if value and len(value) < MIN_SECRET_LENGTH:
                raise ConfigError(getattr(target, "path", None) or None, None, f"sites[{i}].credentials.{cname}",
                                  f"the value of ${{{var}}} is shorter than {MIN_SECRET_LENGTH} characters, too "
                                  "short to be kept out of the reports (it would be found in everything): "
                                  "use a longer secret")


def forms(value: str) -> list[str]:
    """The ways a value can be written: as is, inside a JSON string (ASCII-escaped or not) and in HTML."""
    out = [value]
    for form in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
                 html.escape(value, quote=True)):
        if form not in out:
            out.append(form)
    return out


def _pairs(secrets: Mapping[str, str]) -> list[tuple[str, str]]:
    """(form, replacement), longest value first, so a value that contains another goes whole."""
    pairs = []
    for var, value in sorted(secrets.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if value and len(value) >= MIN_SECRET_LENGTH:
            pairs += [(form, "${" + var + "}") for form in forms(value)]
    return pairs


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with every known secret value (`secrets`: variable -> value) replaced by `${VARIABLE}`."""
    if not secrets or not text:
        return text
    for form, ref in _pairs(secrets):
        if form in text:
            text = text.replace(form, ref)
    return text


def find(data: str | bytes, secrets: Mapping[str, str]) -> str | None:
    """The variable whose value (in any of its forms) `data` holds, or None. For refusing what cannot
    be redacted, such as a member of a signed bundle."""
    for form, ref in _pairs(secrets):
        found = form.encode("utf-8") in data if isinstance(data, bytes) else form in data
        if found:
            return ref[2:-1]
    return None


def redact_data(obj: Any, secrets: Mapping[str, str], default: Callable[[Any], Any] | None = None) -> Any:
    """`obj` (dicts, lists, strings ...) with every string redacted, in place where it is a dict or a
    list (so references to its parts stay valid); returns it. Numbers are left as they are; any other
    object is replaced by `default(obj)` (what JSON serialisation would write for it), redacted."""
    if not secrets:
        return obj
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        items = [(redact(k, secrets) if isinstance(k, str) else k, redact_data(v, secrets, default))
                 for k, v in obj.items()]
        obj.clear()
        obj.update(items)
        return obj
    if isinstance(obj, list):
        obj[:] = [redact_data(v, secrets, default) for v in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(redact_data(v, secrets, default) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float)) or default is None:
        return obj
    return redact_data(default(obj), secrets, default)
