"""An Ansible inventory as a Target: which hosts are which sites, in which roles, with which endpoints.

The inventory itself is parsed by Ansible (`ansible-inventory --list`, engine/inventory.py); this module
maps that JSON to a Target, pure (docs/real-targets.md, "An Ansible inventory"):

* a site per inventory host (hosts sharing `edge_conformance_site` make one site of several hosts);
* its role: `edge_conformance_role` (a host or group variable), else the one group named like a role
  (ROLE_GROUPS) that holds the host, children included;
* endpoints: `edge_conformance_endpoints` (name -> URL) and `edge_conformance_endpoint_NAME`; uplink,
  credentials, ca_file, labels, hooks, faults: `edge_conformance_<field>`; the target's name:
  `edge_conformance_name`, else the file's name;
* its hosts: `ansible://HOST?ansible_inventory=FILE` (testinfra's ansible backend connects as Ansible
  would).

The result goes through the target file's own checks (schema, URLs, credentials, hooks: target.py), with
every error located in the inventory: `FILE:LINE: HOST: VARIABLE: message`, LINE being where the host or
the variable is written (found in the file's text; ansible-inventory's JSON has no lines).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import ConfigError, did_you_mean, field_path
from .schema_errors import validate as schema_validate
from .target import Target, _build
from .yamlfile import YamlDoc

PREFIX = "edge_conformance_"
ROLE_GROUPS = ("central", "regional", "edge")
FIELDS = ("role", "endpoints", "uplink", "credentials", "ca_file", "labels", "hooks", "faults")
KNOWN_VARS = tuple(PREFIX + f for f in (*FIELDS, "site", "name"))
PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
_SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class InventoryDoc(YamlDoc):
    """A YamlDoc over the target built from an inventory: errors name the inventory's lines and
    variables (`labels`: field path -> how the inventory spells it)."""

    def __init__(self, data: Any, source: str, lines: dict, labels: dict):
        super().__init__(data, source, lines)
        self.labels = labels

    def error(self, path: Any, message: str) -> ConfigError:
        path = tuple(path)
        for n in range(len(path), -1, -1):
            if path[:n] in self.labels:
                head = self.labels[path[:n]]
                rest = field_path(path[n:])
                label = f"{head}.{rest}" if rest and head.split(": ")[-1].startswith(PREFIX) else \
                    f"{head}: {rest}" if rest else head
                return ConfigError(self.source, self.line(path), label, message)
        return ConfigError(self.source, self.line(path), field_path(path) or None, message)


def groups_of(data: dict, host: str) -> list[str]:
    """The groups that hold `host`, directly or through their children."""
    children = {g: list((v or {}).get("children") or []) for g, v in data.items() if g != "_meta"}
    direct = {g for g, v in data.items() if g != "_meta" and host in ((v or {}).get("hosts") or [])}
    out = set(direct)
    changed = True
    while changed:
        changed = False
        for g, kids in children.items():
            if g not in out and any(k in out for k in kids):
                out.add(g)
                changed = True
    return sorted(out)


def inventory_hosts(data: dict) -> list[str]:
    """Every host of the inventory, in the order Ansible lists them (groups sorted by name)."""
    seen: dict[str, None] = {}
    for g, v in data.items():
        if g == "_meta":
            continue
        for h in (v or {}).get("hosts") or []:
            seen.setdefault(h, None)
    for h in ((data.get("_meta") or {}).get("hostvars") or {}):
        seen.setdefault(h, None)
    return list(seen)


class Locator:
    """Lines of an inventory's text: where a host is written, and a variable (on the host's line, else the
    first line that sets it)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def host(self, name: str) -> int | None:
        pat = re.compile(r"^\s*(?:-\s*)?['\"]?" + re.escape(name) + r"['\"]?\s*(?:$|[\s:=])")
        for i, line in enumerate(self.lines, 1):
            if pat.match(line) and not line.lstrip().startswith(("[", "#", ";")):
                return i
        return None

    def var(self, host: str, name: str) -> int | None:
        at = self.host(host)
        if at is not None and re.search(r"(^|\s)" + re.escape(name) + r"\s*[=:]", self.lines[at - 1]):
            return at
        pat = re.compile(r"^\s*['\"]?" + re.escape(name) + r"['\"]?\s*[=:]")
        for i, line in enumerate(self.lines, 1):
            if pat.match(line):
                return i
        return at


