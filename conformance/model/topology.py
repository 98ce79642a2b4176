"""Topologies: the emulated deployment a run can bring up instead of a real target.

A topology file lists sites (central, regional, edge; fleets by name pattern), WAN defaults, access
defaults and per-link overrides in the shape of EnOSlib's "network constraints":

    name: retail
    sites:
      - {name: central, role: central, resources: {cpus: 2, memory: 256 MiB}}
      - {name: "store-[1-3]", role: edge, defects: [no-fsync]}
    wan: {default_delay: 20 ms, default_jitter: 2 ms, default_loss: 0.1 %, default_rate: 10 Mbit/s}
    access: {delay: 1 ms, rate: 100 Mbit/s}
    constraints:
      - {src: central, dst: store-2, delay: 60 ms}      # a WAN link
      - {src: clients, dst: store-3, delay: 5 ms}       # an access link ("clients" = a site's users)

It expands into a flat `Topology` of `SiteSpec`s and `LinkSpec`s: one WAN link "wan:<site>" from every
edge-workload site to its uplink, and one access link "access:<site>" in front of every site. Links are
symmetric (the relay applies the same parameters to both directions) and `delay` is ONE-WAY, as in
EnOSlib, so a request/response over a link pays twice the delay.

Pure data and parsing: imports nothing of ours outside conformance.model but the reference workloads'
contract (edge_workloads.settings and .defects: what a site accepts is the site's own business).
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_workloads.defects import CENTRAL_DEFECTS as WORKLOAD_CENTRAL_DEFECTS, DEFECTS as WORKLOAD_DEFECTS
from edge_workloads.settings import SettingsError, check_settings  # a site's settings are the workloads' own

from .errors import ConfigError, did_you_mean
from .linkparams import LinkParams  # the one class of a link's parameters, topology to relay
from . import units
from .yamlfile import YamlDoc, load_yaml, parse_yaml

ROLES = ("central", "regional", "edge")
# The site processes (edge_workloads, the reference workloads) implement these two behaviours.
WORKLOADS = ("central", "edge")
# A regional site has no workload of its own: by default it is an edge box that reaches central.
DEFAULT_WORKLOAD = {"central": "central", "regional": "edge", "edge": "edge"}
# Defect switches of the site-process contract (the spelling never changes): the workloads' own.
DEFECTS = tuple(WORKLOAD_DEFECTS)
# A central site only serves requests; the other defects break edge-side behaviour (the cache, the WAN).
CENTRAL_DEFECTS = tuple(d for d in DEFECTS if d in WORKLOAD_CENTRAL_DEFECTS)
CLIENTS = "clients"  # the pseudo-site at the far end of every access link
MAX_SITES = 1000
FLEET_CHATTER_SITES = 250  # generated fleets: about this many heartbeats (and config polls) per second at central
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the site process accepts these
_RANGE = re.compile(r"\[(\d+)-(\d+)\]")

_TOP_KEYS = ("name", "description", "reach", "sites", "wan", "access", "constraints")
# How the harness reaches the sites: "control" (the emulator's control API and published endpoints) or
# "ssh" (the SSH lab: store servers reached only through ssh, probes deployed, faults on the site itself)
REACHES = ("control", "ssh")
_SITE_KEYS = ("name", "role", "workload", "count", "uplink", "resources", "defects", "config")
_RESOURCE_KEYS = ("cpus", "memory")
_WAN_KEYS = ("default_delay", "default_jitter", "default_loss", "default_rate")
_ACCESS_KEYS = ("delay", "jitter", "loss", "rate")
_CONSTRAINT_KEYS = ("src", "dst", "delay", "jitter", "loss", "rate", "symmetric")


# --------------------------------------------------------------------------- expanded model


@dataclass(frozen=True)
class Resources:
    """What the emulated box offers the site (recorded as labels; enforcement is up to the backend)."""

    cpus: float | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class SiteSpec:
    name: str
    role: str
    workload: str
    uplink: str | None = None           # site reached over this site's WAN link (edge workloads)
    resources: Resources = Resources()
    defects: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)  # settings passed to the site (--site-config)
    line: int | None = None             # where the site was declared, for later error messages


@dataclass(frozen=True)
class LinkSpec:
    name: str              # "wan:<site>" or "access:<site>"
    kind: str              # "wan" | "access"
    site: str
    peer: str | None       # the uplink site for wan links; None (the site's clients) for access links
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    bandwidth_bps: int | None = None

    def params(self) -> dict[str, Any]:
        """The shaping parameters (LinkParams.shaping(), the link daemon's field names)."""
        return LinkParams(self.delay_ms, self.jitter_ms, self.loss, self.bandwidth_bps).shaping()


@dataclass(frozen=True)
class Topology:
    name: str
    description: str
    sites: list[SiteSpec]
    links: list[LinkSpec]
    source: str = ""
    reach: str = "control"  # REACHES: how the harness reaches the sites

    def site(self, name: str) -> SiteSpec:
        for s in self.sites:
            if s.name == name:
                return s
        raise LookupError(f'no site "{name}"{did_you_mean(name, [s.name for s in self.sites])}')

    def link(self, name: str) -> LinkSpec:
        for link in self.links:
            if link.name == name:
                return link
        raise LookupError(f'no link "{name}"{did_you_mean(name, [x.name for x in self.links])}')

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source, "reach": self.reach,
                "sites": [asdict(s) for s in self.sites], "links": [asdict(x) for x in self.links]}


