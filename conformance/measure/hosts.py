"""Hosts of a site, reached through pytest-testinfra, with a deadline on every command.

A site lists its hosts as testinfra host specs (local://, ssh://user@host, paramiko://host,
docker://container ...). `EdgeHost` wraps `testinfra.get_host(spec)` and adds what edge checks need:

* a deadline on every call: ssh/paramiko get testinfra's own `timeout` (connect timeout) and BatchMode,
  every command additionally runs under the host's `timeout` when it has a working one, and the call
  itself runs in a daemon thread that we stop waiting for at the deadline;
* one probe per host (a single shell command) that proves the host answers and lists the tools it
  has, so a check on a minimal host (busybox, no `ss`, no systemd ...) fails with an error naming what
  the host lacks instead of trusting a testinfra module that would answer wrongly;
* process, socket and memory listings that work the same on every backend: psutil for local://,
  commands (procps `ps`, or /proc read by the shell; `ss`, or `netstat`) elsewhere;
* the scope of "the site's processes": the emulated site's process tree (labels.pid, children
  included, since emulated sites share one machine), processes matching a `process` pattern, or the
  whole host.

Everything that goes wrong while reaching a host raises MeasurementError (subclasses HostUnavailable
and HostLacks): the verdict becomes `error` with the cause, never a wrong pass.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

from ..model.errors import MeasurementError

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
LOCAL_COMMANDS_ENV = "EDGE_CONFORMANCE_LOCAL_COMMANDS"
_REMOTE_SHELL_BACKENDS = ("ssh", "safe-ssh", "paramiko")


class HostUnavailable(MeasurementError):
    """The host cannot be reached or does not run commands (bad spec, ssh refused, no container)."""


class HostLacks(MeasurementError):
    """The host answers, but lacks a tool or facility the check needs."""


# ---------------------------------------------------------------------------------------------
# data


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


@dataclass(frozen=True)
class Listener:
    proto: str  # tcp | udp
    address: str
    port: int
    pid: int | None = None
    process: str | None = None

    @property
    def loopback(self) -> bool:
        a = self.address.strip("[]").split("%", 1)[0]
        return a.startswith("127.") or a in ("::1", "localhost") or a.startswith("::ffff:127.")

    def describe(self) -> str:
        addr = f"[{self.address}]" if ":" in self.address and not self.address.startswith("[") else self.address
        owner = f"{self.process or '?'} pid {self.pid}" if self.pid else "owner unknown"
        return f"{self.proto} {addr}:{self.port} ({owner})"


@dataclass
class Facts:
    tools: dict[str, str] = field(default_factory=dict)  # name -> resolved path
    systemd_running: bool = False
    proc: bool = False
    procps: bool = False
    timeout_ok: bool = False
    uid: int | None = None
    pid1: str = ""
    clk_tck: int = 100
    page_size: int = 4096

    def has(self, tool: str) -> bool:
        return tool in self.tools

    def busybox(self, tool: str) -> bool:
        return "busybox" in self.tools.get(tool, "")


_PROBE_TOOLS = ("ss", "netstat", "ps", "du", "df", "find", "stat", "timeout", "getconf", "sysctl", "chronyc",
                "timedatectl", "dpkg-query", "rpm", "apk", "pacman", "systemctl", "service", "rc-service",
                "initctl", "status", "date", "head", "readlink", "tr", "cat")
_PROBE_MARK = "__edge_probe__"


def _probe_script() -> str:
    tools = " ".join(_PROBE_TOOLS)
    return (
        f"echo {_PROBE_MARK}; "
        f"for t in {tools}; do p=$(command -v $t 2>/dev/null) && "
        "{ r=$(readlink -f \"$p\" 2>/dev/null); echo \"tool $t ${r:-$p}\"; }; done; "
        "[ -d /run/systemd/system ] && echo systemd-running; "
        "[ -r /proc/1/stat ] && echo proc; "
        "ps --version 2>&1 | head -n 1 | sed 's/^/psver /'; "
        "timeout 3 true >/dev/null 2>&1 && echo timeout-ok; "
        "echo \"uid $(id -u 2>/dev/null)\"; "
        "echo \"pid1 $(cat /proc/1/comm 2>/dev/null)\"; "
        "echo \"clk $(getconf CLK_TCK 2>/dev/null)\"; "
        "echo \"page $(getconf PAGESIZE 2>/dev/null)\"; "
        f"echo {_PROBE_MARK}end"
    )


def parse_facts(text: str) -> Facts:
    f = Facts()
    for line in text.splitlines():
        key, _, rest = line.strip().partition(" ")
        if key == "tool" and rest:
            name, _, path = rest.partition(" ")
            f.tools[name] = path or name
        elif key == "systemd-running":
            f.systemd_running = True
        elif key == "proc":
            f.proc = True
        elif key == "psver":
            f.procps = "procps" in rest.lower()
        elif key == "timeout-ok":
            f.timeout_ok = True
        elif key == "uid" and rest.strip().isdigit():
            f.uid = int(rest)
        elif key == "pid1":
            f.pid1 = rest.strip()
        elif key == "clk" and rest.strip().isdigit():
            f.clk_tck = int(rest) or 100
        elif key == "page" and rest.strip().isdigit():
            f.page_size = int(rest) or 4096
    return f


# ---------------------------------------------------------------------------------------------
# deadlines


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


# ---------------------------------------------------------------------------------------------
# the host


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
        self.name = redact_spec(spec)
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
        self._marker = f"__edge_{uuid.uuid4().hex[:12]}__"

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    @property
    def container(self) -> str | None:
        return container_of(self.spec)

    # -- testinfra -----------------------------------------------------------------------------
    @property
    def host(self):
        if self._host is None:
            import testinfra

            kwargs: dict[str, Any] = {}
            query = self.spec.split("?", 1)[1] if "?" in self.spec else ""
            if self.backend in _REMOTE_SHELL_BACKENDS:
                if "timeout=" not in query:
                    kwargs["timeout"] = max(1, int(round(self.timeout)))
                if self.backend in ("ssh", "safe-ssh") and "ssh_extra_args" not in query:
                    # Never wait on a password or host-key prompt: fail at once instead.
                    kwargs["ssh_extra_args"] = "-o BatchMode=yes"
            try:
                self._host = testinfra.get_host(self.spec, **kwargs)
            except Exception as exc:  # bad spec, unknown backend, missing client library
                raise HostUnavailable(f"host {self.name}: cannot use this host spec: "
                                      f"{type(exc).__name__}: {exc}") from None
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
        except AssertionError as exc:
            raise MeasurementError(f"host {self.name}: {what}: {str(exc).splitlines()[0]}") from None
        except (NotImplementedError, ValueError) as exc:
            raise HostLacks(f"host {self.name}: {what}: testinfra cannot do this here "
                            f"({type(exc).__name__}: {exc})") from None

    def run(self, command: str, timeout: float | None = None, what: str | None = None) -> CommandResult:
        """Run a shell command on the host, bounded by `timeout` seconds (default: the host's)."""
        limit = float(timeout or self.timeout)
        facts = self._facts
        script = f": {self._marker}; {command}"
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
        self.host  # a bad spec is reported as such, not as an unreachable host
        try:
            out = self.run(_probe_script(), what="probe")
        except HostUnavailable as exc:
            raise HostUnavailable(f"{exc} (is the host reachable, and the spec right?)") from None
        if _PROBE_MARK not in out.stdout:
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

    # -- processes -----------------------------------------------------------------------------
    def processes(self) -> list[Proc]:
        """Every process of the host with pid, ppid, name, command line, RSS and CPU seconds."""
        if self.uses_psutil:
            return _local_processes()
        facts = self.facts
        if facts.has("ps") and facts.procps:
            return self._ps_processes()
        if facts.proc:
            return self._proc_processes()
        raise HostLacks(f"host {self.name} lacks /proc and procps `ps`"
                        f"{' (its ps is BusyBox)' if facts.busybox('ps') else ''}: cannot list processes")

    def _ps_processes(self) -> list[Proc]:
        # comm may contain spaces, so names and command lines come from two listings.
        out = self.run("ps -e -o pid=,comm= && echo __args__ && ps -e -ww -o pid=,ppid=,rss=,args=",
                       what="list processes")
        if out.rc != 0 or "__args__" not in out.stdout:
            raise HostLacks(f"host {self.name}: `ps` failed: {out.stderr.strip()[:200]}")
        return self._drop_own(parse_ps(out.stdout))

    def _proc_processes(self) -> list[Proc]:
        # Only the shell and `cat`/`tr`: works in the smallest container with /bin/sh and /proc.
        script = ("for d in /proc/[0-9]*; do s=$(cat $d/stat 2>/dev/null) || continue; "
                  "c=$(tr '\\000' ' ' < $d/cmdline 2>/dev/null); printf '%s\\t%s\\n' \"$s\" \"$c\"; done")
        if not self.facts.has("tr"):
            script = ("for d in /proc/[0-9]*; do s=$(cat $d/stat 2>/dev/null) || continue; "
                      "printf '%s\\t\\n' \"$s\"; done")
        out = self.run(script, timeout=max(self.timeout, 10.0), what="list processes from /proc")
        procs = [p for p in (parse_proc_stat(line, self.facts.page_size, self.facts.clk_tck)
                             for line in out.stdout.splitlines()) if p]
        if not procs:
            raise HostLacks(f"host {self.name}: /proc lists no processes: {out.stderr.strip()[:200]}")
        return self._drop_own(procs)

    def _drop_own(self, procs: list[Proc]) -> list[Proc]:
        """Remove the shells and commands this harness is running on the host right now."""
        own = {p.pid for p in procs if self._marker in p.cmdline}
        return [p for p in procs if p.pid not in descendants(procs, own)]

    def cpu_seconds(self, pids: Iterable[int]) -> dict[int, float]:
        """CPU seconds (user + system) used so far by each of `pids` still alive."""
        pids = list(pids)
        if self.uses_psutil:
            return _local_cpu(pids)
        if not pids:
            return {}
        if not self.facts.proc:
            raise HostLacks(f"host {self.name} lacks /proc: cannot read CPU times of processes")
        files = " ".join(f"/proc/{int(p)}/stat" for p in pids)
        out = self.run(f"for f in {files}; do cat $f 2>/dev/null; echo; done", what="read CPU times")
        result = {}
        for line in out.stdout.splitlines():
            proc = parse_proc_stat(line, self.facts.page_size, self.facts.clk_tck)
            if proc is not None and proc.cpu is not None:
                result[proc.pid] = proc.cpu
        return result

    def host_cpu_seconds(self) -> float:
        """Busy CPU seconds of the whole host (all cores) since boot, from /proc/stat."""
        if self.uses_psutil:
            import psutil

            t = psutil.cpu_times()
            return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        if not self.facts.proc:
            raise HostLacks(f"host {self.name} lacks /proc: cannot read the host's CPU time")
        out = self.run("head -n 1 /proc/stat 2>/dev/null || cat /proc/stat", what="read /proc/stat")
        fields = out.stdout.split()
        if not fields or fields[0] != "cpu":
            raise HostLacks(f"host {self.name}: /proc/stat is unreadable")
        values = [int(v) for v in fields[1:] if v.isdigit()]
        busy = sum(values[:8]) - values[3] - (values[4] if len(values) > 4 else 0)
        return busy / float(self.facts.clk_tck or 100)

    def host_memory_used(self) -> int:
        """Bytes of memory in use on the whole host (MemTotal - MemAvailable)."""
        if self.uses_psutil:
            import psutil

            vm = psutil.virtual_memory()
            return int(vm.total - vm.available)
        out = self.run("cat /proc/meminfo", what="read /proc/meminfo")
        info = {}
        for line in out.stdout.splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                info[key.strip()] = int(parts[0]) * 1024
        if "MemTotal" not in info:
            raise HostLacks(f"host {self.name} lacks /proc/meminfo: cannot read memory use")
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
        return info["MemTotal"] - available

    # -- sockets -------------------------------------------------------------------------------
    def listeners(self) -> tuple[list[Listener], list[str]]:
        """Listening TCP sockets and bound UDP sockets, with their owners when visible; plus notes."""
        if self.uses_psutil:
            return _local_listeners(), []
        facts = self.facts
        if facts.has("ss"):
            out = self.run("ss -ltunp 2>/dev/null || ss -ltun", what="list sockets with ss")
            if out.rc == 0 and out.stdout.strip():
                found = parse_ss(out.stdout)
                notes = [] if "users:" in out.stdout or not found else \
                    [f"host {self.name}: ss shows no socket owners (not root?)"]
                return found, notes
        if facts.has("netstat"):
            out = self.run("netstat -ltunp 2>/dev/null", what="list sockets with netstat")
            notes = []
            if out.rc != 0 or not out.stdout.strip():
                out = self.run("netstat -ltun", what="list sockets with netstat")
                notes.append(f"host {self.name}: its netstat cannot show socket owners (-p)")
            if out.rc == 0 and ("Proto" in out.stdout or out.stdout.strip() == ""):
                return parse_netstat(out.stdout), notes
            raise HostLacks(f"host {self.name}: netstat failed: {out.stderr.strip()[:200]}")
        raise HostLacks(f"host {self.name} lacks `ss` and `netstat`: cannot list listening sockets")


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


def split_address(text: str) -> tuple[str, int] | None:
    """'0.0.0.0:22', '[::]:80', '*:53', ':::22', '127.0.0.53%lo:53' -> (address, port)."""
    text = text.strip()
    if ":" not in text:
        return None
    addr, _, port = text.rpartition(":")
    if not port.isdigit():
        return None
    addr = addr.strip("[]")
    if addr in ("*", ""):
        addr = "0.0.0.0"
    return addr, int(port)


_SS_USERS = re.compile(r'\("([^"]*)",pid=(\d+)')


def parse_ss(text: str) -> list[Listener]:
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] not in ("tcp", "udp"):
            continue
        where = split_address(parts[4])
        if where is None:
            continue
        if parts[0] == "tcp" and parts[1] != "LISTEN":
            continue
        owners = _SS_USERS.findall(line)
        if owners:
            for name, pid in dict.fromkeys(owners):
                found.append(Listener(parts[0], where[0], where[1], int(pid), name))
        else:
            found.append(Listener(parts[0], where[0], where[1]))
    return list(dict.fromkeys(found))


