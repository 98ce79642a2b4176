"""Target files: the deployment under test, its sites, endpoints, hosts, fault hooks and built-in faults.

Secrets never live in a target file: credentials are `${ENV_VAR}` references resolved when a check
needs them, and `redacted()` is what reports see.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import hostspec
from .errors import ConfigError, did_you_mean
from .schema_errors import validate as schema_validate
from .boundedio import MIB, read_input
from .yamlfile import YamlDoc, load_yaml

MAX_CA_BYTES = 4 * MIB  # a CA bundle of every public root is about 0.2 MiB

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FULL_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
URL_SCHEMES = ("http", "https", "tcp", "udp", "mqtt", "mqtts")  # mqtt(s): a broker, port 1883 (8883) by default
EMULATED_PREFIX = "emulated"


@dataclass
class Hook:
    name: str
    command: str | list[str]
    timeout: float


FAULT_FILTERS = ("auto", "nft", "iptables")
DEFAULT_FAULT_MARGIN_S = 30.0
DEFAULT_FAULT_LIMIT_S = 300.0
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_SERVICE = re.compile(r"^[A-Za-z0-9@._:\\-]+$")


@dataclass
class WanGrant:
    """`faults.wan`: partition and degrade the site's WAN with a packet filter and tc on its own host."""

    peers: list[str]            # IP addresses or CIDRs as written; "uplink": the uplink site's endpoint hosts
    interface: str | None = None
    filter: str = "auto"        # auto (nft when the host has it, else iptables) | nft | iptables


@dataclass
class ProcessGrant:
    """`faults.process`: kill, pause, resume, restart (stop, start) the site's workload on its host."""

    pattern: str | None = None  # a pgrep -f pattern of its command line
    service: str | None = None  # a systemd unit
    start: str | None = None    # with pattern: the shell command that starts it (restart, start)
    stop: str | None = None     # with pattern: a command that stops it through its supervisor (the probe's keeper)
    # the probe this run deploys on the site (--deploy-probes): its keeper restarts it after a crash and
    # holds it down after a stop; engine/probes.py turns it into the probe's pattern and start
    probe: bool = False


@dataclass
class SiteFaults:
    """A site's `faults:` section: the built-in faults its owner grants (conformance/faults/onsite.py)."""

    host: str                   # the testinfra host spec they run on (one of the site's hosts)
    sudo: bool = False
    margin: float = DEFAULT_FAULT_MARGIN_S   # dead-man: a fault is undone on the site this long after its end
    limit: float = DEFAULT_FAULT_LIMIT_S     # the longest a fault whose length the check does not state lasts
    wan: WanGrant | None = None
    process: ProcessGrant | None = None

    def granted(self) -> list[str]:
        return [name for name in ("wan", "process") if getattr(self, name) is not None]


PROBE_RUNTIMES = ("ssh", "docker")  # conformance/probes/ registers each; docker and kubernetes: docs/real-targets.md
DEFAULT_PROBE_DIR = "/tmp"
_PROBE_WORD = re.compile(r"^[A-Za-z0-9_./+:@%-]+$")  # a path or an address: nothing a shell would read


@dataclass
class DockerEngine:
    """A probes section's `engine:`: the site's Docker engine reached over TCP with TLS (no ssh)."""

    url: str        # tcp://HOST:PORT
    ca_file: str    # absolute paths on the harness machine (relative ones: to the target file)
    cert_file: str
    key_file: str


@dataclass
class ProbeSpec:
    """A site's `probes:` section: how `run --deploy-probes` installs the reference workload there."""

    host: str                   # the host spec it is deployed through (one of the site's ssh:// hosts)
    address: str                # where the harness and the other sites reach it
    listen: str                 # the address it listens on at the site
    runtime: str = "ssh"
    port: int = 0               # 0: any free port (the probe's ready line says which)
    python: str = "python3"
    dir: str = DEFAULT_PROBE_DIR
    central_url: str | None = None  # edge: the central probe as this site reaches it
    defects: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    engine: DockerEngine | None = None  # docker runtime: the engine over TCP+TLS instead of the ssh host


