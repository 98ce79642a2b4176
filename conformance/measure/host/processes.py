"""A host's process table: pid, ppid, name, command line, RSS and CPU seconds; the whole host's CPU time
and memory in use.

`Processes.of(host)` chooses how the host is read, once: psutil for local:// (LocalProcesses), procps
`ps` (PsProcesses), or /proc read by the shell alone (ProcProcesses, the smallest container with /bin/sh
and /proc). The command variants leave out the shells this harness runs on the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from collections.abc import Iterable

from .edgehost import EdgeHost, HostLacks


@dataclass
class Proc:
    pid: int
    ppid: int
    name: str
    cmdline: str
    rss: int | None = None  # bytes
    cpu: float | None = None  # seconds of CPU (user + system) used so far

    def describe(self) -> str:
        return f"{self.name} pid {self.pid}"


def descendants(procs: list[Proc], roots: Iterable[int]) -> set[int]:
    """roots and every process below them (by ppid)."""
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    out: set[int] = set()
    stack = [r for r in roots]
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out.add(pid)
        stack.extend(children.get(pid, ()))
    return out


class Processes:
    """The process table of one host (see the module's docstring for the variants)."""

    def __init__(self, host: EdgeHost):
        self.host = host

    @staticmethod
    def of(host: EdgeHost) -> Processes:
        if host.uses_psutil:
            return LocalProcesses(host)
        if host.facts.has("ps") and host.facts.procps:
            return PsProcesses(host)
        return ProcProcesses(host)

    def snapshot(self) -> list[Proc]:
        """Every process of the host with pid, ppid, name, command line, RSS and CPU seconds."""
        raise NotImplementedError

    def cpu_seconds(self, pids: Iterable[int]) -> dict[int, float]:
        """CPU seconds (user + system) used so far by each of `pids` still alive."""
        pids = list(pids)
        if not pids:
            return {}
        facts = self.host.facts
        if not facts.proc:
            raise HostLacks(f"host {self.host.name} lacks /proc: cannot read CPU times of processes")
        files = " ".join(f"/proc/{int(p)}/stat" for p in pids)
        out = self.host.run(f"for f in {files}; do cat $f 2>/dev/null; echo; done", what="read CPU times")
        result = {}
        for line in out.stdout.splitlines():
            proc = parse_proc_stat(line, facts.page_size, facts.clk_tck)
            if proc is not None and proc.cpu is not None:
                result[proc.pid] = proc.cpu
        return result

    def threads(self, pids: Iterable[int]) -> int | None:
        """Threads of `pids` together, or None where they are not visible (command variants)."""
        return None

    def busy_cpu_seconds(self) -> float:
        """Busy CPU seconds of the whole host (all cores) since boot, from /proc/stat."""
        if not self.host.facts.proc:
            raise HostLacks(f"host {self.host.name} lacks /proc: cannot read the host's CPU time")
        out = self.host.run("head -n 1 /proc/stat 2>/dev/null || cat /proc/stat", what="read /proc/stat")
        fields = out.stdout.split()
        if not fields or fields[0] != "cpu":
            raise HostLacks(f"host {self.host.name}: /proc/stat is unreadable")
        values = [int(v) for v in fields[1:] if v.isdigit()]
        busy = sum(values[:8]) - values[3] - (values[4] if len(values) > 4 else 0)
        return busy / float(self.host.facts.clk_tck or 100)

    def memory_used(self) -> int:
        """Bytes of memory in use on the whole host (MemTotal - MemAvailable)."""
        out = self.host.run("cat /proc/meminfo", what="read /proc/meminfo")
        info = {}
        for line in out.stdout.splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                info[key.strip()] = int(parts[0]) * 1024
        if "MemTotal" not in info:
            raise HostLacks(f"host {self.host.name} lacks /proc/meminfo: cannot read memory use")
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
        return info["MemTotal"] - available

    def _drop_own(self, procs: list[Proc]) -> list[Proc]:
        """Remove the shells and commands this harness is running on the host right now."""
        own = {p.pid for p in procs if self.host.marker in p.cmdline}
        return [p for p in procs if p.pid not in descendants(procs, own)]


class PsProcesses(Processes):
    def snapshot(self) -> list[Proc]:
        # comm may contain spaces, so names and command lines come from two listings.
        out = self.host.run("ps -e -o pid=,comm= && echo __args__ && ps -e -ww -o pid=,ppid=,rss=,args=",
                            what="list processes")
        if out.rc != 0 or "__args__" not in out.stdout:
            raise HostLacks(f"host {self.host.name}: `ps` failed: {out.stderr.strip()[:200]}")
        return self._drop_own(parse_ps(out.stdout))


class ProcProcesses(Processes):
    def snapshot(self) -> list[Proc]:
        host, facts = self.host, self.host.facts
        if not facts.proc:
            raise HostLacks(f"host {host.name} lacks /proc and procps `ps`"
                            f"{' (its ps is BusyBox)' if facts.busybox('ps') else ''}: cannot list processes")
        # Only the shell and `cat`/`tr`: works in the smallest container with /bin/sh and /proc.
        script = ("for d in /proc/[0-9]*; do s=$(cat $d/stat 2>/dev/null) || continue; "
                  "c=$(tr '\\000' ' ' < $d/cmdline 2>/dev/null); printf '%s\\t%s\\n' \"$s\" \"$c\"; done")
        if not facts.has("tr"):
            script = ("for d in /proc/[0-9]*; do s=$(cat $d/stat 2>/dev/null) || continue; "
                      "printf '%s\\t\\n' \"$s\"; done")
        out = host.run(script, timeout=max(host.timeout, 10.0), what="list processes from /proc")
        procs = [p for p in (parse_proc_stat(line, facts.page_size, facts.clk_tck)
                             for line in out.stdout.splitlines()) if p]
        if not procs:
            raise HostLacks(f"host {host.name}: /proc lists no processes: {out.stderr.strip()[:200]}")
        return self._drop_own(procs)


class LocalProcesses(Processes):
    """This machine, through psutil."""

    def snapshot(self) -> list[Proc]:
        return local_processes()

    def cpu_seconds(self, pids: Iterable[int]) -> dict[int, float]:
        import psutil

        out = {}
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                out[pid] = t.user + t.system
            except psutil.Error:
                continue
        return out

    def threads(self, pids: Iterable[int]) -> int | None:
        import psutil

        n = 0
        for pid in pids:
            try:
                n += psutil.Process(pid).num_threads()
            except psutil.Error:
                continue
        return n

    def busy_cpu_seconds(self) -> float:
        import psutil

        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)

    def memory_used(self) -> int:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total - vm.available)


