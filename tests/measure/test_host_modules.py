"""The host reading modules (conformance/measure/host/) against a fake host: a real EdgeHost whose
testinfra host answers commands from a table, so every variant (systemd, OpenRC, upstart, SysV; procps
or /proc; ss or netstat ...) is exercised without the machine having it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conformance.measure.host.clock import Clock
from conformance.measure.host.disk import disk_used, free_space
from conformance.measure.host.edgehost import EdgeHost, HostLacks
from conformance.measure.host.facts import Facts
from conformance.measure.host.file import File
from conformance.measure.host.package import Package
from conformance.measure.host.processes import LocalProcesses, ProcProcesses, Processes, PsProcesses
from conformance.measure.host.service import (OpenRCService, Service, SysvService, SystemdService,
                                              UpstartService)
from conformance.measure.host.site import Scope
from conformance.measure.host.sockets import CommandSockets, LocalSockets, Sockets, site_listeners
from conformance.measure.host.sysctl import Sysctl, as_number, same_value
from conformance.model.errors import MeasurementError


class FakeTestinfra:
    """What EdgeHost uses of a testinfra host: run() answering from `answers` (the first key found in
    the command wins), and the service/file/package/sysctl modules as plain objects."""

    def __init__(self, answers=None, services=None, files=None, packages=None, sysctls=None):
        self.answers = answers or {}
        self.services, self.files = services or {}, files or {}
        self.packages, self.sysctls = packages or {}, sysctls or {}
        self.commands: list[str] = []

    def run(self, script):
        self.commands.append(script)
        for key, (rc, out) in self.answers.items():
            if key in script:
                return SimpleNamespace(rc=rc, stdout=out, stderr="" if rc == 0 else "failed")
        return SimpleNamespace(rc=127, stdout="", stderr="not found")

    def service(self, name):
        return self.services[name]

    def file(self, path):
        return self.files.get(path) or SimpleNamespace(exists=False)

    def package(self, name):
        return self.packages[name]

    def sysctl(self, key):
        if key not in self.sysctls:
            raise AssertionError(f"sysctl: cannot stat /proc/sys/{key}")
        return self.sysctls[key]


def fake_host(tools=(), answers=None, **kwargs) -> tuple[EdgeHost, FakeTestinfra]:
    host = EdgeHost("ssh://fake", prefer_psutil=False)
    facts = {k: kwargs.pop(k) for k in list(kwargs) if k in Facts.__dataclass_fields__}
    host._facts = Facts(tools={t: f"/usr/bin/{t}" for t in tools}, **facts)
    host._host = FakeTestinfra(answers, **kwargs)
    return host, host._host


# ---------------------------------------------------------------------------------------------
# service: the init system is chosen once, from the facts


class FakeService:
    def __init__(self, running, enabled=True):
        self.is_running = running
        self._enabled = enabled

    @property
    def is_enabled(self):
        if isinstance(self._enabled, Exception):
            raise self._enabled
        return self._enabled


@pytest.mark.parametrize("facts, cls, how", [
    ({"systemd_running": True, "tools": ("systemctl",)}, SystemdService, "systemd"),
    ({"tools": ("rc-service",)}, OpenRCService, "OpenRC"),
    ({"tools": ("initctl", "status")}, UpstartService, "upstart"),
])
def test_a_service_through_testinfra_under_the_hosts_init_system(facts, cls, how):
    tools = facts.pop("tools")
    host, _ = fake_host(tools, services={"edge": FakeService(True, False)}, **facts)
    service = Service.of(host, "edge")
    assert type(service) is cls
    state = service.state()
    assert (state.running, state.enabled, state.how) == (True, False, how)


def test_a_service_whose_init_system_cannot_tell_if_it_is_enabled():
    host, _ = fake_host(("systemctl",), systemd_running=True,
                        services={"edge": FakeService(False, AssertionError("no such unit"))})
    state = Service.of(host, "edge").state()
    assert (state.running, state.enabled) == (False, None)


def test_a_sysv_service_through_its_init_script_and_rc_links():
    host, infra = fake_host(("service",), files={"/etc/init.d/edge": SimpleNamespace(exists=True)},
                            answers={"service edge status": (0, "rc=0\n"), "ls /etc/rc": (0, "/etc/rc2.d/S01edge\n")})
    service = Service.of(host, "edge")
    assert isinstance(service, SysvService)
    state = service.state()
    assert (state.running, state.enabled, state.how) == (True, True, "SysV init script /etc/init.d/edge")
    infra.answers = {"service edge status": (0, "rc=3\n"), "ls /etc/rc": (0, "")}
    assert (service.state().running, service.state().enabled) == (False, False)
    infra.answers = {"service edge status": (0, "rc=4\n")}
    with pytest.raises(MeasurementError, match="cannot tell"):
        service.state()


def test_a_host_without_an_init_system_to_ask_is_named_as_such():
    host, _ = fake_host(("systemctl",), pid1="sh")
    with pytest.raises(HostLacks, match="systemd is installed but not running .PID 1 is `sh`"):
        Service.of(host, "edge")
    host, _ = fake_host(("service",))  # no /etc/init.d/edge
    with pytest.raises(HostLacks, match="lacks an init system"):
        Service.of(host, "edge")
    host, _ = fake_host(("service",), files={"/etc/init.d/bad name": SimpleNamespace(exists=True)})
    with pytest.raises(HostLacks, match="lacks an init system"):  # not a name a script can have
        Service.of(host, "bad name")


# ---------------------------------------------------------------------------------------------
# sysctl


def test_a_sysctl_is_read_from_proc_sys_then_through_sysctl():
    host, infra = fake_host(("sysctl",), proc=True,
                            answers={"cat /proc/sys/net/ipv4/tcp_rmem": (0, "4096\t131072   6291456\n")},
                            sysctls={"kernel.pid_max": 4194304})
    assert Sysctl(host, "net.ipv4.tcp_rmem").value == "4096 131072 6291456"
    assert Sysctl(host, "kernel.pid_max").value == "4194304"  # cat failed: testinfra's sysctl answers
    with pytest.raises(MeasurementError, match=r"no sysctl vm.nope \(/proc/sys/vm/nope does not exist\)"):
        _ = Sysctl(host, "vm.nope").value
    with pytest.raises(MeasurementError, match="is not a sysctl key"):
        Sysctl(host, "kernel.pid_max; reboot")
    bare, _ = fake_host(())
    with pytest.raises(HostLacks, match="lacks /proc/sys and `sysctl`"):
        _ = Sysctl(bare, "kernel.pid_max").value


def test_sysctl_values_compare_as_text_and_count_as_numbers():
    assert as_number("1") == 1.0 and as_number("-2.5") == -2.5 and as_number("4096 87380") is None
    assert same_value("1", True) and same_value("0", False) and not same_value("1", False)
    assert same_value("4096 87380", "4096   87380") and same_value("12", 12)


# ---------------------------------------------------------------------------------------------
# clock


def test_the_clock_offset_is_bracketed_by_ours(monkeypatch):
    import conformance.measure.host.clock as clock_module

    ticks = iter([100.0, 100.2] * 3)
    monkeypatch.setattr(clock_module.time, "time", lambda: next(ticks))
    host, _ = fake_host((), answers={"date +%s.%N": (0, "100.600000000\n")})
    offset, uncertainty = Clock(host).offset()
    assert offset == pytest.approx(0.5) and uncertainty == pytest.approx(0.1)


def test_a_clock_without_nanoseconds_and_one_that_answers_nonsense():
    host, infra = fake_host((), answers={"date +%s.%N": (0, "1700000000.%N\n")})  # BusyBox date
    _, uncertainty = Clock(host).sample()
    assert uncertainty >= 0.5
    infra.answers = {"date +%s.%N": (0, "Thu Jan  1\n")}
    with pytest.raises(MeasurementError, match="answered"):
        Clock(host).sample()


def test_what_ntp_says_of_the_clock():
    chrony = "Leap status     : Normal\nSystem time     : 0.000012345 seconds fast of NTP time\n"
    host, _ = fake_host(("chronyc",), answers={"chronyc -n tracking": (0, chrony)})
    ntp = Clock(host).ntp()
    assert ntp.offset == pytest.approx(0.000012345) and ntp.synchronized is True and ntp.notes
    host, _ = fake_host(("timedatectl",), systemd_running=True,
                        answers={"timedatectl show": (0, "no\n")})
    ntp = Clock(host).ntp()
    assert ntp.offset is None and ntp.synchronized is False
    assert Clock(fake_host(())[0]).ntp().synchronized is None


# ---------------------------------------------------------------------------------------------
# processes and sockets: the way of reading is chosen once


PROC_STAT = ("1 (init) S 0 1 1 0 -1 0 0 0 0 0 100 50 0 0 20 0 1 0 1 1000 200 0\t/sbin/init\n"
             "42 (edge) S 1 42 42 0 -1 0 0 0 0 0 300 100 0 0 20 0 1 0 1 1000 512 0\tedge --serve\n")


def test_the_process_table_variant_follows_the_facts():
    assert isinstance(Processes.of(EdgeHost("local://", prefer_psutil=True)), LocalProcesses)
    assert isinstance(Processes.of(fake_host(("ps",), procps=True)[0]), PsProcesses)
    assert isinstance(Processes.of(fake_host(("ps",), procps=False, proc=True)[0]), ProcProcesses)
    assert isinstance(Sockets.of(EdgeHost("local://", prefer_psutil=True)), LocalSockets)
    assert isinstance(Sockets.of(fake_host(())[0]), CommandSockets)


def test_processes_from_proc_leave_out_the_harness_own_shell():
    host, _ = fake_host(("tr",), proc=True)
    own = f"77 (sh) S 1 77 77 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1000 10 0\tsh -c : {host.marker}; for d in\n"
    host._host.answers = {"for d in /proc/[0-9]*": (0, PROC_STAT + own)}
    procs = {p.pid: p for p in Processes.of(host).snapshot()}
    assert sorted(procs) == [1, 42]
    assert procs[42].cpu == pytest.approx(4.0) and procs[42].rss == 512 * 4096 and procs[42].ppid == 1


def test_whole_host_cpu_and_memory_from_proc():
    meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n"
    host, _ = fake_host((), proc=True, answers={"/proc/stat": (0, "cpu  100 0 100 700 100 0 0 0 0 0\n"),
                                                "cat /proc/meminfo": (0, meminfo)})
    table = Processes.of(host)
    assert table.busy_cpu_seconds() == pytest.approx(2.0)  # user + system, not idle or iowait
    assert table.memory_used() == 600 * 1024
    assert table.threads([1]) is None  # not visible through commands


def test_sockets_through_ss_then_netstat():
    ss = "Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port\ntcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n"
    host, infra = fake_host(("ss", "netstat"), answers={"ss -ltun": (0, ss)})
    socks, notes = Sockets.of(host).listeners()
    assert [(s.proto, s.port, s.pid) for s in socks] == [("tcp", 22, None)]
    assert notes == ["host ssh://fake: ss shows no socket owners (not root?)"]
    netstat = ("Proto Recv-Q Send-Q Local Address Foreign Address State PID/Program name\n"
               "tcp 0 0 0.0.0.0:80 0.0.0.0:* LISTEN 9/nginx\n")
    infra.answers = {"ss -ltun": (1, ""), "netstat -ltunp": (0, netstat)}
    socks, notes = Sockets.of(host).listeners()
    assert [(s.port, s.pid, s.process) for s in socks] == [(80, 9, "nginx")] and notes == []


def _listening_child(tmp_path, name):
    """A child that listens on a TCP port of its own (and its parent, to be a process tree)."""
    import subprocess
    import sys
    import time

    ready = tmp_path / f"{name}.port"
    code = ("import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "open(sys.argv[1], 'w').write(str(s.getsockname()[1])); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ready)])
    for _ in range(500):
        if ready.exists() and ready.read_text():
            return proc, int(ready.read_text())
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("the listening child did not start")


def test_a_local_site_sockets_are_read_from_its_own_processes_only(tmp_path, monkeypatch):
    import psutil

    site_proc, site_port = _listening_child(tmp_path, "site")
    neighbour, neighbour_port = _listening_child(tmp_path, "neighbour")
    try:
        # beside a thousand sites the whole machine's socket table costs a second per check: not read
        def whole_table(*args, **kwargs):
            raise AssertionError("the whole machine's socket table was read for one site")
        monkeypatch.setattr(psutil, "net_connections", whole_table)
        host = EdgeHost("local://", prefer_psutil=True)
        site = SimpleNamespace(name="s1", labels={"pid": site_proc.pid})
        socks, notes = site_listeners(site, host, Scope("tree", "site process tree", root=site_proc.pid))
        assert [(s.proto, s.port, s.pid) for s in socks] == [("tcp", site_port, site_proc.pid)], socks
        assert neighbour_port not in {s.port for s in socks} and notes == []
        site_proc.kill()
        site_proc.wait()
        with pytest.raises(MeasurementError, match="no process of site process tree is running"):
            site_listeners(site, host, Scope("tree", "site process tree", root=site_proc.pid))
    finally:
        for p in (site_proc, neighbour):
            p.kill()
            p.wait()


# ---------------------------------------------------------------------------------------------
# packages, files, disks


def test_a_package_database_that_is_a_busybox_applet_is_refused():
    class AlpinePackage:
        is_installed, version = True, "1.0"

    host, _ = fake_host((), packages={"edge": AlpinePackage()})
    with pytest.raises(HostLacks, match="lacks a package database"):
        Package(host, "edge")
    host._facts.tools["apk"] = "/bin/busybox"
    with pytest.raises(HostLacks, match="lacks a package database"):  # a BusyBox apk is no database
        Package(host, "edge")
    host._facts.tools["dpkg-query"] = "/usr/bin/dpkg-query"  # testinfra still picked apk: refused
    with pytest.raises(HostLacks, match="BusyBox applet"):
        Package(host, "edge")
    host._facts.tools["apk"] = "/sbin/apk"
    pkg = Package(host, "edge")
    assert pkg.installed and pkg.version == "1.0"


def test_a_files_mode_is_the_mode_of_what_a_link_points_to():
    link = SimpleNamespace(exists=True, is_symlink=True, linked_to="/etc/real", mode=0o777, user="root")
    host, _ = fake_host((), files={"/etc/link": link, "/etc/real": SimpleNamespace(mode=0o640)},
                        answers={"head -c": (0, "site: a\n")})
    f = File(host, "/etc/link")
    assert f.exists and f.mode == 0o640 and f.user == "root" and f.content == "site: a\n"
    assert not File(host, "/etc/none").exists


def test_free_and_used_disk_space_through_df_and_du():
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 1000 600 400 60% /\n"
    host, _ = fake_host(("df", "du"), answers={"df -Pk": (0, df), "du -sk": (0, "12\t/a\n30\t/b\n")})
    assert free_space(host, "/") == (400 * 1024, 1000 * 1024)
    assert disk_used(host, ["/a", "/b"]) == 42 * 1024
    with pytest.raises(HostLacks, match="lacks `du`"):
        disk_used(fake_host(())[0], ["/a"])