@dataclass
class Site:
    name: str
    role: str
    endpoints: dict[str, str] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)  # name -> ENV var name
    hooks: dict[str, Hook] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    uplink: str | None = None
    ca_file: str | None = None  # CA bundle for the site's https endpoints (absolute path)
    faults: SiteFaults | None = None  # built-in faults granted on the site's own host
    probes: ProbeSpec | None = None  # the reference workload deployed here with --deploy-probes

    def endpoint(self, name: str) -> str:
        try:
            return self.endpoints[name]
        except KeyError:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise LookupError(f'site {self.name} has no endpoint "{name}"'
                              f"{did_you_mean(name, self.endpoints)} (endpoints: {known})") from None

    def credential(self, name: str) -> str:
        """Resolve a credential from the environment at the moment it is needed."""
        var = self.credentials.get(name)
        if var is None:
            raise LookupError(f'site {self.name} has no credential "{name}"')
        value = os.environ.get(var)
        if value is None:
            raise LookupError(f"environment variable {var} (credential {name} of site {self.name}) is not set")
        return value

    def matches(self, selectors: list[str]) -> bool:
        return not selectors or self.role in selectors or self.name in selectors


@dataclass
class Target:
    name: str
    sites: list[Site]
    path: str = ""
    emulation: dict[str, Any] | None = None
    # An SSH lab this harness started (topology reach: ssh): real-site access to emulated sites. Probes
    # and built-in faults are the harness's own there, once the registry confirms it (faults_for, engine/probes.py)
    lab: dict[str, Any] | None = None
    inventory: str | None = None  # the Ansible inventory it was built from (engine/inventory.py)
    probes_deployed: list[str] = field(default_factory=list)  # sites whose probe this run deployed (engine/probes.py)

    @property
    def kind(self) -> str:
        return "emulated" if self.emulation or self.lab else "real"

    def site(self, name: str) -> Site:
        for s in self.sites:
            if s.name == name:
                return s
        raise LookupError(f'no site "{name}"{did_you_mean(name, [s.name for s in self.sites])}')

    def allowed_hosts(self) -> set[str]:
        """Hosts that measurement traffic may go to: the declared endpoints' hosts and loopback."""
        hosts = {"127.0.0.1", "::1", "localhost"}
        for s in self.sites:
            for url in s.endpoints.values():
                host = urlsplit(url).hostname
                if host:
                    hosts.add(host)
        return hosts

    def redacted(self) -> dict:
        """The target as reports may show it: no secret can be in it (credentials are references)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "path": self.path, "sites": []}
        if self.inventory:
            out["inventory"] = self.inventory
        if self.probes_deployed:
            out["probes_deployed"] = list(self.probes_deployed)
        if self.emulation:
            out["topology"] = self.emulation.get("topology")
            out["emulation"] = {k: self.emulation.get(k) for k in ("run_id", "backend", "topology")}
        if self.lab:
            out["topology"] = self.lab.get("topology")
            out["lab"] = {k: self.lab.get(k) for k in ("run_id", "backend", "topology")}
        for s in self.sites:
            out["sites"].append({
                "name": s.name, "role": s.role, "uplink": s.uplink,
                "endpoints": {k: _strip_userinfo(v) for k, v in s.endpoints.items()},
                "hosts": [_strip_userinfo(h) for h in s.hosts],
                "credentials": {k: "${" + v + "}" for k, v in s.credentials.items()},
                "hooks": sorted(s.hooks),
                **({"faults": s.faults.granted()} if s.faults else {}),
            })
        return out


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def check_site_selectors(target: Target, selectors: list[str], option: str) -> None:
    """A --site that names no site and no role would silently check nothing: refuse it."""
    known = list(dict.fromkeys([s.name for s in target.sites] + sorted({s.role for s in target.sites})))
    for sel in selectors:
        if sel not in known:
            raise ConfigError(None, None, option, f'no site or role "{sel}" in target {target.name}'
                                                  f"{did_you_mean(sel, known)} (sites and roles: {', '.join(known)})")


def is_emulated_ref(ref: str) -> bool:
    return ref == EMULATED_PREFIX or ref.startswith(EMULATED_PREFIX + ":")


def load_target(path: str | Path) -> Target:
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(doc.source, doc.line(()) or 1, None, "a target must be a YAML mapping with name and sites")
    schema_validate(doc, "target.schema.json")
    return _build(doc)


def _build(doc: YamlDoc) -> Target:
    from .profile import parse_duration

    data = doc.data
    sites: list[Site] = []
    seen: dict[str, int] = {}
    if (data.get("probes") or {}).get("central_url") is not None:
        raise doc.error(("probes", "central_url"), "central_url is per edge site (how that site reaches its central "
                                                   "probe), not a default")
    for i, raw in enumerate(data["sites"]):
        where = ("sites", i)
        name = raw["name"]
        if name in seen:
            raise doc.error(where + ("name",), f'duplicate site name "{name}"')
        seen[name] = i
        for ep, url in (raw.get("endpoints") or {}).items():
            _check_url(doc, where + ("endpoints", ep), url)
        if raw.get("hosts"):  # one spec string each from here on (model/hostspec.py)
            raw["hosts"] = [_check_host(doc, where + ("hosts", j), host) for j, host in enumerate(raw["hosts"])]
        creds = {}
        for cname, ref in (raw.get("credentials") or {}).items():
            m = _FULL_ENV_REF.match(ref.strip())
            if not m:
                raise doc.error(where + ("credentials", cname),
                                "credentials must be ${ENV_VAR} references, never literal secrets")
            creds[cname] = m[1]
        hooks = {}
        for hname, h in (raw.get("hooks") or {}).items():
            try:
                timeout = parse_duration(h.get("timeout", 60))
            except ValueError as exc:
                raise doc.error(where + ("hooks", hname, "timeout"), str(exc)) from None
            if timeout <= 0:
                raise doc.error(where + ("hooks", hname, "timeout"), "a hook timeout must be positive")
            _check_hook_command(doc, where + ("hooks", hname, "command"), h["command"])
            hooks[hname] = Hook(hname, h["command"], timeout)
        faults = _site_faults(doc, where + ("faults",), raw) if raw.get("faults") is not None else None
        probes = (_site_probes(doc, where + ("probes",), raw, dict(data.get("probes") or {}))
                  if raw.get("probes") is not None else None)
        sites.append(Site(name=name, role=raw["role"], endpoints=dict(raw.get("endpoints") or {}),
                          hosts=list(raw.get("hosts") or []), credentials=creds, hooks=hooks,
                          labels=dict(raw.get("labels") or {}), uplink=raw.get("uplink"),
                          ca_file=_ca_file(doc, where + ("ca_file",), raw.get("ca_file")), faults=faults,
                          probes=probes))
    for i, s in enumerate(sites):
        if s.uplink is not None and s.uplink not in seen:
            raise doc.error(("sites", i, "uplink"),
                            f'no site named "{s.uplink}"{did_you_mean(s.uplink, seen)}')
    _wire_probes(doc, sites)
    for i, s in enumerate(sites):
        if s.faults and s.faults.process and s.faults.process.probe and s.probes and s.probes.runtime != "ssh":
            raise doc.error(("sites", i, "faults", "process", "probe"),
                            f"the {s.probes.runtime} probe runtime has no keeper to stop and start the probe: "
                            "use runtime ssh, or a pattern grant")
    return Target(name=data["name"], sites=sites, path=doc.source, emulation=data.get("emulation"),
                  lab=data.get("lab"))


def _site_probes(doc: YamlDoc, path: tuple, raw: dict, defaults: dict) -> ProbeSpec:
    """A site's `probes:` over the file's top-level `probes:` defaults (the schema checked both shapes):
    the host, addresses, interpreter, options. An error is located where the value was written."""
    from edge_workloads.defects import UnknownDefect, parse_defects
    from edge_workloads.settings import Settings, SettingsError

    own = raw["probes"]
    p = {**defaults, **own}

    def at(key: str) -> tuple:
        return path + (key,) if key in own or key not in defaults else ("probes", key)

    runtime = p.get("runtime", "ssh")
    engine = _docker_engine(doc, at("engine"), p["engine"], runtime) if p.get("engine") is not None else None
    hosts = list(raw.get("hosts") or [])
    host = ""
    if engine is None:  # installed through one of the site's ssh hosts
        if not hosts:
            raise doc.error(path, "a probe is installed through one of the site's hosts: give the site "
                                  "hosts: [ssh://user@host], or a docker probe an engine: (docs/real-targets.md, "
                                  "Probes)")
        chosen = p.get("host")
        found = next((h for h in hosts if chosen is None or chosen in h), None)
        if found is None:
            raise doc.error(at("host"), f'"{chosen}" is not part of any of the site\'s hosts'
                                        f"{did_you_mean(str(chosen), hosts)} (hosts: {', '.join(hosts)})")
        host = found
        scheme = host.split("://", 1)[0]
        if scheme not in ("ssh", "safe-ssh"):
            raise doc.error(at("host"), f"probes are installed through an ssh:// host, not {scheme}://")
    if runtime == "docker" and not p.get("port"):
        raise doc.error(at("port") if "port" in p else path, "a docker probe publishes a port of the site's "
                                                             "host: give port (1-65535)")
    address = p.get("address") or urlsplit(engine.url if engine else host.split("?", 1)[0]).hostname or ""
    for key, value in (("address", address), ("listen", p.get("listen")), ("python", p.get("python")),
                       ("dir", p.get("dir"))):
        if value is not None and not _PROBE_WORD.match(value):
            what = "path" if key in ("python", "dir") else "address"
            raise doc.error(at(key), f'"{value}" is not a plain {what} (letters, digits and ./_+:@%-)')
    directory = p.get("dir", DEFAULT_PROBE_DIR)
    if not directory.startswith("/"):
        raise doc.error(at("dir"), f'"{directory}" is not an absolute path')
    central_url = p.get("central_url")
    if central_url is not None:
        if raw["role"] == "central":
            raise doc.error(at("central_url"), "central_url is an edge probe's (how it reaches central)")
        if not re.fullmatch(r"http://[^/\s]+(/\S*)?", central_url):
            raise doc.error(at("central_url"), f'"{central_url}" is not http://HOST:PORT')
    try:
        defects = sorted(parse_defects(",".join(p.get("defects") or [])))
    except UnknownDefect as exc:
        raise doc.error(at("defects"), str(exc)) from None
    try:
        Settings(dict(p.get("config") or {}))
    except SettingsError as exc:
        raise doc.error(at("config"), str(exc)) from None
    return ProbeSpec(host=host, address=address, listen=p.get("listen") or address,
                     runtime=runtime, port=int(p.get("port", 0)), python=p.get("python", "python3"),
                     dir=directory.rstrip("/") or "/", central_url=central_url, defects=defects,
                     config=dict(p.get("config") or {}), engine=engine)


def _docker_engine(doc: YamlDoc, path: tuple, e: dict, runtime: str) -> DockerEngine:
    """`engine: {url: tcp://HOST:PORT, ca_file, cert_file, key_file}`: TLS both ways, never plain TCP."""
    if runtime != "docker":
        raise doc.error(path, "an engine goes with runtime: docker")
    url = str(e.get("url") or "")
    if not re.fullmatch(r"tcp://[A-Za-z0-9.:\[\]_-]+:\d{1,5}", url):
        raise doc.error(path + ("url",), f'"{url}" is not tcp://HOST:PORT (a Docker engine over TCP with TLS)')
    missing = [k for k in ("ca_file", "cert_file", "key_file") if not e.get(k)]
    if missing:
        raise doc.error(path, f"an engine over TCP is reached with TLS only (both ways): give {', '.join(missing)}")
    files = {k: _pem_file(doc, path + (k,), str(e[k])) for k in ("ca_file", "cert_file", "key_file")}
    return DockerEngine(url=url, **files)


def _beside_target(doc: YamlDoc, value: str) -> Path:
    """A path as written in the target file: `~` expanded, a relative one relative to the file's directory."""
    file = Path(os.path.expanduser(value))
    if file.is_absolute():
        return file
    base = Path(doc.source).parent if doc.source and not str(doc.source).startswith("<") else Path.cwd()
    return base / file