def parse_netstat(text: str) -> list[Listener]:
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].startswith(("tcp", "udp")):
            continue
        proto = "tcp" if parts[0].startswith("tcp") else "udp"
        where = split_address(parts[3])
        if where is None:
            continue
        rest = parts[5:]
        if proto == "tcp":
            if "LISTEN" not in rest:
                continue
            rest = rest[rest.index("LISTEN") + 1:]
        elif rest and rest[0] in ("ESTABLISHED", "CLOSE", "UNCONN"):
            rest = rest[1:]
        pid, name = None, None
        if rest and "/" in rest[0]:
            p, _, n = rest[0].partition("/")
            if p.isdigit():
                pid, name = int(p), n or None
        found.append(Listener(proto, where[0], where[1], pid, name))
    return list(dict.fromkeys(found))


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


# ---------------------------------------------------------------------------------------------
# local (psutil)


def _local_processes() -> list[Proc]:
    import psutil

    # Only this process itself is left out: the sites under test may well be our children (an
    # emulated deployment started by this very run).
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


def _local_cpu(pids: list[int]) -> dict[int, float]:
    import psutil

    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


def _local_listeners() -> list[Listener]:
    import socket

    import psutil

    names: dict[int, str] = {}
    found = []
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied as exc:
        raise HostLacks(f"host local://: not allowed to list sockets ({exc})") from None
    for c in conns:
        if not c.laddr:
            continue
        if c.type == socket.SOCK_STREAM:
            if c.status != psutil.CONN_LISTEN:
                continue
            proto = "tcp"
        elif c.type == socket.SOCK_DGRAM:
            if c.raddr:
                continue
            proto = "udp"
        else:
            continue
        name = None
        if c.pid:
            if c.pid not in names:
                try:
                    names[c.pid] = psutil.Process(c.pid).name()
                except psutil.Error:
                    names[c.pid] = "?"
            name = names[c.pid]
        found.append(Listener(proto, c.laddr.ip, c.laddr.port, c.pid, name))
    return sorted(set(found), key=lambda s: (s.proto, s.port, s.address, s.pid or 0))