# --------------------------------------------------------------------------- finding files


def topologies_dir() -> Path:
    """Built-in topologies ship as package data of conformance.emulation (no import needed)."""
    return Path(__file__).resolve().parent.parent / "emulation" / "topologies"


def list_topologies() -> list[str]:
    """Names of the built-in topologies."""
    return sorted(p.stem for p in topologies_dir().glob("*.yaml"))


def resolve_topology(ref: str) -> Path:
    """A built-in name (retail) or a path to a YAML file."""
    if "/" in ref or ref.endswith((".yaml", ".yml")) or Path(ref).is_file():
        return Path(ref)
    builtin = topologies_dir() / f"{ref}.yaml"
    if builtin.is_file():
        return builtin
    names = list_topologies()
    raise ConfigError(None, None, "topology", f'unknown topology "{ref}"{did_you_mean(ref, names)}'
                                              f" (built-in: {', '.join(names) or 'none'}; fleet:N for central "
                                              "and N stores; or give a path)")


_GENERATED = re.compile(r"^fleet:(\d+)$")


def generated_topology(ref: str) -> str | None:
    """The YAML of a generated topology (`fleet:N`: central and N stores store-1 .. store-N, zero-padded,
    with fleet-50's links and budgets), or None when `ref` names none. A fleet beyond what this
    machine's backend can bring up fails at bring-up, not here."""
    m = _GENERATED.match(ref.strip())
    if m is None:
        return None
    count = int(m[1])
    if not 1 <= count < MAX_SITES:
        raise ConfigError(None, None, "topology", f"fleet:N takes 1 to {MAX_SITES - 1} stores, got {count}")
    width = len(str(count))
    # A fleet's stores heartbeat and poll central for config every second; beyond FLEET_CHATTER_SITES
    # the interval grows with the fleet, so central sees about that many of each per second (as a real
    # fleet is tuned), up to 4 s: within the naas fleet checks' 5 s and 10 s budgets.
    interval = min(4.0, math.ceil(2 * count / FLEET_CHATTER_SITES) / 2) if count > FLEET_CHATTER_SITES else None
    config = (f", config: {{heartbeat_interval_s: {interval:g}, config_poll_interval_s: {interval:g}}}"
              if interval else "")
    return (f"# fleet:{count}, generated: the fleet-50 topology with {count} stores (links and budgets as "
            "fleet-50.yaml)\n"
            f"name: fleet-{count}\n"
            f"description: Central site and {count} stores with retail WAN links (generated)\n"
            "sites:\n"
            "  - {name: central, role: central, resources: {cpus: 2, memory: 512 MiB}}\n"
            f"  - {{name: \"store-[{1:0{width}d}-{count}]\", role: edge, resources: {{cpus: 0.25, memory: 64 MiB}}"
            f"{config}}}\n"
            "wan: {default_delay: 20 ms, default_jitter: 2 ms, default_loss: 0.1 %, default_rate: 10 Mbit/s}\n"
            "access: {delay: 1 ms, rate: 100 Mbit/s}\n")


