"""Which of a host's processes, paths and hosts are the site's.

The scope of "the site's processes": the emulated site's process tree (labels.pid, children included,
since emulated sites share one machine), the workload command of an emulated docker site's container,
processes matching a `process` pattern (the requirement's param, else the site's labels.process: a probe
this run deployed, or what a target file names), or the whole host (or container).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...model.errors import NotMeasured
from .edgehost import DEFAULT_TIMEOUT, EdgeHost
from .processes import Proc, Processes, descendants, local_tree


def site_hosts(site: Any, params: dict) -> list[EdgeHost]:
    """EdgeHosts for the site's hosts (only those whose spec contains params['host'] when given).

    None of them: NotMeasured with what to add, never not-applicable (every site runs on some host;
    the target file does not say which)."""
    timeout = params.get("host_timeout") or DEFAULT_TIMEOUT
    chosen = params.get("host")
    specs = [h for h in (site.hosts or []) if not chosen or str(chosen) in h]
    if not specs:
        raise NotMeasured(*no_hosts(site, params))
    return [EdgeHost(spec, timeout) for spec in specs]


def no_hosts(site: Any, params: dict) -> tuple[str, str]:
    """(reason, remedy) for a host check on a site none of whose hosts it can use."""
    if not site.hosts:
        return ("site has no hosts",
                f"give site {site.name} a testinfra host in the target file (hosts: [ssh://...])")
    chosen = params.get("host")
    return (f"none of the site's hosts matches host={chosen!r}",
            f"set the requirement's `host` param to part of one of site {site.name}'s hosts "
            f"({', '.join(site.hosts)}), or add a host matching {chosen!r} to the site in the target file")


def host_label(hosts: list[EdgeHost], host: EdgeHost) -> str:
    """How a note names the host it is about: only when the site has more than one."""
    return f"{host.name}: " if len(hosts) > 1 else ""


@dataclass
class Scope:
    """Which processes of a host a check looks at."""

    kind: str  # "tree" (the emulated site's process tree) | "workload" (a container's command) | "pattern" | "host"
    text: str  # how the notes describe it
    root: int | None = None
    pattern: str | None = None

    def select(self, procs: list[Proc]) -> list[Proc]:
        if self.kind == "host":
            return list(procs)
        if self.kind == "tree":
            root = self.root
            keep = descendants(procs, [root]) if root is not None and any(p.pid == root for p in procs) else set()
        elif self.kind == "workload":
            # The container's own processes hang below its PID 1 (`docker exec` ones, such as our
            # `ps`, have ppid 0); the workload is the one running the container's command.
            mine = descendants(procs, [1]) if any(p.pid == 1 for p in procs) else set()
            want = (self.pattern or "").split()
            keep = descendants(procs, [p.pid for p in procs if p.pid in mine and p.cmdline.split() == want])
        else:
            keep = descendants(procs, [p.pid for p in procs if matches(self.pattern or "", p)])
        return [p for p in procs if p.pid in keep]


def matches(pattern: str, proc: Proc) -> bool:
    """A process matches by exact name or by a regular expression searched in its command line."""
    if proc.name == pattern:
        return True
    try:
        return re.search(pattern, proc.cmdline) is not None
    except re.error:
        return pattern in proc.cmdline


def labels_apply(site: Any, host: EdgeHost) -> bool:
    """labels.process and labels.data_dir of a deployed probe describe its host only (labels.probe_host);
    a target file's own labels describe every host of the site."""
    probe_host = (site.labels or {}).get("probe_host")
    return not probe_host or probe_host == host.spec


def site_pid(site: Any) -> int | None:
    raw = (site.labels or {}).get("pid")
    try:
        return int(raw) if raw not in (None, "", False) else None
    except (TypeError, ValueError):
        return None