# ---------------------------------------------------------------------------------------------
# which processes are "the site"


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
            keep = descendants(procs, [self.root]) if any(p.pid == self.root for p in procs) else set()
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

    * `process` param: processes matching it (name or command-line regex), children included;
    * an emulated local site (labels.pid on a local:// host): the site's process tree;
    * a docker:// host: the container is the site, so the whole container;
    * otherwise the whole host (or, with require_site, MeasurementError: the site's processes are
      unknown).
    """
    pattern = params.get("process")
    if pattern:
        return Scope("pattern", f"processes matching {pattern!r}", pattern=str(pattern))
    if host.is_local and site_pid(site) is not None:
        return Scope("tree", f"site process tree (pid {site_pid(site)})", root=site_pid(site))
    if host.container:
        return Scope("host", f"container {host.container}")
    if require_site:
        raise NotScoped(f"which processes are the site's on {host.name} is unknown",
                        "give the requirement a `process` param (a name or command-line pattern of the "
                        "site's processes)")
    return Scope("host", f"whole host {host.name}")


class NotScoped(Exception):
    """The site's processes cannot be told apart on this host: the check cannot measure the site there
    (not-measured), and `remedy` says what would let it."""

    def __init__(self, reason: str, remedy: str):
        super().__init__(reason)
        self.reason, self.remedy = reason, remedy


def site_processes(site: Any, host: EdgeHost, scope: Scope) -> tuple[list[Proc], list[str]]:
    """The processes of `scope` on `host`, and notes (a restarted emulated site is followed)."""
    procs = host.processes()
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

DOCKER_DNS_ADDRESS = "127.0.0.11"


def docker_dns_listener(host: EdgeHost, sock: Listener) -> bool:
    """Docker's embedded DNS resolver inside a container on a user-defined network.

    dockerd answers the container's DNS at 127.0.0.11 (tcp and udp, random ports that iptables
    redirects :53 to) from sockets it opens in the container's network namespace; their owner is in
    another pid namespace, so no owner shows. It is Docker's, not the site's. A process of the
    container listening on 127.0.0.11 has a visible owner (as root) and is not excused.
    """
    return host.container is not None and sock.address == DOCKER_DNS_ADDRESS and sock.pid is None


def is_site_container(site: Any, host: EdgeHost) -> bool:
    """`host` is the docker:// host of the site's own container (labels.container, docker backend)."""
    return bool(host.container) and (site.labels or {}).get("container") == host.container


