"""What a host has: one probe (a single shell command) that proves the host answers and lists its tools.

A check on a minimal host (busybox, no `ss`, no systemd ...) then fails with an error naming what the
host lacks instead of trusting a testinfra module that would answer wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROBE_TOOLS = ("ss", "netstat", "ps", "du", "df", "find", "stat", "timeout", "getconf", "sysctl", "chronyc",
               "timedatectl", "dpkg-query", "rpm", "apk", "pacman", "systemctl", "service", "rc-service",
               "initctl", "status", "date", "head", "readlink", "tr", "cat")
PROBE_MARK = "__edge_probe__"


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
    in_docker: bool = False  # /.dockerenv: the host is a Docker container (however it is reached)

    def has(self, tool: str) -> bool:
        return tool in self.tools

    def busybox(self, tool: str) -> bool:
        return "busybox" in self.tools.get(tool, "")


def probe_script() -> str:
    tools = " ".join(PROBE_TOOLS)
    return (
        f"echo {PROBE_MARK}; "
        f"for t in {tools}; do p=$(command -v $t 2>/dev/null) && "
        "{ r=$(readlink -f \"$p\" 2>/dev/null); echo \"tool $t ${r:-$p}\"; }; done; "
        "[ -d /run/systemd/system ] && echo systemd-running; "
        "[ -r /proc/1/stat ] && echo proc; "
        "[ -e /.dockerenv ] && echo in-docker; "
        "ps --version 2>&1 | head -n 1 | sed 's/^/psver /'; "
        "timeout 3 true >/dev/null 2>&1 && echo timeout-ok; "
        "echo \"uid $(id -u 2>/dev/null)\"; "
        "echo \"pid1 $(cat /proc/1/comm 2>/dev/null)\"; "
        "echo \"clk $(getconf CLK_TCK 2>/dev/null)\"; "
        "echo \"page $(getconf PAGESIZE 2>/dev/null)\"; "
        f"echo {PROBE_MARK}end"
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
        elif key == "in-docker":
            f.in_docker = True
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