def resolve_site_root(site: Any, procs: list[Proc]) -> tuple[int | None, str | None]:
    """The emulated site's current root pid, and a note when it is not labels.pid any more.

    labels.pid is written when the target file is; a fault test may have restarted the site since.
    The site's data dir (labels.data_dir) is on its command line, so a restarted site is found by it,
    and a recycled pid that is not the site is not mistaken for it.
    """
    pid = site_pid(site)
    data_dir = str((site.labels or {}).get("data_dir") or "")
    by_pid = next((p for p in procs if p.pid == pid), None)
    if by_pid is not None and (not data_dir or data_dir in by_pid.cmdline):
        return pid, None
    if data_dir:
        owners = [p for p in procs if data_dir in p.cmdline]
        roots = [p for p in owners if p.ppid not in {o.pid for o in owners}]
        if len(roots) == 1:
            return roots[0].pid, (f"labels.pid {pid} is not the site any more; using pid {roots[0].pid}, "
                                  f"the process serving {data_dir}")
    return None, (f"the site's process (labels.pid {pid}) is not running" if pid else None)


def scope_for(site: Any, params: dict, host: EdgeHost, *, require_site: bool = False) -> Scope:
    """The processes a check looks at on `host`.

    * `process` param, else labels.process: processes matching it (name or command-line regex), children
      included;
    * an emulated local site (labels.pid on a local:// host): the site's process tree;
    * a docker:// host: the container is the site, so the whole container;
    * otherwise the whole host (or, with require_site, NotMeasured: the site's processes are unknown).
    """
    pattern = params.get("process")
    if pattern:
        return Scope("pattern", f"processes matching {pattern!r}", pattern=str(pattern))
    labelled = (site.labels or {}).get("process") if labels_apply(site, host) else None
    if labelled:
        return Scope("pattern", f"the site's processes (labels.process {labelled!r})", pattern=str(labelled))
    if host.is_local and site_pid(site) is not None:
        return Scope("tree", f"site process tree (pid {site_pid(site)})", root=site_pid(site))
    if host.container:
        return Scope("host", f"container {host.container}")
    if require_site:
        raise NotMeasured(f"which processes are the site's on {host.name} is unknown",
                          "give the requirement a `process` param (a name or command-line pattern of the "
                          "site's processes)")
    return Scope("host", f"whole host {host.name}")


def site_processes(site: Any, host: EdgeHost, scope: Scope) -> tuple[list[Proc], list[str]]:
    """The processes of `scope` on `host`, and notes (a restarted emulated site is followed)."""
    if scope.kind == "tree" and scope.root is not None and host.uses_psutil:
        tree = local_tree(scope.root)
        data_dir = str((site.labels or {}).get("data_dir") or "")
        if tree and (not data_dir or data_dir in tree[0].cmdline):  # still the site: its tree is enough
            return tree, []
    procs = Processes.of(host).snapshot()
    notes: list[str] = []
    if scope.kind == "tree":
        root, note = resolve_site_root(site, procs)
        if note:
            notes.append(note)
        if root is None:
            return [], notes
        if root != scope.root:
            scope.root = root
            scope.text = f"site process tree (pid {root})"
    return scope.select(procs), notes


# ---------------------------------------------------------------------------------------------
# docker:// hosts of emulated sites (docker backend: the whole container is the site)


def is_site_container(site: Any, host: EdgeHost) -> bool:
    """`host` is the docker:// host of the site's own container (labels.container, docker backend)."""
    return bool(host.container) and (site.labels or {}).get("container") == host.container


def site_data_dir(site: Any, host: EdgeHost) -> str | None:
    """labels.data_dir where `host` sees it, or None.

    Local backend: a path on this machine (local:// hosts). Docker backend: a path inside the site's
    container (/data), read through its docker:// host; on any other host it means nothing. A real site
    (no labels.pid, no labels.container): a path on its hosts (a deployed probe's data dir, or what the
    target file says).
    """
    labels = site.labels or {}
    data_dir = labels.get("data_dir")
    if not data_dir or not labels_apply(site, host):
        return None
    if labels.get("container"):
        return str(data_dir) if is_site_container(site, host) else None
    if host.is_local or site_pid(site) is None:
        return str(data_dir)
    return None


def workload_scope(site: Any, host: EdgeHost) -> Scope | None:
    """On the docker:// host of an emulated docker site: the container's workload process (the
    command in labels.command, below the container's PID 1) and its children; else None."""
    command = str((site.labels or {}).get("command") or "").strip()
    if not command or not is_site_container(site, host):
        return None
    return Scope("workload", f"workload `{command}` of container {host.container}", pattern=command)