def site_data_dir(site: Any, host: EdgeHost) -> str | None:
    """labels.data_dir where `host` sees it, or None.

    Local backend: a path on this machine (local:// hosts). Docker backend: a path inside the site's
    container (/data), read through its docker:// host; on any other host it means nothing.
    """
    labels = site.labels or {}
    data_dir = labels.get("data_dir")
    if not data_dir:
        return None
    if is_site_container(site, host) or (host.is_local and not labels.get("container")):
        return str(data_dir)
    return None


def workload_scope(site: Any, host: EdgeHost) -> Scope | None:
    """On the docker:// host of an emulated docker site: the container's workload process (the
    command in labels.command, below the container's PID 1) and its children; else None."""
    command = str((site.labels or {}).get("command") or "").strip()
    if not command or not is_site_container(site, host):
        return None
    return Scope("workload", f"workload `{command}` of container {host.container}", pattern=command)


def container_state(name: str) -> dict[str, Any] | None:
    """Docker's State of container `name` ({"Status": "exited", "ExitCode": 137, ...}); {"Status":
    "removed"} when Docker has no such container; None when no daemon (or SDK) answers."""
    try:
        import docker  # noqa: PLC0415

        client = docker.from_env(timeout=5)
    except Exception:  # noqa: BLE001 - no SDK, no daemon: the caller keeps its own error
        return None
    try:
        return dict(client.api.inspect_container(name).get("State") or {})
    except docker.errors.NotFound:
        return {"Status": "removed"}
    except Exception:  # noqa: BLE001
        return None
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# a site's hosts


def site_hosts(site: Any, params: dict) -> list[EdgeHost]:
    """EdgeHosts for the site's hosts (optionally only those whose spec contains params['host'])."""
    timeout = params.get("host_timeout") or DEFAULT_TIMEOUT
    chosen = params.get("host")
    specs = [h for h in (site.hosts or []) if not chosen or str(chosen) in h]
    return [EdgeHost(spec, timeout) for spec in specs]


def no_hosts(site: Any, params: dict) -> tuple[str, str]:
    """(reason, remedy) for a host check on a site none of whose hosts it can use: not-measured, never
    not-applicable (every site runs on some host; the target file does not say which)."""
    if not site.hosts:
        return ("site has no hosts",
                f"give site {site.name} a testinfra host in the target file (hosts: [ssh://...])")
    chosen = params.get("host")
    return (f"none of the site's hosts matches host={chosen!r}",
            f"set the requirement's `host` param to part of one of site {site.name}'s hosts "
            f"({', '.join(site.hosts)}), or add a host matching {chosen!r} to the site in the target file")