def load_topology(name_or_path: str | Path) -> Topology:
    text = generated_topology(str(name_or_path))
    if text is not None:
        return parse_topology(parse_yaml(text, str(name_or_path)), default_name=str(name_or_path))
    path = resolve_topology(str(name_or_path))
    builtin = path.resolve().parent == topologies_dir().resolve()
    display = f"topologies/{path.name}" if builtin else str(path)
    doc = load_yaml(path, display=display)
    return parse_topology(doc, default_name=path.stem)


# --------------------------------------------------------------------------- parsing


def parse_topology(doc: YamlDoc, default_name: str = "topology") -> Topology:
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(doc.source, 1, None, "a topology must be a YAML mapping with at least `sites`")
    _check_keys(doc, (), data, _TOP_KEYS)
    name = _opt_str(doc, ("name",), data.get("name")) or default_name
    description = _opt_str(doc, ("description",), data.get("description")) or ""
    reach = _opt_str(doc, ("reach",), data.get("reach")) or "control"
    if reach not in REACHES:
        raise doc.error(("reach",), f'unknown reach "{reach}"{did_you_mean(reach, REACHES)} '
                                    f'(allowed: {", ".join(REACHES)})')
    if "sites" not in data:
        raise doc.error((), "sites: required (a list of sites, e.g. - {name: central, role: central})")
    raw_sites = data["sites"]
    if not isinstance(raw_sites, list) or not raw_sites:
        raise doc.error(("sites",), "expected a non-empty list of sites")

    sites: list[SiteSpec] = []
    declared: dict[str, tuple] = {}  # site name -> field path of its entry
    for i, raw in enumerate(raw_sites):
        for spec in _parse_site(doc, ("sites", i), raw):
            if spec.name in declared:
                raise doc.error(("sites", i, "name"), f'duplicate site name "{spec.name}" '
                                                      f"(first declared at line {doc.line(declared[spec.name])})")
            declared[spec.name] = ("sites", i)
            sites.append(spec)
            if len(sites) > MAX_SITES:
                raise doc.error(("sites", i), f"too many sites (at most {MAX_SITES})")
    sites = _resolve_uplinks(doc, sites, declared)

    wan = _parse_defaults(doc, ("wan",), data.get("wan"), prefix="default_")
    access = _parse_defaults(doc, ("access",), data.get("access"), prefix="")
    links = _build_links(sites, wan, access)
    links = _apply_constraints(doc, data.get("constraints"), sites, links)
    return Topology(name=name, description=description, sites=sites, links=links, source=doc.source, reach=reach)


def _parse_site(doc: YamlDoc, where: tuple, raw: Any) -> list[SiteSpec]:
    if not isinstance(raw, dict):
        raise doc.error(where, "a site must be a mapping with name and role")
    _check_keys(doc, where, raw, _SITE_KEYS)
    for required in ("name", "role"):
        if required not in raw:
            raise doc.error(where, f"{required}: required")
    role = raw["role"]
    if role not in ROLES:
        raise doc.error(where + ("role",), f'unknown role "{role}"{did_you_mean(str(role), ROLES)}'
                                           f" (roles: {', '.join(ROLES)})")
    workload = raw.get("workload", DEFAULT_WORKLOAD[role])
    if workload not in WORKLOADS:
        raise doc.error(where + ("workload",), f'unknown workload "{workload}"'
                                               f"{did_you_mean(str(workload), WORKLOADS)}"
                                               f" (workloads: {', '.join(WORKLOADS)})")
    uplink = raw.get("uplink")
    if uplink is not None:
        if not isinstance(uplink, str):
            raise doc.error(where + ("uplink",), f"expected a site name, got {uplink!r}")
        if workload == "central":
            raise doc.error(where + ("uplink",), "a central-workload site has no uplink")
    names = _expand_names(doc, where, raw["name"], raw.get("count"))
    resources = _parse_resources(doc, where + ("resources",), raw.get("resources"))
    defects = _parse_defect_list(doc, where + ("defects",), raw.get("defects"), workload)
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise doc.error(where + ("config",), "expected a mapping of site settings, e.g. {cache_ttl_s: 5}")
    for key, value in config.items():  # the site's own rules, now rather than at bring-up
        if key == "stack":  # real services beside the workload (docker backend, docs/docker-backend.md)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise doc.error(where + ("config", key), f"expected a list of service names, got {value!r}")
            continue
        try:
            check_settings({key: value})
        except SettingsError as exc:
            raise doc.error(where + ("config", key), str(exc).removeprefix(f"{key}: ")) from None
    line = doc.line(where)
    return [SiteSpec(name=n, role=role, workload=workload, uplink=uplink, resources=resources,
                     defects=defects, config=dict(config), line=line) for n in names]