def _pem_file(doc: YamlDoc, path: tuple, value: str) -> str:
    """A PEM file's absolute path (relative: to the target file's directory); it must exist."""
    file = _beside_target(doc, value)
    if not file.is_file():
        raise doc.error(path, f"{file}: No such file")
    return str(file.resolve())


def _wire_probes(doc: YamlDoc, sites: list[Site]) -> None:
    """An edge probe reaches the central probe of its uplink; without an uplink, the one central probe."""
    centrals = [s.name for s in sites if s.probes and s.role == "central"]
    for i, s in enumerate(sites):
        if s.probes is None or s.role == "central":
            continue
        if s.uplink is None:
            if len(centrals) != 1:
                raise doc.error(("sites", i, "probes"), "an edge probe needs a central probe to report to: give the "
                                f"site an uplink (central probes: {', '.join(centrals) or 'none'})")
            s.uplink = centrals[0]
        elif s.uplink not in centrals:
            raise doc.error(("sites", i, "uplink"), f'"{s.uplink}" has no central probe (probes:) for this '
                                                    "site's probe to report to")


def _site_faults(doc: YamlDoc, path: tuple, raw: dict) -> SiteFaults:
    """A site's `faults:` (the schema checked the shape): the host they run on, durations, grants."""
    from .profile import parse_duration

    f = raw["faults"]
    hosts = list(raw.get("hosts") or [])
    if not hosts:
        raise doc.error(path, "built-in faults run on one of the site's hosts: give the site "
                              "hosts: [ssh://...] (a testinfra host spec)")
    chosen = f.get("host")  # like a host check's `host` param: part of one of the site's host specs
    host = next((h for h in hosts if chosen is None or chosen in h), None)
    if host is None:
        raise doc.error(path + ("host",), f'"{chosen}" is not part of any of the site\'s hosts'
                                          f"{did_you_mean(chosen, hosts)} (hosts: {', '.join(hosts)})")
    times = {}
    for key, default in (("margin", DEFAULT_FAULT_MARGIN_S), ("limit", DEFAULT_FAULT_LIMIT_S)):
        try:
            times[key] = parse_duration(f[key]) if key in f else default
        except ValueError as exc:
            raise doc.error(path + (key,), str(exc)) from None
        if times[key] <= 0:
            raise doc.error(path + (key,), f"{key} must be positive")
    if not f.get("wan") and not f.get("process"):
        raise doc.error(path, "grants nothing: give it wan: {peer: ...} and/or process: {pattern: ...} "
                              "or process: {service: ...}")
    wan = None
    if f.get("wan"):
        w = f["wan"]
        peers = w["peer"] if isinstance(w["peer"], list) else [w["peer"]]
        for j, peer in enumerate(peers):
            where = path + ("wan", "peer") + ((j,) if isinstance(w["peer"], list) else ())
            if peer == "uplink":
                if not raw.get("uplink"):
                    raise doc.error(where, 'peer "uplink" needs the site\'s `uplink` (the site its WAN reaches)')
                continue
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise doc.error(where, f'"{peer}" is not an IP address or CIDR (or "uplink": the hosts of '
                                       "the uplink site's endpoints)") from None
        interface = w.get("interface")
        if interface is not None and not _INTERFACE.match(interface):
            raise doc.error(path + ("wan", "interface"), f'"{interface}" is not a network interface name')
        wan = WanGrant(peers=list(peers), interface=interface, filter=w.get("filter", "auto"))
    process = None
    if f.get("process"):
        p = f["process"]
        where = path + ("process",)
        if sum(bool(p.get(k)) for k in ("pattern", "service", "probe")) != 1:
            raise doc.error(where, "give exactly one of pattern (a pgrep -f pattern of the workload's command "
                                   "line), service (its systemd unit) and probe: true (the probe --deploy-probes "
                                   "puts there)")
        if p.get("probe") is not None and p.get("probe") is not True:
            raise doc.error(where + ("probe",), "probe: true, or leave it out")
        if p.get("probe") and raw.get("probes") is None:
            raise doc.error(where + ("probe",), "the site has no probes: section, so no probe of this run "
                                                "runs there (add probes: {} to the site)")
        if p.get("probe") and p.get("start") is not None:
            raise doc.error(where + ("start",), "the probe's keeper starts it; start goes with pattern")
        if p.get("service") and not _SERVICE.match(p["service"]):
            raise doc.error(where + ("service",), f'"{p["service"]}" is not a systemd unit name')
        if p.get("pattern"):
            try:
                re.compile(p["pattern"])
            except re.error as exc:
                raise doc.error(where + ("pattern",), f"not a regular expression: {exc}") from None
            if "\n" in p["pattern"]:
                raise doc.error(where + ("pattern",), "a pattern is one line")
        if p.get("start") is not None:
            if p.get("service"):
                raise doc.error(where + ("start",), "start goes with pattern; a service is started by systemd")
            _check_hook_command(doc, where + ("start",), p["start"])
        process = ProcessGrant(pattern=p.get("pattern"), service=p.get("service"), start=p.get("start"),
                               probe=bool(p.get("probe")))
    return SiteFaults(host=host, sudo=bool(f.get("sudo", False)), margin=times["margin"], limit=times["limit"],
                      wan=wan, process=process)


