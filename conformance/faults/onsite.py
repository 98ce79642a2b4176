"""Built-in faults on a REAL site's own host: what a target file's `faults:` section grants.

    sites:
      - name: store-7
        hosts: ["ssh://ops@store7"]
        uplink: hq
        faults:
          sudo: true                 # the commands run with `sudo -n`
          margin: 30 s               # dead-man: undone this long after the fault's expected end
          wan: {peer: uplink, interface: eth1}         # partition, heal, degrade, reset
          process: {service: edge-stack}               # kill, pause, resume, restart, stop, start
          # process: {pattern: "edge-stack --serve", start: "/opt/edge/run.sh"}
          # process: {probe: true}     # the probe --deploy-probes puts there, through its keeper

Everything runs through the site's testinfra host (`conformance.measure.host.EdgeHost.run`, with its
deadline), only with --allow-faults (`faults_for` refuses before anything is built otherwise), or on
the SSH lab this run started (the registry vouches for the lab's own target file).

* partition: drop every packet between the site and its peer(s) (output, input and forward) in
  the site's own packet filter: an nft table of our own (`inet edgeconf_<run>_<fault>`) when the
  host has `nft`, else iptables/ip6tables rules carrying the comment `edgeconf:<run id>:<fault>`.
  `drop` cut mode also rejects established TCP flows with a reset (each end sees it when it next
  sends), `hold` only drops (TCP retransmits what was in flight after heal). Heal deletes exactly
  that table or exactly those rules; nothing else of the host's filter is ever touched.
* degrade: `tc qdisc replace dev IF root handle H: netem ...` on the WAN interface (egress of the
  site: the delay is paid once per round trip, and everything leaving IF is impaired) when the
  site's kernel has netem. Without netem, a degrade that asks only for loss is emulated by the
  packet filter (each direction drops that fraction of the packets to or from the peer at random:
  nft `numgen random`, iptables `statistic --mode random`); one that asks for delay, jitter or
  bandwidth is not measured, with tc's own answer as the reason. A root qdisc someone else put
  on IF is never replaced. reset removes only our qdisc (by its handle) or our rules.
* kill / pause / resume / stop / start / restart: `systemctl kill --signal=...`, `systemctl
  restart|stop|start` for a `service`; for a `pattern`, the processes `pgrep -f` finds (never the
  harness's own shells nor a dead-man), signalled by pid; `start` is run detached (setsid nohup).
* dead-man switch: every fault that must be undone (partition, degrade, pause, stop) first starts,
  ON THE SITE, a detached remover that undoes exactly that fault after its expected length (the
  check's `duration`, else `limit`) plus `margin` after the install, in the same command that
  installs the fault: a `systemd-run --on-active=` timer when systemd runs there, else (or when
  systemd-run refuses) `setsid nohup sh -c 'wait for the installing shell; sleep N; UNDO'`. So the
  site heals itself even if the harness is SIGKILLed or the link to the site is lost. The undo
  (heal, reset, resume, start) removes the fault and cancels its remover; it always runs
  (`Faults._undone`: a finally, also on Ctrl-C). An undo that cannot reach the site is an error that
  says when the dead-man will have undone it.
* a hook for an action takes precedence: if the site has any hook of an action's pair
  (partition/heal, degrade, pause/resume, stop/start, kill, restart), that pair runs through hooks
  (`hooks.HookFaults`), so a fault and its undo always come from the same source.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import shlex
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..model.errors import MeasurementError, NotMeasured
from . import Faults, FaultError

TAG_PREFIX = "edgeconf"
DEADMAN_WORD = "edgeconf-deadman"      # in every remover's command line
COMMAND_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
NOTHING_TO_KILL = 3  # the kill script's exit status when no process matches
KILL_REFUSED = 4     # ... and when kill refused (another user's process, no sudo)
# action -> the pair it belongs to, and the hooks that make a pair go through hooks
PAIR_OF = {"partition": "cut", "heal": "cut", "degrade": "wan", "reset": "wan", "pause": "pause",
           "resume": "pause", "stop": "stop", "start": "stop", "kill": "kill", "restart": "restart",
           "backup": "backup", "wipe": "wipe", "restore": "restore"}
PAIR_HOOKS = {"cut": ("partition", "heal"), "wan": ("degrade",), "pause": ("pause", "resume"),
              "stop": ("stop", "start"), "kill": ("kill",), "restart": ("restart",), "backup": ("backup",),
              "wipe": ("wipe",), "restore": ("restore",)}
# Only a hook backs up, wipes or restores a real site: no built-in fault does an operator's data work.
DATA_ACTIONS = ("backup", "wipe", "restore")
_NO_NETEM = ("qdisc kind is unknown", "no such file or directory", "unknown qdisc", "not supported")
_PROCESS_RUN_ID = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.urandom(3).hex()}"


class NoNetem(NotMeasured):
    """The site's kernel has no netem: a degrade it would need cannot be made there."""