def target_from_inventory(data: dict, source: str, text: str, inventory_path: str) -> Target:
    """The Target of an inventory (`ansible-inventory --list` JSON); ConfigError located in `source`."""
    hostvars: dict[str, dict] = ((data.get("_meta") or {}).get("hostvars") or {})
    where = Locator(text)
    listed = inventory_hosts(data)  # ansible-inventory sorts its groups: the file's order is the sites' order
    hosts = sorted(listed, key=lambda h: (where.host(h) or len(where.lines) + 1 + listed.index(h)))

    def fail(host: str | None, var: str | None, message: str) -> ConfigError:
        line = (where.var(host, var) if var else where.host(host)) if host else None
        label = ": ".join(p for p in (host, var) if p) or None
        return ConfigError(source, line, label, message)

    if not hosts:
        raise ConfigError(source, None, None, "the inventory has no hosts (is it an Ansible inventory?)")
    sites: dict[str, dict] = {}
    lines: dict[tuple, int] = {}
    labels: dict[tuple, str] = {}
    origin: dict[str, str] = {}  # site -> the first host that made it
    name = None
    spec_file = quote(inventory_path, safe="/~._-+,:@")
    for host in hosts:
        hv = hostvars.get(host) or {}
        for var in PASSWORD_VARS:
            if hv.get(var) not in (None, ""):
                raise fail(host, var, "no connection passwords in an inventory the harness reads (they would be "
                                      "put on ssh's command line): use ssh keys or the ssh-agent")
        for var in hv:
            if var.startswith(PREFIX) and var not in KNOWN_VARS and not var.startswith(PREFIX + "endpoint_"):
                raise fail(host, var, f'unknown variable{did_you_mean(var, KNOWN_VARS)} (known: '
                                      f'{", ".join(KNOWN_VARS)}, {PREFIX}endpoint_NAME)')
        name = name or hv.get(PREFIX + "name")
        site_name = hv.get(PREFIX + "site", host)
        if not isinstance(site_name, str) or not _SITE_NAME.match(site_name):
            raise fail(host, PREFIX + "site" if PREFIX + "site" in hv else None,
                       f'"{site_name}" is not a site name (letters, digits, ".", "_", "-"): set '
                       f"{PREFIX}site to one")
        role = _role(data, host, hv, fail)
        entry = sites.get(site_name)
        if entry is None:
            entry = sites[site_name] = {"name": site_name, "role": role, "hosts": []}
            origin[site_name] = host
            i = len(sites) - 1
            lines[("sites", i)] = where.host(host) or 1
            labels[("sites", i)] = host
            for f in FIELDS[1:]:
                var = PREFIX + f
                if var in hv:
                    entry[f] = hv[var]
                    lines[("sites", i, f)] = where.var(host, var) or lines[("sites", i)]
                    labels[("sites", i, f)] = f"{host}: {var}"
            endpoints = entry.get("endpoints", {})
            endpoints = dict(endpoints) if isinstance(endpoints, dict) else endpoints
            for var, value in hv.items():
                if var.startswith(PREFIX + "endpoint_") and isinstance(endpoints, dict):
                    ep = var[len(PREFIX + "endpoint_"):]
                    endpoints[ep] = value
                    lines[("sites", i, "endpoints", ep)] = where.var(host, var) or lines[("sites", i)]
                    labels[("sites", i, "endpoints", ep)] = f"{host}: {var}"
            if endpoints:
                entry["endpoints"] = endpoints
        elif entry["role"] != role:
            raise fail(host, None, f"site {site_name} is in role {entry['role']} (host {origin[site_name]}) and in "
                                   f"role {role} here: one role per site")
        else:
            for f in FIELDS[1:]:
                var = PREFIX + f
                if var in hv and hv[var] != entry.get(f):
                    raise fail(host, var, f"differs from host {origin[site_name]}'s, of the same site {site_name}")
        entry["hosts"].append(f"ansible://{host}?ansible_inventory={spec_file}")
    target = {"name": str(name or Path(source).stem or "inventory"), "sites": list(sites.values())}
    doc = InventoryDoc(target, source, lines, labels)
    schema_validate(doc, "target.schema.json")
    built = _build(doc)
    built.inventory = inventory_path
    return built


def _role(data: dict, host: str, hv: dict, fail: Any) -> str:
    var = PREFIX + "role"
    if var in hv:
        role = hv[var]
        if not isinstance(role, str) or not re.match(r"^[a-z][a-z0-9_-]*$", role):
            raise fail(host, var, f'"{role}" is not a role (lower-case letters, digits, "_", "-": central, edge ...)')
        return role
    found = [g for g in groups_of(data, host) if g in ROLE_GROUPS]
    if not found:
        raise fail(host, None, f"no role: it is in no group named {', '.join(ROLE_GROUPS[:-1])} or "
                               f"{ROLE_GROUPS[-1]} and has no {var} (put it in one, or set {var})")
    if len(found) > 1:
        raise fail(host, None, f"in the role groups {' and '.join(found)}: one role per site (set {var})")
    return found[0]
