"""Units of the host, TLS and web helpers: parsers fed with real outputs of ss, net-tools and BusyBox
netstat, procps ps and /proc; scopes; version constraints; header rules."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from conformance.measure.host.container import docker_cpu_seconds, docker_memory
from conformance.measure.host.edgehost import (EdgeHost, HostLacks, HostUnavailable, container_of, redact_spec,
                                               with_deadline)
from conformance.measure.host.facts import Facts, parse_facts
from conformance.measure.host.pkgversion import compare, parse_constraint, satisfies
from conformance.measure.host.processes import Proc, Processes, parse_proc_stat, parse_ps
from conformance.measure.host.site import Scope, resolve_site_root
from conformance.measure.host.sockets import Sockets, parse_netstat, parse_ss, split_address
from conformance.measure.web import header_mismatches, version_leaks
from conformance.model.errors import MeasurementError

SS = """\
Netid State  Recv-Q Send-Q      Local Address:Port  Peer Address:Port Process
udp   UNCONN 0      0               127.0.0.1:323        0.0.0.0:*     users:(("chronyd",pid=610,fd=5))
udp   UNCONN 0      0           127.0.0.53%lo:53         0.0.0.0:*     users:(("systemd-resolve",pid=501,fd=13))
tcp   LISTEN 0      128               0.0.0.0:22         0.0.0.0:*     users:(("sshd",pid=700,fd=3))
tcp   LISTEN 0      511                  [::]:80            [::]:*     users:(("nginx",pid=801,fd=7),("nginx",pid=800,fd=7))
tcp   LISTEN 0      4096    [::ffff:127.0.0.1]:8080             *:*
"""

NETSTAT = """\
Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name
tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      700/sshd: /usr/sbin
tcp6       0      0 :::80                   :::*                    LISTEN      800/nginx: master
udp        0      0 0.0.0.0:68              0.0.0.0:*                           455/dhclient
udp6       0      0 :::5353                 :::*                                -
"""

BUSYBOX_NETSTAT = """\
Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name
tcp        0      0 0.0.0.0:8080            0.0.0.0:*               LISTEN      1/httpd
udp        0      0 0.0.0.0:514             0.0.0.0:*                           7/syslogd
"""


def test_parse_ss():
    socks = parse_ss(SS)
    got = {(s.proto, s.address, s.port, s.pid, s.process) for s in socks}
    assert ("udp", "127.0.0.1", 323, 610, "chronyd") in got
    assert ("udp", "127.0.0.53%lo", 53, 501, "systemd-resolve") in got
    assert ("tcp", "0.0.0.0", 22, 700, "sshd") in got
    assert ("tcp", "::", 80, 801, "nginx") in got and ("tcp", "::", 80, 800, "nginx") in got
    hidden = [s for s in socks if s.port == 8080][0]
    assert hidden.pid is None and hidden.loopback
    assert [s for s in socks if s.port == 53][0].loopback


def test_parse_netstat_net_tools_and_busybox():
    socks = {(s.proto, s.port): s for s in parse_netstat(NETSTAT)}
    assert socks[("tcp", 22)].pid == 700 and socks[("tcp", 22)].process == "sshd:"
    assert socks[("tcp", 80)].address == "::" and socks[("tcp", 80)].pid == 800
    assert socks[("udp", 68)].pid == 455 and socks[("udp", 68)].process == "dhclient"
    assert socks[("udp", 5353)].pid is None
    bb = {(s.proto, s.port): s for s in parse_netstat(BUSYBOX_NETSTAT)}
    assert bb[("tcp", 8080)].pid == 1 and bb[("udp", 514)].process == "syslogd"


def test_parse_proc_stat_with_awkward_names():
    line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 1 0 100 1000 256" \
           " 18446744073709551615\t/usr/bin/my odd --flag "
    p = parse_proc_stat(line, page_size=4096, clk_tck=100)
    assert (p.pid, p.ppid, p.name) == (4242, 1, "my (odd) name")
    assert p.cpu == pytest.approx(2.0) and p.rss == 256 * 4096
    assert p.cmdline == "/usr/bin/my odd --flag"
    assert parse_proc_stat("garbage") is None


def test_parse_ps_names_with_spaces():
    text = "  1 init\n 77 Web Content\n__args__\n  1     0  1024 /sbin/init splash\n 77     1  2048 /usr/lib/x -b\n"
    procs = {p.pid: p for p in parse_ps(text)}
    assert procs[77].name == "Web Content" and procs[77].rss == 2048 * 1024 and procs[77].ppid == 1
    assert procs[1].cmdline == "/sbin/init splash"


def test_parse_facts():
    f = parse_facts("__edge_probe__\ntool ps /bin/busybox\ntool ss /usr/bin/ss\nproc\npsver ps: unrecognized option\n"
                    "uid 0\npid1 init\nclk 100\npage 4096\n")
    assert f.has("ss") and f.busybox("ps") and not f.procps and f.proc and f.uid == 0 and not f.timeout_ok


def test_split_address():
    assert split_address("[::]:80") == ("::", 80)
    assert split_address("*:53") == ("0.0.0.0", 53)
    assert split_address(":::22") == ("::", 22)
    assert split_address("0.0.0.0:*") is None


def _proc(pid, ppid, cmd="x"):
    return Proc(pid, ppid, cmd.split()[0], cmd)


def test_scope_tree_and_pattern():
    procs = [_proc(1, 0, "init"), _proc(10, 1, "site --data-dir /d/a"), _proc(11, 10, "worker"),
             _proc(12, 11, "helper"), _proc(20, 1, "site --data-dir /d/b")]
    assert {p.pid for p in Scope("tree", "t", root=10).select(procs)} == {10, 11, 12}
    assert {p.pid for p in Scope("pattern", "p", pattern=r"data-dir /d/b").select(procs)} == {20}
    assert Scope("tree", "t", root=99).select(procs) == []


def test_resolve_site_root_follows_a_restart_and_refuses_a_recycled_pid():
    site = SimpleNamespace(labels={"pid": 10, "data_dir": "/d/a"})
    procs = [_proc(1, 0, "init"), _proc(30, 1, "site --data-dir /d/a"), _proc(31, 30, "w --data-dir /d/a"),
             _proc(10, 1, "unrelated")]
    root, note = resolve_site_root(site, procs)
    assert root == 30 and "using pid 30" in note
    gone = [_proc(1, 0, "init")]
    root, note = resolve_site_root(site, gone)
    assert root is None and "not running" in note


def test_host_lacks_names_the_tools():
    host = EdgeHost("local://", prefer_psutil=False)
    host._facts = Facts(tools={"cat": "/bin/cat"}, proc=False)
    with pytest.raises(HostLacks, match=r"lacks `ss` and `netstat`: cannot list listening sockets"):
        Sockets.of(host).listeners()
    with pytest.raises(HostLacks, match=r"lacks /proc and procps `ps`"):
        Processes.of(host).snapshot()
    with pytest.raises(HostLacks, match=r"lacks `du`"):
        host.require("du", purpose="measure disk use")


def test_command_path_agrees_with_psutil():
    import psutil

    me = psutil.Process()
    cmd_host = EdgeHost("local://", prefer_psutil=False)
    procs = {p.pid: p for p in Processes.of(cmd_host).snapshot()}
    parent = me.parent()
    assert parent.pid in procs and procs[parent.pid].ppid == parent.ppid()
    socks = {(s.proto, s.port) for s in Sockets.of(cmd_host).listeners()[0]}
    mine = {("tcp", c.laddr.port) for c in psutil.net_connections("tcp") if c.status == "LISTEN"}
    assert mine <= socks | {("tcp", p) for _, p in socks}
    cpu = Processes.of(cmd_host).cpu_seconds([parent.pid])
    assert cpu[parent.pid] == pytest.approx(sum(parent.cpu_times()[:2]), abs=0.5)


def test_deadline_stops_waiting():
    started = time.monotonic()
    with pytest.raises(HostUnavailable, match="no answer within"):
        with_deadline(lambda: time.sleep(5), 0.2, "slow")
    assert time.monotonic() - started < 1.0
    host = EdgeHost("local://", timeout=1)
    _ = host.facts  # probes; the host has `timeout`, so the command itself is killed too
    started = time.monotonic()
    with pytest.raises(MeasurementError):
        host.run("sleep 30", timeout=1)
    assert time.monotonic() - started < 5


def test_versions():
    assert compare("1.10", "1.9") == 1 and compare("1:0.1", "9.9") == 1 and compare("1.0~rc1", "1.0") == -1
    assert satisfies("9.1-1", parse_constraint(">= 8.0, < 10"))
    assert not satisfies("2.0", parse_constraint("< 2"))
    assert satisfies("1.2", parse_constraint("1.2"))
    with pytest.raises(ValueError):
        parse_constraint(">> 1")


def test_header_rules():
    headers = {"content-type": "application/json; charset=utf-8", "Server": "Python/3.11 aiohttp/3.9.5"}
    assert header_mismatches(headers, {"Content-Type": "application/json"}) == []
    assert len(header_mismatches(headers, {"X-Frame-Options": True, "Server": False})) == 2
    assert version_leaks(headers) == ["Server: Python/3.11 aiohttp/3.9.5"]
    assert version_leaks({"Server": "nginx"}) == []


def test_docker_stats_helpers():
    v1 = {"memory_stats": {"usage": 50 * 2**20, "stats": {"total_inactive_file": 10 * 2**20, "cache": 12 * 2**20}},
          "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}}}
    v2 = {"memory_stats": {"usage": 30 * 2**20, "stats": {"inactive_file": 5 * 2**20}}}
    assert docker_memory(v1) == 40 * 2**20 and docker_memory(v2) == 25 * 2**20
    assert docker_memory({"memory_stats": {}}) is None
    assert docker_cpu_seconds(v1) == 2.5 and docker_cpu_seconds({}) is None


def test_container_of():
    assert container_of("docker://edge-1") == "edge-1"
    assert container_of("docker://root@edge-1?timeout=3") == "edge-1"
    assert container_of("ssh://u@h") is None
    assert redact_spec("ssh://u:pw@h") == "ssh://u:***@h"


def test_a_local_site_tree_is_read_from_its_own_processes_as_the_whole_table_gives_it(tmp_path):
    """site_processes reads a local site's tree from its processes alone (a thousand sites make the whole
    table a second's work per check): the same processes and figures as the table gives, a restarted or
    recycled pid still followed through the table."""
    import subprocess
    import sys

    from conformance.measure.host.site import site_processes

    data_dir = str(tmp_path / "site-data")
    script = ("import subprocess, sys, time; "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    site_proc = subprocess.Popen([sys.executable, "-c", script, "--data-dir", data_dir])
    try:
        host = EdgeHost("local://")
        site = SimpleNamespace(labels={"pid": site_proc.pid, "data_dir": data_dir})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:   # until the grandchild is there
            fast, notes = site_processes(site, host, Scope("tree", "t", root=site_proc.pid))
            if len(fast) == 2:
                break
            time.sleep(0.05)
        whole = Scope("tree", "t", root=site_proc.pid).select(Processes.of(host).snapshot())
        assert {p.pid for p in fast} == {p.pid for p in whole} and len(fast) == 2 and notes == []
        assert all(p.rss and p.cpu is not None and p.cmdline for p in fast)
        # a pid that is not the site any more (its data dir not on the command line): the whole table decides
        stranger = SimpleNamespace(labels={"pid": site_proc.pid, "data_dir": str(tmp_path / "other")})
        procs, notes = site_processes(stranger, host, Scope("tree", "t", root=site_proc.pid))
        assert procs == [] and "not running" in notes[0]
    finally:
        for child in __import__("psutil").Process(site_proc.pid).children(recursive=True):
            child.kill()
        site_proc.kill()
        site_proc.wait()