def process_run_id() -> str:
    """The run id when the caller gives none (one per harness process)."""
    return _PROCESS_RUN_ID


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


@dataclass
class Installed:
    """One fault on the site: how to undo it, and its dead-man remover."""

    pair: str
    tag: str            # edgeconf:<run id>:<fault id>
    undo: str           # shell script that undoes exactly this fault (idempotent)
    deadman: str        # "systemd:<unit>:<tag>" or "sleep:<tag>"
    seconds: int        # the remover fires this long after the install
    installed_at: float
    what: str


# --------------------------------------------------------------------------------- shell scripts


def pids_function(marker: str) -> str:
    """`_ec_pids PATTERN`: pids whose command line matches PATTERN (pgrep -f, or /proc and grep -E),
    never our own shells (they carry `marker`) nor a dead-man remover."""
    return (
        "_ec_pids() { "
        "if command -v pgrep >/dev/null 2>&1; then pgrep -f -- \"$1\"; "
        "else for d in /proc/[0-9]*; do tr '\\000' ' ' <\"$d/cmdline\" 2>/dev/null | grep -Eq -- \"$1\" "
        "&& echo \"${d#/proc/}\"; done; fi | while read -r p; do "
        "c=$(tr '\\000' ' ' <\"/proc/$p/cmdline\" 2>/dev/null) || continue; "
        f"case \"$c\" in *{marker}*|*{DEADMAN_WORD}*|'') ;; *) echo \"$p\";; esac; done; }}; "
    )


def deadman_start(tag: str, seconds: int, undo: str, systemd: bool, installing: float = 0.0) -> tuple[str, str]:
    """(script that starts the remover, its handle). The remover runs `undo` `seconds` after the install
    (the rest of the script that starts it) has ended: it is started first, waits for the script's shell
    to exit, then sleeps. The script ends so that what follows it (the install) runs once the remover is
    in place. With systemd, a transient timer started at once, `installing` (the longest the install may
    take) later; if systemd-run refuses (no D-Bus, a sudo rule), the detached sleep after all."""
    body = (f": {DEADMAN_WORD} {tag}; while kill -0 \"$1\" 2>/dev/null; do sleep 0.2; done; "
            f"sleep {seconds}; {undo}")
    detached = f"setsid nohup sh -c {shlex.quote(body)} {DEADMAN_WORD} \"$$\" >/dev/null 2>&1 </dev/null &"
    if systemd:
        unit = _ident(tag).replace("_", "-")[:200]
        script = (f"if systemd-run --quiet --collect --unit={unit} "
                  f"--on-active={seconds + math.ceil(installing)}s --timer-property=AccuracySec=100ms "
                  f"--description={shlex.quote(f'{DEADMAN_WORD} {tag}')} /bin/sh -c {shlex.quote(undo)} "
                  f">/dev/null 2>&1; then :; else {detached} fi;")
        return script, f"systemd:{unit}:{tag}"
    return detached, f"sleep:{tag}"


def deadman_cancel(handle: str, marker: str) -> str:
    """Stop the remover. Never our own shells (they carry `marker`): the install script that cancels
    after a failed install holds the remover's text on its command line."""
    kind, _, name = handle.partition(":")
    systemd = ""
    if kind == "systemd":
        unit, _, name = name.partition(":")
        systemd = (f"systemctl stop {unit}.timer {unit}.service >/dev/null 2>&1; "
                   f"systemctl reset-failed {unit}.timer {unit}.service >/dev/null 2>&1; ")
    # the pattern's last letter in brackets: it does not match the command line that holds it
    word = DEADMAN_WORD[:-1] + f"[{DEADMAN_WORD[-1]}]"
    return (f"{systemd}for p in $(pgrep -f -- {shlex.quote(f'{word} {name}')}); do "
            f"case \"$(tr '\\000' ' ' <\"/proc/$p/cmdline\" 2>/dev/null)\" in *{marker}*) continue;; esac; "
            "kill -TERM -- -$p 2>/dev/null || kill -TERM $p 2>/dev/null; done; true")