# Query parameters that carry a secret (?token=..., &api_key=...): refused like a password in a URL,
# since endpoints are written to every report and bundle as they are.
_SECRET_PARAM = re.compile(r"(^|[_-])(token|secret|password|passwd|pwd|key|apikey|sig|signature|auth|"
                           r"authorization|credential|credentials|session)$", re.IGNORECASE)


def _check_url(doc: YamlDoc, path: tuple, url: str) -> None:
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as exc:  # not echoed: a malformed URL may still hold a password
        raise doc.error(path, f"not a valid URL ({exc})") from None
    if parts.password:  # first, so that no later message repeats the password
        raise doc.error(path, "no passwords in URLs: use credentials with ${ENV_VAR} references")
    secret = next((name for name, value in query if value and _SECRET_PARAM.search(name)), None)
    if secret is not None:
        raise doc.error(path, f'no secrets in URLs (query parameter "{secret}"): use credentials with '
                              "${ENV_VAR} references")
    if parts.scheme not in URL_SCHEMES:
        raise doc.error(path, f'"{url}" is not a URL with one of the schemes {", ".join(URL_SCHEMES)}')
    if not parts.hostname:
        raise doc.error(path, f'"{url}" has no host')
    try:
        port = parts.port  # urlsplit parses the port lazily: reading it raises on a bad one
    except ValueError:
        raise doc.error(path, f'"{url}" has an invalid port') from None
    if parts.scheme in ("tcp", "udp") and port is None:
        raise doc.error(path, f'"{url}" needs a port')


