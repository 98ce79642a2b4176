"""Built-in faults on a real site (conformance/faults/onsite.py), fast: the target file's `faults:`
section, which source does an action (hooks win per pair), the scripts sent to the site (through a
fake shell), degrade without netem, and the detached dead-man remover for real on local://.

The end-to-end proof on a stand-in site (a container with NET_ADMIN) is test_onsite_real_target.py."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from conformance.faults import faults_for
from conformance.faults.hooks import HookFaults
from conformance.faults.onsite import (DEADMAN_WORD, NoNetem, OnSiteFaults, SiteShell, deadman_cancel,
                                       deadman_start, iptables_cut, nft_cut, resolve_peers)
from conformance.model.errors import ConfigError, NotMeasured
from conformance.model.target import load_target

SITE = """\
name: t
sites:
  - name: central
    role: central
    endpoints: {api: "http://10.9.0.1:8080"}
  - name: store-1
    role: edge
    uplink: central
    hosts: ["local://"]
"""


def target(tmp_path: Path, faults: str, extra: str = "") -> Path:
    path = tmp_path / "target.yaml"
    path.write_text(SITE + extra + "    faults:\n" + "".join(f"      {line}\n" for line in faults.splitlines()))
    return path


def load_error(tmp_path: Path, faults: str, extra: str = "") -> str:
    with pytest.raises(ConfigError) as err:
        load_target(target(tmp_path, faults, extra))
    return str(err.value)


# --- the target file -------------------------------------------------------------------------


def test_faults_section_is_parsed_with_defaults(tmp_path):
    t = load_target(target(tmp_path, "wan: {peer: uplink, interface: eth0}\nprocess: {pattern: 'edge --serve', "
                                     "start: 'edge --serve &'}\nmargin: 2 s"))
    g = t.site("store-1").faults
    assert g is not None and g.host == "local://" and g.margin == 2.0 and g.limit == 300.0 and not g.sudo
    assert g.wan.peers == ["uplink"] and g.wan.interface == "eth0" and g.wan.filter == "auto"
    assert g.process.pattern == "edge --serve" and g.process.start == "edge --serve &"
    assert t.redacted()["sites"][1]["faults"] == ["wan", "process"]
    assert resolve_peers(t, t.site("store-1"), ["uplink", "192.0.2.0/24"]) == ["10.9.0.1", "192.0.2.0/24"]


@pytest.mark.parametrize("faults, extra, message", [
    ("wan: {peer: 10.0.0.300}", "", 'target.yaml:11: sites[1].faults.wan.peer: "10.0.0.300" is not an IP address'),
    ("wan: {peer: [10.0.0.1, nowhere]}", "", "target.yaml:11: sites[1].faults.wan.peer[1]: \"nowhere\""),
    ("wan: {peer: 10.0.0.1, interface: 'eth0; reboot'}", "", "faults.wan.interface: \"eth0; reboot\" is not a"),
    ("process: {pattern: x, service: y}", "", "faults.process: give exactly one of pattern"),
    ("process: {service: y, start: z}", "", "faults.process.start: start goes with pattern"),
    ("process: {pattern: '(x'}", "", "faults.process.pattern: not a regular expression"),
    ("process: {pattern: x, start: 'run --token abc123'}", "", "faults.process.start: a literal secret"),
    ("margin: 0 s\nwan: {peer: 10.0.0.1}", "", "faults.margin: margin must be positive"),
    ("limit: '5'\nwan: {peer: 10.0.0.1}", "", "faults.limit: '5' needs a unit"),
    ("host: ssh://elsewhere\nwan: {peer: 10.0.0.1}", "", "faults.host: \"ssh://elsewhere\" is not part of any"),
    ("sudo: true", "", "faults: grants nothing"),
    ("wan: {peer: 10.0.0.1, filter: pf}", "", "faults.wan.filter"),
])
def test_faults_section_errors_are_one_located_line(tmp_path, faults, extra, message):
    text = load_error(tmp_path, faults, extra)
    assert message in text and "\n" not in text


def test_uplink_peer_needs_an_uplink(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(SITE.replace("    uplink: central\n", "") + "    faults:\n      wan: {peer: uplink}\n")
    with pytest.raises(ConfigError, match=r"faults.wan.peer: peer \"uplink\" needs the site's `uplink`"):
        load_target(path)


def test_faults_need_a_host(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(SITE.replace('    hosts: ["local://"]\n', "") + "    faults:\n      wan: {peer: uplink}\n")
    with pytest.raises(ConfigError, match="sites.1..faults: built-in faults run on one of the site's hosts"):
        load_target(path)


# --- which source does what ----------------------------------------------------------------------


def test_without_allow_faults_nothing_is_built(tmp_path, monkeypatch):
    t = load_target(target(tmp_path, "wan: {peer: 10.0.0.1}"))

    def refuse(*_a, **_k):
        raise AssertionError("a host was touched without --allow-faults")

    monkeypatch.setattr(SiteShell, "__init__", refuse)
    with pytest.raises(NotMeasured) as err:
        faults_for(t, "store-1", allow_real=False)
    assert err.value.remedy.startswith("pass --allow-faults")


def test_builtin_faults_and_hooks_precedence_per_pair(tmp_path):
    hooks = "    hooks:\n      partition: {command: 'true'}\n      heal: {command: 'true'}\n      kill: {command: 'true'}\n"
    t = load_target(target(tmp_path, "wan: {peer: 10.0.0.1}\nprocess: {pattern: edge}", extra=hooks))
    f = faults_for(t, "store-1", allow_real=True, run_id="RUN1")
    assert isinstance(f, OnSiteFaults) and f.kind == "onsite" and f.run_id == "RUN1"
    assert f._by_hook("partition") and f._by_hook("heal") and f._by_hook("kill")
    assert not f._by_hook("degrade") and not f._by_hook("pause")
    assert all(f.supports(a) for a in ("partition", "heal", "degrade", "reset", "kill", "pause", "resume"))
    # a pattern without `start` cannot restart, stop or start
    assert not f.supports("restart") and not f.supports("stop")
    with pytest.raises(NotMeasured) as err:
        f.require("restart")
    assert "no fault hook and no built-in fault for restart" in err.value.reason
    assert "faults.process.start" in err.value.remedy
    f.partition(duration=1)  # through the hook: runs `true`, touches no host
    assert f.log and f.log[-1].startswith("hook partition (true): exit 0")


def test_a_half_hooked_pair_goes_to_hooks_and_skips():
    """A partition hook without a heal hook: the pair is the hooks' (no built-in heal of a hook's cut)."""
    from conformance.model.target import Hook, Site, SiteFaults, Target, WanGrant

    s = Site(name="s", role="edge", hosts=["local://"], hooks={"partition": Hook("partition", "true", 5)},
             faults=SiteFaults(host="local://", wan=WanGrant(peers=["10.0.0.1"])))
    f = faults_for(Target(name="t", sites=[s]), s, allow_real=True)
    with pytest.raises(NotMeasured, match="no fault hook: heal"):
        f.require("partition", "heal")
    assert isinstance(f.hooks, HookFaults)


def test_a_site_without_faults_section_keeps_hooks(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(SITE)
    t = load_target(path)
    assert isinstance(faults_for(t, "store-1", allow_real=True), HookFaults)


# --- scripts ---------------------------------------------------------------------------------------


def test_nft_cut_is_one_table_of_ours_and_its_undo_deletes_only_it():
    install, undo = nft_cut("edgeconf:RUN-1:ab01", ["10.0.0.1", "2001:db8::/64"], "eth0", "drop")
    assert "table inet edgeconf_RUN_1_ab01 {" in install and "| nft -f -" in install
    assert 'ip daddr 10.0.0.1 oifname "eth0" meta l4proto tcp ct state established reject with tcp reset' in install
    assert 'ip6 saddr 2001:db8::/64 iifname "eth0" drop comment "edgeconf:RUN-1:ab01"' in install
    assert undo == "nft delete table inet edgeconf_RUN_1_ab01 >/dev/null 2>&1; true"
    hold, _ = nft_cut("edgeconf:RUN-1:ab01", ["10.0.0.1"], None, "hold")
    assert "reject" not in hold and "oifname" not in hold


def test_iptables_cut_deletes_exactly_its_tagged_rules():
    install, undo = iptables_cut("edgeconf:R:1", ["10.0.0.1"], None, "drop")
    assert install.startswith("iptables -w 5 -I FORWARD 1 -s 10.0.0.1 -m comment --comment edgeconf:R:1 -j DROP")
    # the reject comes out on top of the drop in OUTPUT (inserted last)
    assert install.index("-I OUTPUT 1 -d 10.0.0.1 -m comment") < install.index("-I OUTPUT 1 -d 10.0.0.1 -p tcp")
    assert "while iptables -w 5 -D OUTPUT -d 10.0.0.1 -m comment --comment edgeconf:R:1 -j DROP 2>/dev/null" in undo
    deletes = re.findall(r"-D \w+ [^;]*", undo)
    assert len(deletes) == 6 and all("--comment edgeconf:R:1" in d for d in deletes)


class FakeShell:
    """Answers like a site; records every script; fails the commands whose purpose has a `fail` needle."""

    def __init__(self, tools=("iptables", "tc", "setsid", "nohup", "pgrep"), fail: dict[str, str] | None = None):
        self.scripts: list[str] = []
        self._tools, self.fail, self.systemd, self.name = set(tools), fail or {}, False, "fake://site"

        class H:
            marker = "__edge_fake__"

        self.host = H()

    def tools(self):
        return self._tools

    def check(self, body: str, what: str, timeout=None) -> str:
        self.scripts.append(body)
        syntax = subprocess.run(["sh", "-n", "-c", body], capture_output=True, text=True)  # as the site's sh reads it
        assert syntax.returncode == 0, f"{what}: {syntax.stderr.strip()} in: {body}"
        for needle, error in self.fail.items():  # by what the command is for
            if needle in what:
                from conformance.faults import FaultError

                raise FaultError(f"{what} on {self.name} failed (exit 2): {error}")
        return "101 102\n" if "_ec_pids" in body and "kill -KILL $pids" in body else \
            ("101 102\n" if "_ec_pids" in body and "kill" not in body else "")

    def run(self, body: str, what: str, timeout=None) -> tuple[int, str, str]:
        from conformance.faults import FaultError

        try:
            return 0, self.check(body, what, timeout), ""
        except FaultError as exc:
            return 2, "", str(exc)


def onsite(tmp_path, faults: str, shell: FakeShell) -> OnSiteFaults:
    t = load_target(target(tmp_path, faults))
    f = faults_for(t, "store-1", allow_real=True, run_id="RUN")
    assert isinstance(f, OnSiteFaults)
    f.shell = shell  # type: ignore[assignment]
    return f


def test_partition_starts_its_deadman_before_the_rule_and_heal_cancels_it(tmp_path):
    shell = FakeShell()
    f = onsite(tmp_path, "wan: {peer: 10.0.0.1}\nmargin: 3 s", shell)
    with f.partitioned("hold", duration=2):
        pass
    install, heal = shell.scripts
    assert install.startswith("setsid nohup sh -c ': edgeconf-deadman edgeconf:RUN:")
    assert "; sleep 5; while iptables -w 5 -D" in install  # duration 2 s + margin 3 s, after the install
    assert install.index("sleep 5") < install.index("iptables -w 5 -I")
    assert "|| { rc=$?;" in install  # a failed install is undone at once
    assert "pgrep -f -- 'edgeconf-deadma[n] edgeconf:RUN:" in heal and "-D OUTPUT" in heal
    assert "dead-man (detached sleep) undoes it after 5 s" in f.log[0]
    assert "removed (tag edgeconf:RUN:" in f.log[1] and not f.active


def test_unknown_length_uses_limit_and_systemd_timer_when_systemd_runs(tmp_path):
    shell = FakeShell(tools=("nft", "systemd-run", "systemctl"))
    shell.systemd = True
    f = onsite(tmp_path, "wan: {peer: 10.0.0.1}\nlimit: 60 s\nmargin: 5 s", shell)
    f.partition("drop")
    assert shell.scripts[0].startswith("if systemd-run --quiet --collect --unit=edgeconf-RUN-")
    assert "--on-active=65s" in shell.scripts[0] and "| nft -f -" in shell.scripts[0]
    # systemd-run refused (no D-Bus, a sudo rule): the detached sleep after all
    assert "; then :; else setsid nohup sh -c ': edgeconf-deadman edgeconf:RUN:" in shell.scripts[0]
    f.heal()
    assert "systemctl stop edgeconf-RUN-" in shell.scripts[1] and "nft delete table inet edgeconf_RUN_" in shell.scripts[1]
    assert "pgrep -f -- 'edgeconf-deadma[n] edgeconf:RUN:" in shell.scripts[1]


def test_heal_that_cannot_reach_the_site_says_when_the_deadman_heals(tmp_path):
    shell = FakeShell(fail={"undo partition": "ssh: connect to host store: Connection timed out"})
    f = onsite(tmp_path, "wan: {peer: 10.0.0.1}\nmargin: 30 s", shell)
    from conformance.faults import FaultError

    with pytest.raises(FaultError, match=r"Connection timed out; the dead-man on the site undoes it within 3\d s"):
        with f.partitioned(duration=5):
            pass


def test_degrade_without_netem_is_not_measured_with_tc_s_answer_and_loss_falls_back(tmp_path):
    shell = FakeShell(fail={"netem on eth0": "Error: Specified qdisc kind is unknown."})
    f = onsite(tmp_path, "wan: {peer: 10.0.0.1, interface: eth0}", shell)
    with pytest.raises(NoNetem) as err:
        with f.degraded(delay_ms=30, duration=2):
            pass
    assert "the site's kernel has no netem: cannot add delay_ms=30" in err.value.reason
    assert "Specified qdisc kind is unknown." in err.value.reason
    assert "modprobe sch_netem" in err.value.remedy
    assert isinstance(err.value, NotMeasured) and not f.active
    shell.scripts.clear()
    with f.degraded(loss=0.05, duration=2):
        assert "-m statistic --mode random --probability 0.0500" in shell.scripts[-1]
    assert "emulated by iptables random drop each way, no netem on the site" in f.log[-2]


def test_degrade_with_netem_replaces_only_a_default_root_qdisc(tmp_path):
    shell = FakeShell()
    f = onsite(tmp_path, "wan: {peer: 10.0.0.1, interface: eth0}", shell)
    with f.degraded(delay_ms=30, jitter_ms=5, loss=0.01, bandwidth_bps=1_000_000):
        pass
    install, reset = shell.scripts
    assert "netem delay 30ms 5ms loss 1% rate 1000000bit" in install and "has a root qdisc of its own" in install
    assert "tc qdisc del dev eth0 root handle" in reset and "grep -q 'qdisc netem" in reset


def test_pause_signals_the_pids_found_and_its_deadman_resumes_them(tmp_path):
    shell = FakeShell()
    f = onsite(tmp_path, "process: {pattern: 'edge_workloads --role edge'}\nmargin: 2 s", shell)
    with f.paused(duration=1):
        pass
    find, pause, resume = shell.scripts
    assert "_ec_pids 'edge_workloads --role edge'" in find and "*__edge_fake__*|*edgeconf-deadman*" in find
    assert "sleep 3; kill -CONT 101 102" in pause and "kill -STOP 101 102" in pause
    assert "kill -CONT 101 102" in resume


# --- the dead-man remover for real (local://, no privileges: the undo touches a file) --------------


@pytest.mark.parametrize("systemd", [False, True], ids=["detached", "systemd-or-fallback"])
def test_deadman_fires_and_a_cancelled_one_does_not(tmp_path, systemd):
    """systemd=True: a transient timer where systemd runs (and we may), else (here: no systemd) the
    detached sleep it falls back to; either way the remover fires, and a cancelled one does not."""
    shell = SiteShell("local://")
    fired, cancelled = tmp_path / "fired", tmp_path / "cancelled"
    start1, _ = deadman_start(f"edgeconf:T{id(tmp_path)}:1", 1, f"touch {fired}", systemd=systemd)
    start2, handle2 = deadman_start(f"edgeconf:T{id(tmp_path)}:2", 1, f"touch {cancelled}", systemd=systemd)
    began = time.monotonic()
    shell.check(f"{start1} {start2} true", "start removers")
    assert time.monotonic() - began < 1.0  # detached: the command does not wait for them
    shell.check(deadman_cancel(handle2, shell.host.marker), "cancel")
    deadline = time.monotonic() + 5
    while not fired.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fired.exists() and 0.9 < time.monotonic() - began < 3.0
    time.sleep(0.3)
    assert not cancelled.exists()
    import psutil

    assert not [p for p in psutil.process_iter(["cmdline"]) if DEADMAN_WORD in " ".join(p.info["cmdline"] or [])
                and str(id(tmp_path)) in " ".join(p.info["cmdline"] or [])]


def test_stop_start_restart_with_a_pattern_and_its_start_command(tmp_path):
    shell = FakeShell()
    f = onsite(tmp_path, "process: {pattern: 'edge --serve', start: 'edge --serve >>/tmp/edge.log 2>&1'}\n"
                         "margin: 2 s", shell)
    assert all(f.supports(a) for a in ("kill", "pause", "resume", "restart", "stop", "start"))
    with f.stopped(duration=1):
        pass
    stop, start = shell.scripts
    # the dead-man starts it again 1 s + margin 2 s after the stop has ended (it waits for the stop's shell)
    assert "sleep 3; ( setsid nohup sh -c " in stop and "edge --serve >>/tmp/edge.log" in stop
    assert "while kill -0 \"$1\" 2>/dev/null; do sleep 0.2; done;" in stop and "edgeconf-deadman \"$$\"" in stop
    assert "kill -TERM $pids" in stop and "kill -KILL $left" in stop
    assert start.startswith("( setsid nohup sh -c 'edge --serve")
    f.restart()
    assert "kill -TERM $pids" in shell.scripts[-1] and "( setsid nohup sh -c" in shell.scripts[-1]
    f.kill()  # one round trip: find them and kill them in the same script
    assert "pids=$(_ec_pids 'edge --serve')" in shell.scripts[-1] and "kill -KILL $pids" in shell.scripts[-1]
    assert f.log[-1] == "kill store-1: SIGKILL to pid 101, 102"


def test_a_kill_that_the_site_refuses_is_an_error_not_a_crash(tmp_path):
    from conformance.faults import FaultError

    class Refusing(FakeShell):
        def run(self, body, what, timeout=None):
            self.scripts.append(body)
            return 4, "", "sh: kill: (101) - Operation not permitted"

    f = onsite(tmp_path, "process: {pattern: 'edge --serve'}", Refusing())
    with pytest.raises(FaultError, match=r"SIGKILL refused: sh: kill: \(101\) - Operation not permitted \(sudo: true\?\)"):
        f.kill()
    assert not any("SIGKILL to pid" in line for line in f.log)


def test_a_stop_through_the_workload_s_supervisor_waits_for_it_to_go(tmp_path):
    shell = FakeShell()
    f = onsite(tmp_path, "process: {pattern: 'edge --serve', start: 'edge --serve'}", shell)
    f.grant.process.stop = 'kill -USR2 "$(cat /tmp/k.pid)"'  # as a deployed probe's grant has it
    with f.stopped(duration=1):
        pass
    stop = shell.scripts[0]
    assert 'kill -USR2 "$(cat /tmp/k.pid)"' in stop and "kill -TERM $pids" not in stop
    assert "_ec_pids 'edge --serve'" in stop  # and it waits until the workload is gone