def _family(peer: str) -> int:
    return ipaddress.ip_network(peer, strict=False).version


def nft_table(tag: str) -> str:
    return _ident(tag.replace(":", "_"))[:240]


def nft_cut(tag: str, peers: list[str], interface: str | None, mode: str) -> tuple[str, str]:
    """(install, undo) of a partition as an nft table of our own."""
    table = nft_table(tag)
    lines = [f"table inet {table} {{"]
    for chain, hook in (("edge_out", "output"), ("edge_in", "input"), ("edge_fwd", "forward")):
        lines.append(f"  chain {chain} {{ type filter hook {hook} priority -5; policy accept;")
        for peer in peers:
            ip = "ip" if _family(peer) == 4 else "ip6"
            pairs = {"edge_out": [("daddr", "oifname")], "edge_in": [("saddr", "iifname")],
                     "edge_fwd": [("daddr", "oifname"), ("saddr", "iifname")]}[chain]
            for addr, ifkey in pairs:
                match = f"{ip} {addr} {peer}" + (f' {ifkey} "{interface}"' if interface else "")
                if mode == "drop" and chain != "edge_fwd":
                    lines.append(f'    {match} meta l4proto tcp ct state established reject with tcp reset '
                                 f'comment "{tag}"')
                lines.append(f'    {match} drop comment "{tag}"')
        lines.append("  }")
    lines.append("}")
    ruleset = "\n".join(lines) + "\n"
    return (f"printf '%s' {shlex.quote(ruleset)} | nft -f -",
            f"nft delete table inet {table} >/dev/null 2>&1; true")


def nft_loss(tag: str, peers: list[str], interface: str | None, loss: float) -> tuple[str, str]:
    """(install, undo) of random loss towards and from the peers, as an nft table of our own."""
    table = nft_table(tag)
    per_mille = max(0, min(1000, int(round(loss * 1000))))
    lines = [f"table inet {table} {{"]
    for chain, hook, addr, ifkey in (("edge_out", "output", "daddr", "oifname"),
                                     ("edge_in", "input", "saddr", "iifname")):
        lines.append(f"  chain {chain} {{ type filter hook {hook} priority -5; policy accept;")
        for peer in peers:
            ip = "ip" if _family(peer) == 4 else "ip6"
            match = f"{ip} {addr} {peer}" + (f' {ifkey} "{interface}"' if interface else "")
            if per_mille >= 1000:  # all of it (numgen's values are 0-999)
                lines.append(f'    {match} drop comment "{tag}"')
            elif per_mille > 0:
                lines.append(f'    {match} numgen random mod 1000 < {per_mille} drop comment "{tag}"')
        lines.append("  }")
    lines.append("}")
    ruleset = "\n".join(lines) + "\n"
    return (f"printf '%s' {shlex.quote(ruleset)} | nft -f -",
            f"nft delete table inet {table} >/dev/null 2>&1; true")


def _iptables_rules(tag: str, peers: list[str], interface: str | None, verdicts: list[tuple[str, str]],
                    chains: tuple[str, ...] = ("OUTPUT", "INPUT", "FORWARD")) -> list[tuple[str, str, str]]:
    """(command, chain, spec) in the order they should end up in each chain (first = top)."""
    rules = []
    comment = f"-m comment --comment {shlex.quote(tag)}"
    for peer in peers:
        cmd = "iptables" if _family(peer) == 4 else "ip6tables"
        for chain in chains:
            directions = {"OUTPUT": [("-d", "-o")], "INPUT": [("-s", "-i")],
                          "FORWARD": [("-d", "-o"), ("-s", "-i")]}[chain]
            for addr, ifopt in directions:
                match = f"{addr} {peer}" + (f" {ifopt} {shlex.quote(interface)}" if interface else "")
                for extra, verdict in verdicts:
                    if chain == "FORWARD" and "REJECT" in verdict:
                        continue
                    rules.append((cmd, chain, f"{match} {extra} {comment} -j {verdict}".replace("  ", " ")))
    return rules