# Literal secrets in a hook command: hook commands are shown in notes, logs and error messages as
# written, so a secret must be a ${ENV_VAR} reference there, as in credentials. The rule is simple on
# purpose (docs/resilience.md, "Hooks in a target file"): a value given to one of these is refused
# unless it starts with `$` (${VAR}, $VAR, $(command)), a backquote, `{` (a placeholder), `%` (a
# printf format: printf 'Bearer %s' "${T}" | curl -H @-), `-` (the next option, or stdin) or `@`/`<`
# (a file):
#   an Authorization or Proxy-Authorization header, or a header named ...-Token, ...-Api-Key, ...-Secret
#   an option named --password, --passwd, --pass, --token, --secret, --api-key, --apikey or ending so
#     (--auth-token, --client-secret; --token-file and --password-stdin name no value)
#   NAME=VALUE where NAME ends in password, passwd, token, secret, apikey, api_key or api-key, or is
#     pwd or pass (a query string ?token=..., an assignment PGPASSWORD=...)
#   -u/--user USER:PASSWORD (curl's basic auth), and a password in a URL (https://user:PASSWORD@host)
_VALUE = r"""['"]?(?P<v>[^\s'"&;#]*)"""
_LITERAL_SECRETS = (
    (re.compile(r"(?i)(?<![\w-])(?P<what>(?:proxy-)?authorization|[\w-]*-(?:token|api-?key|secret))\s*:\s*"
                r"(?:(?:bearer|basic|token|digest|apikey)\s+)?" + _VALUE), "{what} header"),
    (re.compile(r"(?i)(?<![\w-])(?P<what>--(?!no-)(?:[a-z0-9]+[-_])*(?:password|passwd|pass|token|secret|"
                r"api-?key|apikey))(?:=|\s+)" + _VALUE), "{what}"),
    (re.compile(r"(?i)(?<![\w$-])(?P<what>(?:[a-z_][\w-]*?)?(?:password|passwd|token|secret|apikey|api[_-]key)"
                r"|pwd|pass)=" + _VALUE), "{what}="),
    (re.compile(r"(?<![\w-])(?P<what>-u|--user)(?:=|\s+)['\"]?[^\s:'\"]*:" + _VALUE), "{what} USER:PASSWORD"),
    (re.compile(r"(?P<what>://)[^\s/:@'\"]*:(?P<v>[^\s/@'\"]+)@"), "a password in a URL"),
)
_NOT_LITERAL = tuple("$`{%-@<")
_AUTH_SCHEMES = {"bearer", "basic", "token", "digest", "apikey"}