def local_tree(root: int) -> list[Proc] | None:
    """The process tree under `root` on this machine, read from those processes alone; None when
    `root` is gone. The whole table (local_processes) reads every process's command line, memory and
    CPU: a second on a machine running a thousand emulated sites, for each check of each site."""
    import psutil

    try:
        top = psutil.Process(root)
        members = [top, *top.children(recursive=True)]
    except psutil.Error:
        return None
    procs = []
    for p in members:
        try:
            with p.oneshot():
                mem, times = p.memory_info(), p.cpu_times()
                cmd = " ".join(p.cmdline()) or f"[{p.name()}]"
                procs.append(Proc(p.pid, p.ppid(), p.name(), cmd, rss=mem.rss, cpu=times.user + times.system))
        except psutil.Error:
            if p.pid == root:
                return None   # gone meanwhile: the caller looks in the whole table
            continue          # a child that ended meanwhile is no longer the site's
    return procs


def local_processes() -> list[Proc]:
    """This machine's processes (psutil), all but this process itself: the sites under test may well
    be our children (an emulated deployment started by this very run)."""
    import psutil

    own = {os.getpid()}
    procs = []
    for p in psutil.process_iter(["pid", "ppid", "name", "cmdline", "memory_info", "cpu_times"]):
        info = p.info
        if info["pid"] in own:
            continue
        mem, times = info.get("memory_info"), info.get("cpu_times")
        cmd = " ".join(info.get("cmdline") or []) or f"[{info.get('name') or '?'}]"
        procs.append(Proc(info["pid"], info.get("ppid") or 0, info.get("name") or "?", cmd,
                          rss=mem.rss if mem else None,
                          cpu=(times.user + times.system) if times else None))
    return procs


# ---------------------------------------------------------------------------------------------
# parsers (pure, unit-tested with sample outputs)


def parse_proc_stat(line: str, page_size: int = 4096, clk_tck: int = 100) -> Proc | None:
    """'1234 (name with) spaces) S 1 ...\\tcmdline' -> Proc."""
    stat, _, cmdline = line.partition("\t")
    stat = stat.strip()
    open_, close = stat.find("("), stat.rfind(")")
    if open_ < 0 or close < 0 or not stat[:open_].strip().isdigit():
        return None
    pid = int(stat[:open_].strip())
    name = stat[open_ + 1:close]
    rest = stat[close + 1:].split()
    # rest[0] is the state (field 3); ppid field 4 -> rest[1]; utime/stime fields 14/15 -> rest[11]/[12];
    # rss field 24 -> rest[21] (pages).
    try:
        ppid = int(rest[1])
        cpu = (int(rest[11]) + int(rest[12])) / float(clk_tck or 100)
        rss = int(rest[21]) * page_size
    except (IndexError, ValueError):
        return None
    return Proc(pid, ppid, name, cmdline.strip() or f"[{name}]", rss=rss, cpu=cpu)


def parse_ps(text: str) -> list[Proc]:
    """Output of `ps -e -o pid=,comm= && echo __args__ && ps -e -ww -o pid=,ppid=,rss=,args=`."""
    names_part, _, args_part = text.partition("__args__")
    names = {}
    for line in names_part.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    procs = []
    for line in args_part.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
            continue
        pid = int(parts[0])
        args = parts[3] if len(parts) > 3 else ""
        name = names.get(pid) or (args.split()[0].rsplit("/", 1)[-1] if args else "?")
        procs.append(Proc(pid, int(parts[1]), name, args or f"[{name}]",
                          rss=int(parts[2]) * 1024 if parts[2].isdigit() else None))
    return procs