def _iptables_scripts(rules: list[tuple[str, str, str]]) -> tuple[str, str]:
    # -I puts a rule at the top: insert in reverse to keep the order given
    install = " && ".join(f"{cmd} -w 5 -I {chain} 1 {spec}" for cmd, chain, spec in reversed(rules))
    undo = "; ".join(f"while {cmd} -w 5 -D {chain} {spec} 2>/dev/null; do :; done"
                     for cmd, chain, spec in rules) + "; true"
    return install, undo


def iptables_cut(tag: str, peers: list[str], interface: str | None, mode: str) -> tuple[str, str]:
    verdicts = [("", "DROP")]
    if mode == "drop":
        verdicts.insert(0, ("-p tcp -m conntrack --ctstate ESTABLISHED", "REJECT --reject-with tcp-reset"))
    return _iptables_scripts(_iptables_rules(tag, peers, interface, verdicts))


def iptables_loss(tag: str, peers: list[str], interface: str | None, loss: float) -> tuple[str, str]:
    verdicts = [(f"-m statistic --mode random --probability {min(max(loss, 0.0), 1.0):.4f}", "DROP")]
    return _iptables_scripts(_iptables_rules(tag, peers, interface, verdicts, chains=("OUTPUT", "INPUT")))


def netem_args(params: dict[str, Any]) -> str:
    parts = []
    delay, jitter = float(params.get("delay_ms") or 0), float(params.get("jitter_ms") or 0)
    if delay or jitter:
        parts.append(f"delay {delay:g}ms" + (f" {jitter:g}ms" if jitter else ""))
    if params.get("loss"):
        parts.append(f"loss {float(params['loss']) * 100:g}%")
    if params.get("bandwidth_bps"):
        parts.append(f"rate {int(params['bandwidth_bps'])}bit")
    return " ".join(parts)


def netem_handle(tag: str) -> str:
    """A qdisc handle of our own for this fault (hex, 0x1000-0xfffe)."""
    return format(0x1000 + int.from_bytes(tag.encode()[-6:], "big") % 0xeffe, "x")


def netem_scripts(interface: str, handle: str, args: str) -> tuple[str, str]:
    """(install, undo). Install refuses a root qdisc of someone else's (a default one has handle 0:)."""
    show = f"tc qdisc show dev {shlex.quote(interface)}"
    install = (f"root=$({show} | grep ' root' | head -n 1); "
               f"case \"$root\" in *' 0: root'*|*'qdisc noqueue'*|'') ;; "
               f"*) echo \"{interface} has a root qdisc of its own: $root\" >&2; exit 3;; esac; "
               f"tc qdisc replace dev {shlex.quote(interface)} root handle {handle}: netem {args}")
    undo = (f"{show} | grep -q 'qdisc netem {handle}: root' && "
            f"tc qdisc del dev {shlex.quote(interface)} root handle {handle}: ; true")
    return install, undo


# --------------------------------------------------------------------------------- the faults


class SiteShell:
    """Commands on the site's fault host, through its testinfra host, with sudo when granted."""

    TOOLS = ("nft", "iptables", "ip6tables", "tc", "systemd-run", "systemctl", "setsid", "nohup", "pgrep")

    def __init__(self, spec: str, sudo: bool = False, timeout: float = COMMAND_TIMEOUT_S):
        from ..measure.host.edgehost import EdgeHost

        self.host = EdgeHost(spec, timeout, prefer_psutil=False)
        self.sudo = sudo
        self.timeout = timeout
        self._tools: set[str] | None = None
        self.systemd = False

    @property
    def name(self) -> str:
        return self.host.name

    def script(self, body: str) -> str:
        body = f": {self.host.marker}; PATH=\"$PATH:/usr/sbin:/sbin\"; export PATH; {body}"
        return f"sudo -n sh -c {shlex.quote(body)}" if self.sudo else body

    def run(self, body: str, what: str, timeout: float | None = None) -> tuple[int, str, str]:
        self.host.facts  # noqa: B018 - probe first: every later command then runs under the host's `timeout`
        out = self.host.run(self.script(body), timeout=timeout or self.timeout, what=what)
        return out.rc, out.stdout, out.stderr

    def check(self, body: str, what: str, timeout: float | None = None) -> str:
        rc, stdout, stderr = self.run(body, what, timeout)
        if rc != 0:
            tail = _cause(stderr) or _cause(stdout) or "no output"
            raise FaultError(f"{what} on {self.name} failed (exit {rc}): {tail}")
        return stdout

    def tools(self) -> set[str]:
        if self._tools is None:
            names = " ".join(self.TOOLS)
            out = self.check(f"for t in {names}; do command -v $t >/dev/null 2>&1 && echo \"tool $t\"; done; "
                             "[ -d /run/systemd/system ] && echo systemd-running; true", "list fault tools")
            self._tools = {line.split()[1] for line in out.splitlines() if line.startswith("tool ")}
            self.systemd = "systemd-running" in out and "systemd-run" in self._tools
        return self._tools