def _literal_secret(text: str) -> tuple[str, int] | None:
    """(what it is, where its value starts) of the first literal secret in a command's text, or None."""
    found = []
    for pattern, what in _LITERAL_SECRETS:
        for m in pattern.finditer(text):
            value = m["v"]
            if value and not value.startswith(_NOT_LITERAL) and value.lower() not in _AUTH_SCHEMES:
                found.append((m.start("v"), what.format(what=m["what"])))
                break
    if not found:
        return None
    start, what = min(found)
    return what, start


def list_reference_message(var: str) -> str:
    """Why a list hook command may not hold ${VAR} (load and run say the same)."""
    return (f"${{{var}}} in a list command would be put in the program's arguments, which any local user "
            f"can read (ps): have the program read {var} from its environment (hooks run with it set), "
            "or write the command as a string, for the shell to expand")


def _check_hook_command(doc: YamlDoc, path: tuple, command: str | list[str]) -> None:
    """Refuse a literal secret in a hook command, and a ${VAR} in a list command (no shell expands it:
    it would have to be put in the program's argv, which every local user can read with ps). Never
    echoes a value."""
    if isinstance(command, list):
        for j, arg in enumerate(command):
            m = ENV_REF.search(str(arg))
            if m:
                raise doc.error(path + (j,), list_reference_message(m[1]))
        args = [str(a) for a in command]
        text = " ".join(args)
    else:
        args, text = [command], command
    hit = _literal_secret(text)
    if hit is None:
        return
    what, start = hit
    if isinstance(command, list):  # the element the value is in
        offset = 0
        for j, arg in enumerate(args):
            if start < offset + len(arg) + 1:
                path = path + (j,)
                break
            offset += len(arg) + 1
    raise doc.error(path, f"a literal secret in a hook command ({what}): put it in an environment variable "
                          "and write ${ENV_VAR} in its place, as for credentials")