def _expand_names(doc: YamlDoc, where: tuple, name: Any, count: Any) -> list[str]:
    """`store-[1-20]` (count optional, must agree) or `store-{i}` with count -> numbered names."""
    if not isinstance(name, str) or not name:
        raise doc.error(where + ("name",), f"expected a site name, got {name!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise doc.error(where + ("count",), f"expected a whole number >= 1, got {count!r}")
    ranges = _RANGE.findall(name)
    if len(ranges) > 1:
        raise doc.error(where + ("name",), f'"{name}": at most one [first-last] range per name')
    if ranges:
        first_text, last_text = ranges[0]
        first, last = int(first_text), int(last_text)
        if last < first:
            raise doc.error(where + ("name",), f'"{name}": range [{first_text}-{last_text}] runs backwards')
        if last - first + 1 > MAX_SITES:
            raise doc.error(where + ("name",), f'"{name}": more than {MAX_SITES} sites')
        if count is not None and count != last - first + 1:
            raise doc.error(where + ("count",), f'count {count} disagrees with "{name}", which names '
                                                f"{last - first + 1} sites (drop count or fix the range)")
        width = len(first_text) if first_text.startswith("0") else 0
        names = [_RANGE.sub(str(n).zfill(width), name, count=1) for n in range(first, last + 1)]
    elif "{i}" in name:
        if count is None:
            raise doc.error(where + ("name",), f'"{name}" has a {{i}} placeholder but no count')
        if count > MAX_SITES:
            raise doc.error(where + ("count",), f"at most {MAX_SITES} sites")
        names = [name.replace("{i}", str(n)) for n in range(1, count + 1)]
    elif count is not None:
        raise doc.error(where + ("count",), f'count needs a name pattern such as "{name}-[1-{count}]" '
                                            f'or "{name}-{{i}}"')
    else:
        names = [name]
    for n in names:
        if "[" in n or "]" in n or "{" in n:
            raise doc.error(where + ("name",), f'"{name}": bad name pattern (use store-[1-20] or store-{{i}})')
        if not SITE_NAME.match(n):
            raise doc.error(where + ("name",), f'"{n}": site names use letters, digits, ".", "_" and "-", '
                                               "start with a letter or digit, and have at most 64 characters")
        if n == CLIENTS:
            raise doc.error(where + ("name",), f'"{CLIENTS}" is reserved for the clients end of access links')
    return names


def _resolve_uplinks(doc: YamlDoc, sites: list[SiteSpec], declared: dict[str, tuple]) -> list[SiteSpec]:
    """Every edge-workload site reaches one central-workload site: its own uplink or the single central."""
    by_name = {s.name: s for s in sites}
    centrals = [s.name for s in sites if s.role == "central"]
    out = []
    for s in sites:
        if s.workload == "central":
            out.append(s)
            continue
        if s.uplink is None:
            if len(centrals) != 1:
                raise doc.error(declared[s.name], f"{s.name}: uplink: required, because the topology has "
                                                    f"{len(centrals)} central sites (the default is the single "
                                                    "central site)")
            out.append(replace(s, uplink=centrals[0]))
            continue
        where = declared[s.name] + ("uplink",)
        target = by_name.get(s.uplink)
        if target is None:
            raise doc.error(where, f'no site named "{s.uplink}"{did_you_mean(s.uplink, by_name)}')
        if target.workload != "central":
            raise doc.error(where, f'"{s.uplink}" runs the {target.workload} workload; an uplink must be a '
                                   "site that runs the central workload")
        out.append(s)
    return out


def _parse_resources(doc: YamlDoc, where: tuple, raw: Any) -> Resources:
    if raw is None:
        return Resources()
    if not isinstance(raw, dict):
        raise doc.error(where, "expected a mapping such as {cpus: 1, memory: 512 MiB}")
    _check_keys(doc, where, raw, _RESOURCE_KEYS)
    cpus = raw.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not math.isfinite(cpus)
                             or cpus <= 0):
        raise doc.error(where + ("cpus",), f"expected a number of CPUs > 0 (e.g. 1 or 0.5), got {cpus!r}")
    memory = None
    if raw.get("memory") is not None:
        memory = int(quantity(doc, where + ("memory",), raw["memory"], "size"))
        if memory <= 0:
            raise doc.error(where + ("memory",), "must be more than 0")
    return Resources(cpus=float(cpus) if cpus is not None else None, memory_bytes=memory)