def _cause(text: str) -> str:
    """The first line that says "error" (nft, tc), else the last line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[0 if errors else -1][:300]


def resolve_peers(target: Any, site: Any, peers: list[str]) -> list[str]:
    """The peers as addresses: "uplink" is the hosts of the uplink site's endpoints (names resolved here)."""
    out: list[str] = []
    for peer in peers:
        if peer != "uplink":
            net = ipaddress.ip_network(peer, strict=False)
            out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
            continue
        uplink = target.site(site.uplink)
        hosts = {urlsplit(url).hostname for url in uplink.endpoints.values()} - {None}
        if not hosts:
            raise FaultError(f"faults.wan.peer uplink: site {uplink.name} has no endpoint to take its address from")
        for host in sorted(h for h in hosts if h):
            try:
                out.append(str(ipaddress.ip_address(host)))
            except ValueError:
                try:
                    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                except OSError as exc:
                    raise FaultError(f"faults.wan.peer uplink: cannot resolve {host}: {exc}") from None
                out.extend(sorted({str(info[4][0]) for info in infos}))
    return list(dict.fromkeys(out))


class OnSiteFaults(Faults):
    """A real site with built-in faults granted (`faults:` in the target file); hooks take precedence
    per pair of actions (see the module docstring)."""

    kind = "onsite"

    def __init__(self, target: Any, site: Any, *, run_id: str | None = None, hooks: Faults | None = None,
                 allow_real: bool = True):
        super().__init__(target, site, allow_real=allow_real)
        self.run_id = run_id or process_run_id()
        self.grant = site.faults
        self.hooks = hooks
        self.shell = SiteShell(self.grant.host, sudo=self.grant.sudo)
        self.active: dict[str, Installed] = {}
        self.paused_pids: list[str] = []
        self._count = 0

    # -- what can be done

    def _by_hook(self, action: str) -> bool:
        return any(h in self.site.hooks for h in PAIR_HOOKS[PAIR_OF[action]])

    def builtin_supports(self, action: str) -> bool:
        g = self.grant
        pair = PAIR_OF[action]
        if pair in DATA_ACTIONS:
            return False
        if pair in ("cut", "wan"):
            return g.wan is not None
        if g.process is None or g.process.probe:  # probe: only once this run deployed it (engine/probes.py)
            return False
        if pair in ("kill", "pause"):
            return True
        return bool(g.process.service or g.process.start)  # restart, stop, start

    def require(self, *actions: str) -> None:
        """As Faults.require; then the site's fault host is reached once (its facts and tools), so that
        the first fault is one round trip: a crash lands right after the sales a check just made."""
        super().require(*actions)
        if any(not self._by_hook(a) for a in actions):
            try:
                self.shell.tools()
            except MeasurementError:  # FaultError, HostUnavailable, HostLacks, a host's timeout
                pass  # said by the fault itself, when it runs

    def _supports(self, action: str) -> bool:
        if self._by_hook(action):
            return self.hooks is not None and self.hooks._supports(action)
        return self.builtin_supports(action)

    def _missing_reason(self, action: str) -> str:
        if self._by_hook(action) and self.hooks is not None:
            return self.hooks._missing_reason(action)
        if PAIR_OF[action] in DATA_ACTIONS:
            return f"no `{action}` hook" + self._where()
        if PAIR_OF[action] not in ("cut", "wan") and self.grant.process is not None and self.grant.process.probe:
            return f"faults.process names the probe, but this run deployed no probe on site {self.name}"
        return f"no fault hook and no built-in fault for {action}" + self._where()

    def _missing_remedy(self, action: str) -> str:
        if self._by_hook(action) and self.hooks is not None:
            return self.hooks._missing_remedy(action)
        pair = PAIR_OF[action]
        if pair in DATA_ACTIONS:
            return f"add a `{action}` hook to site {self.name} in the target file (no built-in fault does it)"
        if pair not in ("cut", "wan") and self.grant.process is not None and self.grant.process.probe:
            return "pass --deploy-probes (the grant is for the probe the run deploys)"
        if pair in ("cut", "wan"):
            grant = "faults: {wan: {peer: ...}}"
        elif self.grant.process is not None and self.grant.process.pattern:
            grant = "faults.process.start (the command that starts the workload)"
        else:
            grant = "faults: {process: {service: ...}} or {process: {pattern: ..., start: ...}}"
        return f"grant it to site {self.name} in the target file ({grant}), or add a `{action}` fault hook"

    # -- doing it

    def _do(self, action: str, **params: Any) -> None:
        if not self.allow_real:  # faults_for never builds one without permission; belt and braces
            from . import NOT_ALLOWED, NOT_ALLOWED_REMEDY, skip

            skip(NOT_ALLOWED, NOT_ALLOWED_REMEDY)
        if self._by_hook(action):
            assert self.hooks is not None
            before = len(self.hooks.log)
            try:
                return self.hooks._do(action, **params)
            finally:
                self.log.extend(self.hooks.log[before:])
        try:
            getattr(self, f"_do_{action}")(**params)
        except MeasurementError as exc:
            self.log.append(f"{action} on {self.name} failed: {exc}")
            raise

    def _new_tag(self) -> str:
        self._count += 1
        return f"{TAG_PREFIX}:{self.run_id}:{os.getpid():x}{self._count:02d}{os.urandom(2).hex()}"

    def deadman_seconds(self) -> int:
        """The remover's delay after the install: the fault's expected length (else `limit`) + `margin`."""
        expected = self.expected_s if self.expected_s is not None else self.grant.limit
        return max(1, math.ceil(float(expected) + self.grant.margin))

    def _install(self, pair: str, install: str, undo: str, what: str, tag: str | None = None,
                 installing: float = 0.0) -> Installed:
        """Start the remover, then install; a failed install is undone at once (and its remover cancelled)."""
        if pair in self.active:  # a fault of this pair still on: undo it first (a new step of a sweep)
            self._remove(pair, quiet=True)
        tag = tag or self._new_tag()
        self.shell.tools()
        seconds = self.deadman_seconds()
        start, handle = deadman_start(tag, seconds, undo, self.shell.systemd, installing)
        fault = Installed(pair, tag, undo, handle, seconds, time.monotonic(), what)
        self.active[pair] = fault  # before anything runs: an undo after a half-done install removes it too
        cancel = deadman_cancel(handle, self.shell.host.marker)
        script = f"{start} {{ {install} ; }} || {{ rc=$?; {undo}; {cancel}; exit $rc; }}"
        self.shell.check(script, what)
        remover = "systemd timer" if handle.startswith("systemd:") else "detached sleep"
        self.log.append(f"{what} on {self.name} ({self.shell.name}), tag {tag}; dead-man ({remover}) "
                        f"undoes it after {seconds} s")
        return fault

    def _remove(self, pair: str, quiet: bool = False) -> bool:
        fault = self.active.get(pair)
        if fault is None:
            return False
        what = f"undo {fault.what}"
        try:
            self.shell.check(f"{fault.undo}; {deadman_cancel(fault.deadman, self.shell.host.marker)}", what)
        except MeasurementError as exc:
            left = fault.seconds - (time.monotonic() - fault.installed_at)
            raise FaultError(f"{exc}; the dead-man on the site undoes it within {max(0.0, left):.0f} s") from None
        del self.active[pair]
        if not quiet:
            self.log.append(f"{what} on {self.name}: removed (tag {fault.tag}), dead-man cancelled")
        return True

    # network

    def _peers(self) -> list[str]:
        return resolve_peers(self.target, self.site, self.grant.wan.peers)

    def _filter(self) -> str:
        tools = self.shell.tools()
        want = self.grant.wan.filter
        if want == "nft" or (want == "auto" and "nft" in tools):
            if "nft" not in tools:
                raise FaultError(f"host {self.shell.name} has no `nft` (faults.wan.filter: nft)")
            return "nft"
        if "iptables" not in tools:
            raise FaultError(f"host {self.shell.name} has neither `nft` nor `iptables`: cannot cut its WAN")
        return "iptables"

    def _do_partition(self, cut_mode: str = "hold") -> None:
        peers, wan = self._peers(), self.grant.wan
        tag = self._new_tag()
        kind = self._filter()
        maker = nft_cut if kind == "nft" else iptables_cut
        install, undo = maker(tag, peers, wan.interface, cut_mode)
        self._install("cut", install, undo, f"partition ({cut_mode}, {kind}: {', '.join(peers)})", tag)

    def _do_heal(self, cut_mode: str = "hold") -> None:
        if not self._remove("cut"):
            self.log.append(f"heal {self.name}: no partition of ours to remove")

    def _do_degrade(self, **params: Any) -> None:
        wan, tag = self.grant.wan, self._new_tag()
        needs_netem = any(params.get(k) for k in ("delay_ms", "jitter_ms", "bandwidth_bps"))
        asked = ", ".join(f"{k}={v:g}" for k, v in params.items())
        if "tc" not in self.shell.tools() and needs_netem:
            raise NoNetem(f"host {self.shell.name} has no `tc`: cannot degrade the WAN ({asked})",
                          "install iproute2 on the site, or give the site a `degrade` hook")
        if wan.interface and "tc" in self.shell.tools():
            handle = netem_handle(tag)
            args = netem_args(params)
            install, undo = netem_scripts(wan.interface, handle, args)
            try:
                self._install("wan", install, undo, f"degrade ({asked}; netem on {wan.interface} egress)", tag)
                return
            except FaultError as exc:
                self.active.pop("wan", None)
                if not any(text in str(exc).lower() for text in _NO_NETEM):
                    raise
                no_netem = str(exc)
        elif needs_netem:
            raise NotMeasured(f"degrade ({asked}) needs tc netem on the site's WAN interface, and none is named",
                              f"set faults.wan.interface of site {self.name} in the target file")
        else:
            no_netem = ""
        if needs_netem:
            raise NoNetem(f"the site's kernel has no netem: cannot add {asked} on {self.shell.name} "
                          f"(tc: {no_netem.rsplit(': ', 1)[-1]})",
                          "load sch_netem on the site (modprobe sch_netem), or give the site a `degrade` hook")
        peers = self._peers()
        kind = self._filter()
        maker = nft_loss if kind == "nft" else iptables_loss
        install, undo = maker(tag, peers, wan.interface, float(params.get("loss") or 0.0))
        why = "no netem on the site" if no_netem else "no interface for netem"
        self._install("wan", install, undo, f"degrade (loss={float(params.get('loss') or 0):g} emulated by {kind} "
                                            f"random drop each way, {why}: {', '.join(peers)})", tag)

    def _do_reset(self) -> None:
        self._remove("wan")

    # processes

    def _pattern(self) -> str:
        """The grant's pattern; never an empty one (pgrep -f '' matches every process of the site)."""
        pattern = self.grant.process.pattern or ""
        if not pattern.strip():
            raise FaultError(f"site {self.name}: no process pattern to find the workload by")
        return pattern

    def _pids(self) -> list[str]:
        pattern = self._pattern()
        out = self.shell.check(f"{pids_function(self.shell.host.marker)} _ec_pids {shlex.quote(pattern)}",
                               f"find processes matching {pattern!r}")
        pids = [p for p in out.split() if p.isdigit()]
        if not pids:
            raise FaultError(f"no process on {self.shell.name} matches {pattern!r}")
        return pids

    def _service(self, verb: str) -> None:
        unit = shlex.quote(self.grant.process.service or "")
        self.shell.check(f"systemctl {verb} {unit}", f"systemctl {verb} {self.grant.process.service}")

    def _do_kill(self) -> None:
        if self.grant.process.service:
            self._service("kill --signal=KILL")
            self.log.append(f"kill {self.name}: SIGKILL to {self.grant.process.service}")
            return
        # one round trip: the crash lands as close to the check's last acknowledged sale as ssh allows
        pattern = self._pattern()
        script = (f"{pids_function(self.shell.host.marker)} pids=$(_ec_pids {shlex.quote(pattern)}); "
                  f"[ -n \"$pids\" ] || exit {NOTHING_TO_KILL}; kill -KILL $pids || exit {KILL_REFUSED}; echo $pids")
        rc, out, err = self.shell.run(script, f"kill {pattern!r}")
        if rc == NOTHING_TO_KILL:
            raise FaultError(f"no process on {self.shell.name} matches {pattern!r}")
        if rc == KILL_REFUSED:  # e.g. another user's process without sudo: the crash did not happen
            raise FaultError(f"kill on {self.name}: SIGKILL refused: {_cause(err) or 'no output'} (sudo: true?)")
        if rc != 0:
            raise FaultError(f"kill on {self.name} failed (exit {rc}): {_cause(err) or _cause(out) or 'no output'}")
        pids = [p for p in out.split() if p.isdigit()]
        self.log.append(f"kill {self.name}: SIGKILL to pid {', '.join(pids)}")

    def _do_pause(self) -> None:
        if self.grant.process.service:
            unit = shlex.quote(self.grant.process.service)
            self._install("pause", f"systemctl kill --signal=STOP {unit}",
                          f"systemctl kill --signal=CONT {unit}; true", f"pause ({self.grant.process.service})")
            return
        pids = self._pids()
        self.paused_pids = pids
        self._install("pause", f"kill -STOP {' '.join(pids)}", f"kill -CONT {' '.join(pids)} 2>/dev/null; true",
                      f"pause (SIGSTOP to pid {', '.join(pids)})")

    def _do_resume(self) -> None:
        if not self._remove("pause"):
            self.log.append(f"resume {self.name}: nothing of ours paused")

    def _start_script(self) -> str:
        if self.grant.process.service:
            return f"systemctl start {shlex.quote(self.grant.process.service)}"
        # in a subshell: a statement like any other (it ends neither the script nor a `{ ...; }` with `&`)
        return f"( setsid nohup sh -c {shlex.quote(self.grant.process.start or '')} >/dev/null 2>&1 </dev/null & )"

    def _stop_script(self) -> str:
        if self.grant.process.service:
            return f"systemctl stop {shlex.quote(self.grant.process.service)}"
        pattern = shlex.quote(self._pattern())
        grace = int(STOP_GRACE_S * 10)
        if self.grant.process.stop:  # its supervisor stops it (the probe's keeper): wait until it is gone
            return (f"{pids_function(self.shell.host.marker)} {self.grant.process.stop}; i=0; "
                    f"while [ $i -lt {grace} ] && [ -n \"$(_ec_pids {pattern})\" ]; do sleep 0.1; i=$((i+1)); done; "
                    "true")
        # nothing running is fine (stopped already); SIGTERM, then SIGKILL those of them left after the
        # grace (only those: a process that started meanwhile is not this stop's)
        return (f"{pids_function(self.shell.host.marker)} pids=$(_ec_pids {pattern}); "
                "_ec_alive() { for p in $pids; do kill -0 $p 2>/dev/null && echo $p; done; }; "
                "if [ -n \"$pids\" ]; then kill -TERM $pids 2>/dev/null; "
                f"i=0; while [ $i -lt {grace} ] && [ -n \"$(_ec_alive)\" ]; do sleep 0.1; i=$((i+1)); done; "
                "left=$(_ec_alive); [ -z \"$left\" ] || kill -KILL $left 2>/dev/null; fi; true")

    def _do_stop(self) -> None:
        # a stop waits for the workload to end (STOP_GRACE_S at most): a systemd timer counts that too
        self._install("stop", self._stop_script(), self._start_script(), "stop", installing=STOP_GRACE_S + 1.0)

    def _do_start(self) -> None:
        if "stop" in self.active:
            self._remove("stop")  # its undo is the start
        else:
            self.shell.check(self._start_script(), "start")
            self.log.append(f"start {self.name}")

    def _do_restart(self) -> None:
        if self.grant.process.service:
            self._service("restart")
        else:
            self.shell.check(f"{self._stop_script()}; {self._start_script()}", "restart",
                             timeout=COMMAND_TIMEOUT_S + STOP_GRACE_S)
        self.log.append(f"restart {self.name}")