def _ca_file(doc: YamlDoc, path: tuple, value: str | None) -> str | None:
    """A PEM CA bundle; a relative path is relative to the target file's directory."""
    if value is None:
        return None
    if not value.strip():
        raise doc.error(path, "expected the path of a PEM CA bundle, got an empty string")
    file = _beside_target(doc, value)
    if not file.exists():
        raise doc.error(path, f"{file}: No such file or directory")
    try:  # bounded, regular files only: a FIFO or /dev/zero here must not hang the run
        head = read_input(file, str(file), limit=MAX_CA_BYTES, what="PEM CA bundle")
    except ConfigError as exc:
        raise doc.error(path, f"{file} {exc.message}") from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise doc.error(path, f"{file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return str(file.resolve())


def _check_host(doc: YamlDoc, path: tuple, spec: str | dict) -> str:
    """A host as one checked spec string: testinfra's backends, no password, an ssh host's options
    (a mapping form written into the query; literal paths made absolute) (model/hostspec.py)."""
    base = Path(doc.source).parent if doc.source and not str(doc.source).startswith("<") else None
    return hostspec.normalize(spec, path, doc.error, base)


def expand_env(text: str) -> str:
    """Expand ${ENV_VAR} references at the moment a value is used (secrets stay out of files)."""

    def sub(m: re.Match) -> str:
        value = os.environ.get(m[1])
        if value is None:
            raise LookupError(f"environment variable {m[1]} is not set")
        return value

    return ENV_REF.sub(sub, text)