def _parse_defect_list(doc: YamlDoc, where: tuple, raw: Any, workload: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise doc.error(where, f"expected a list of defect names, got {raw!r}")
    out = []
    for j, name in enumerate(raw):
        try:
            check_defect(str(name), workload)
        except ValueError as exc:
            raise doc.error(where + (j,), str(exc)) from None
        if name not in out:
            out.append(name)
    return tuple(out)


def check_defect(name: str, workload: str) -> None:
    if name not in DEFECTS:
        raise ValueError(f'unknown defect "{name}"{did_you_mean(name, DEFECTS)} (defects: {", ".join(DEFECTS)})')
    if workload == "central" and name not in CENTRAL_DEFECTS:
        raise ValueError(f'defect "{name}" breaks edge behaviour; a central site takes only '
                         f"{', '.join(CENTRAL_DEFECTS)}")


def _parse_defaults(doc: YamlDoc, where: tuple, raw: Any, prefix: str) -> LinkParams:
    if raw is None:
        return LinkParams()
    if not isinstance(raw, dict):
        raise doc.error(where, "expected a mapping")
    keys = _WAN_KEYS if prefix else _ACCESS_KEYS
    for key in raw:
        if key not in keys:
            hint = did_you_mean(str(key), keys)
            if not hint and not prefix and str(key).startswith("default_"):
                hint = f' (access takes {", ".join(keys)}; the default_ prefix belongs to wan)'
            elif not hint and prefix and f"default_{key}" in keys:
                hint = f' (did you mean "default_{key}"?)'
            raise doc.error(where + (key,), f'unknown key "{key}"{hint}')
    fields = _link_fields(doc, where, {k[len(prefix):]: v for k, v in raw.items()}, prefix)
    try:
        return LinkParams().replace(**fields)  # the relay's own rules, so a bad value fails on load
    except ValueError as exc:
        raise doc.error(where, str(exc)) from None


def _link_fields(doc: YamlDoc, where: tuple, raw: dict, prefix: str = "") -> dict[str, Any]:
    """{delay, jitter, loss, rate} (any subset) -> LinkParams field overrides."""
    out: dict[str, Any] = {}
    if "delay" in raw:
        out["delay_ms"] = quantity(doc, where + (prefix + "delay",), raw["delay"], "time") * 1e3
    if "jitter" in raw:
        out["jitter_ms"] = quantity(doc, where + (prefix + "jitter",), raw["jitter"], "time") * 1e3
    if "loss" in raw:
        out["loss"] = quantity(doc, where + (prefix + "loss",), raw["loss"], "ratio")
    if "rate" in raw:
        bps = rate(doc, where + (prefix + "rate",), raw["rate"])
        out["bandwidth_bps"] = None if bps is None else int(bps)
    return out


def _build_links(sites: list[SiteSpec], wan: LinkParams, access: LinkParams) -> list[LinkSpec]:
    links = []
    for s in sites:
        if s.uplink is not None:
            links.append(LinkSpec(f"wan:{s.name}", "wan", s.name, s.uplink, **wan.shaping()))
    for s in sites:
        links.append(LinkSpec(f"access:{s.name}", "access", s.name, None, **access.shaping()))
    return links


def _apply_constraints(doc: YamlDoc, raw: Any, sites: list[SiteSpec], links: list[LinkSpec]) -> list[LinkSpec]:
    """Per-link overrides, in file order (a later constraint wins field by field)."""
    if raw is None:
        return links
    if not isinstance(raw, list):
        raise doc.error(("constraints",), "expected a list of {src, dst, delay|jitter|loss|rate}")
    links = list(links)
    for i, c in enumerate(raw):
        where = ("constraints", i)
        if not isinstance(c, dict):
            raise doc.error(where, "expected a mapping such as {src: central, dst: store-2, delay: 50 ms}")
        _check_keys(doc, where, c, _CONSTRAINT_KEYS)
        for side in ("src", "dst"):
            if side not in c:
                raise doc.error(where, f"{side}: required (a site name, role, pattern or \"{CLIENTS}\")")
        if c.get("symmetric", True) is not True:
            raise doc.error(where + ("symmetric",), "links are symmetric here (the same parameters apply to "
                                                    "both directions); only symmetric: true is supported")
        fields = _link_fields(doc, where, c)
        if not fields:
            raise doc.error(where, "sets nothing: give at least one of delay, jitter, loss, rate")
        try:
            LinkParams().replace(**fields)  # the relay's own rules
        except ValueError as exc:
            raise doc.error(where, str(exc)) from None
        src = _select(doc, where + ("src",), c["src"], sites)
        dst = _select(doc, where + ("dst",), c["dst"], sites)
        hit = False
        for k, link in enumerate(links):
            ends: tuple[set[str | None], set[str | None]]
            if link.kind == "access":
                ends = ({CLIENTS}, {link.site})
            else:
                ends = ({link.site}, {link.peer})
            if (src & ends[0] and dst & ends[1]) or (src & ends[1] and dst & ends[0]):
                links[k] = replace(link, **fields)
                hit = True
        if not hit:
            raise doc.error(where, f"matches no link: WAN links join each edge site to its uplink, and "
                                   f'access links join "{CLIENTS}" to each site')
    return links


def _select(doc: YamlDoc, where: tuple, selector: Any, sites: list[SiteSpec]) -> set[str]:
    """A name, role, glob (store-*), range (store-[1-3]), "*", "clients", or a list of these."""
    items = selector if isinstance(selector, list) else [selector]
    out: set[str] = set()
    for j, item in enumerate(items):
        path = where + (j,) if isinstance(selector, list) else where
        if not isinstance(item, str) or not item:
            raise doc.error(path, f"expected a site name, role or pattern, got {item!r}")
        found = match_sites(item, sites)
        if item == CLIENTS:
            found = {CLIENTS}
        if not found:
            choices = [s.name for s in sites] + sorted({s.role for s in sites}) + [CLIENTS]
            raise doc.error(path, f'no site or role matches "{item}"{did_you_mean(item, choices)}')
        out |= found
    return out


def match_sites(selector: str, sites: list[SiteSpec]) -> set[str]:
    """Names of the sites a selector picks: "*", a name, a role, a glob, or a [first-last] range."""
    if selector == "*":
        return {s.name for s in sites}
    m = _RANGE.search(selector)
    if m:
        first, last = int(m[1]), int(m[2])
        width = len(m[1]) if m[1].startswith("0") else 0
        wanted = {_RANGE.sub(str(n).zfill(width), selector, count=1) for n in range(first, last + 1)}
        return {s.name for s in sites if s.name in wanted}
    globbing = any(ch in selector for ch in "*?")
    return {s.name for s in sites
            if s.name == selector or s.role == selector or (globbing and fnmatch.fnmatchcase(s.name, selector))}


# --------------------------------------------------------------------------- defects from the CLI


def apply_defects(topology: Topology, specs: list[str] | tuple[str, ...]) -> Topology:
    """Add `SITE_OR_ROLE_OR_PATTERN:DEFECT` switches (the CLI's --defect) to a topology.

    A selector naming one site must accept the defect; a role or pattern applies it only to the sites
    it makes sense for (a central site takes only slow-path), and must hit at least one. A bare
    DEFECT means `*:DEFECT`.
    """
    sites = list(topology.sites)
    for spec in specs:
        where = "--defect"
        if ":" not in spec:
            spec = f"*:{spec}"
        selector, defect = (part.strip() for part in spec.rsplit(":", 1))
        if defect not in DEFECTS:
            raise ConfigError(None, None, where, f'"{spec}": unknown defect "{defect}"'
                                                 f"{did_you_mean(defect, DEFECTS)} (defects: {', '.join(DEFECTS)})")
        chosen = match_sites(selector, sites)
        if not chosen:
            choices = [s.name for s in sites] + sorted({s.role for s in sites})
            raise ConfigError(None, None, where, f'"{spec}": no site or role matches "{selector}"'
                                                 f"{did_you_mean(selector, choices)}")
        exact = len(chosen) == 1 and selector in chosen
        applied = 0
        for k, s in enumerate(sites):
            if s.name not in chosen:
                continue
            try:
                check_defect(defect, s.workload)
            except ValueError as exc:
                if exact:
                    raise ConfigError(None, None, where, f'"{spec}": {exc}') from None
                continue
            if defect not in s.defects:
                sites[k] = replace(s, defects=s.defects + (defect,))
            applied += 1
        if not applied:
            raise ConfigError(None, None, where, f'"{spec}": no selected site can take "{defect}" '
                                                 f"(central sites take only {', '.join(CENTRAL_DEFECTS)})")
    return replace(topology, sites=sites)


# --------------------------------------------------------------------------- small helpers


def _check_keys(doc: YamlDoc, where: tuple, raw: dict, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise doc.error(where + (key,), f'unknown key "{key}"{did_you_mean(str(key), allowed)}'
                                            f" (allowed: {', '.join(allowed)})")


def _opt_str(doc: YamlDoc, where: tuple, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise doc.error(where, f"expected a string, got {value!r}")
    return value


# --------------------------------------------------------------------------- units

# What a topology accepts per dimension (the one parser is model.units.parse_quantity).
_ALLOWED = {
    "time": ("us", "µs", "ms", "s"),
    "ratio": ("%",),
    "bitrate": ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"),
    "size": ("B", "kB", "MB", "GB", "KiB", "MiB", "GiB"),
}
# EnOSlib writes rates as 10mbit / 1gbit; accept those spellings (any case) too.
_BITRATE_ALIASES = {"bit": "bit/s", "kbit": "kbit/s", "mbit": "Mbit/s", "gbit": "Gbit/s",
                    "bit/s": "bit/s", "kbit/s": "kbit/s", "mbit/s": "Mbit/s", "gbit/s": "Gbit/s"}
_EXAMPLE = {"time": '"20 ms"', "ratio": '"0.1 %" or a fraction such as 0.001',
            "bitrate": '"10 Mbit/s" (or "unlimited")', "size": '"512 MiB"'}
_LIMIT = {"time": 60.0}  # a 60 s one-way delay is certainly a typo


def quantity(doc: YamlDoc, where: tuple, value: Any, dimension: str) -> float:
    """Parse "20 ms" / "0.1 %" / "512 MiB" into base units (s, fraction, bytes); rates: `rate`.

    A bare number is accepted only where it cannot be misread: a fraction for loss, 0 for a time.
    """
    got = rate(doc, where, value) if dimension == "bitrate" else _located(doc, where, value, dimension)
    if got is None:
        raise doc.error(where, f"expected a value such as {_EXAMPLE[dimension]}, got {value!r}")
    return got


def rate(doc: YamlDoc, where: tuple, value: Any) -> float | None:
    """A bit rate ("10 Mbit/s", "10mbit") in bit/s; "unlimited" (or null) is None."""
    return _located(doc, where, value, "bitrate")


def _located(doc: YamlDoc, where: tuple, value: Any, dimension: str) -> float | None:
    try:
        return parse_quantity(value, dimension)
    except ValueError as exc:
        raise doc.error(where, str(exc)) from None


def parse_quantity(value: Any, dimension: str) -> float | None:
    if dimension == "bitrate" and (value is None or value == "unlimited"):
        return None
    base = units.parse_quantity(value, dimension, "ratio" if dimension == "ratio" else None,
                                units=_ALLOWED[dimension], example=_EXAMPLE[dimension],
                                aliases=_BITRATE_ALIASES if dimension == "bitrate" else None,
                                maximum=_LIMIT.get(dimension), name="a value")
    if dimension == "bitrate" and base <= 0:  # a link that can carry nothing is a partition, not a rate
        raise ValueError(f'{value!r}: a rate must be more than 0 (or "unlimited")')
    return base
