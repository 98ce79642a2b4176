"""The command path of host checks (what ssh:// and docker:// hosts get), exercised on this machine:
local:// answering through shell commands (EDGE_CONFORMANCE_LOCAL_COMMANDS=1), with the full userland
and with a minimal one (a PATH without ss, netstat, ps, df, du, find ...), where checks must either
work from /proc or give an error naming what the host lacks, never a wrong pass."""

from __future__ import annotations

import os
import shutil

from tests.helpers.cli import requirement as _req


REQS = [
    _req("PROC", "functional.process", "running == true and count == 2"),
    _req("PORT", "functional.port", "listening == true and owner_ok == true"),
    _req("PORTS", "security.listening_ports", "unexpected == 0"),
    _req("SECRETS", "security.secret_files", "world_readable == 0"),
    _req("MEM", "footprint.memory", "rss <= 150 MiB"),
    _req("CPU", "footprint.cpu", "cpu <= 0.5 cores", {"window": "0.5 s"}),
    _req("DISK", "footprint.disk", "used <= 1 MiB"),
    _req("FREE", "functional.disk_free", "free >= 1 MiB"),
    _req("PKG", "functional.package", "installed == true", {"name": "coreutils"}),
    _req("SVC", "functional.service", "running == true", {"name": "edge-agent"}),
    _req("TIME", "functional.time_sync", "offset <= 1 s"),
]


def _sites(fake_site, make_site):
    good = fake_site("--child", name="good")
    bad = fake_site("--child", "--extra-listen", name="bad")
    (bad.data_dir / "tls.key").write_text("secret")
    os.chmod(bad.data_dir / "tls.key", 0o644)
    (bad.data_dir / "blob").write_bytes(b"x" * 2_000_000)
    return good, bad, [make_site("good", good), make_site("bad", bad)]


def test_command_path_full_userland(fake_site, make_site, edge_run):
    good, bad, sites = _sites(fake_site, make_site)
    res = edge_run(REQS, sites, ["functional", "security", "footprint"], name="commands",
                   env={"EDGE_CONFORMANCE_LOCAL_COMMANDS": "1"})
    for rid in ("PROC", "PORT", "PORTS", "SECRETS", "MEM", "CPU", "DISK", "FREE", "PKG", "TIME"):
        assert res.status(rid, "good") == "pass", res.explain(rid, "good")
    for rid in ("PORTS", "SECRETS", "DISK"):
        assert res.status(rid, "bad") == "fail", res.explain(rid, "bad")
    assert f"tcp/{bad.info['extra_port']}" in res("PORTS", "bad")["message"]
    assert "tls.key" in res("SECRETS", "bad")["message"]
    # rss through ps agrees with the process tree (two python processes)
    assert 5 <= res.value("MEM", "good", "rss") <= 150


def test_command_path_minimal_host(fake_site, make_site, edge_run, tmp_path):
    # A userland with a shell's basics only: no ss/netstat, no procps, no df/du/find, no init system,
    # no package database, no timeout.
    bin_dir = tmp_path / "minimal-bin"
    bin_dir.mkdir()
    for tool in ("cat", "tr", "head", "date", "readlink", "id", "sed", "sh", "ls", "wc"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    good, bad, sites = _sites(fake_site, make_site)
    res = edge_run(REQS, sites[:1], ["functional", "security", "footprint"], name="minimal",
                   env={"EDGE_CONFORMANCE_LOCAL_COMMANDS": "1", "PATH": str(bin_dir)})
    # What /proc can answer still works ...
    for rid in ("PROC", "MEM", "CPU", "TIME"):
        assert res.status(rid, "good") == "pass", res.explain(rid, "good")
    # ... everything else is an error naming what the host lacks.
    lacks = {
        "PORT": "lacks `ss` and `netstat`",
        "PORTS": "lacks `ss` and `netstat`: cannot list listening sockets",
        "SECRETS": "lacks `find`",
        "DISK": "lacks `du`",
        "FREE": "lacks `df`",
        "PKG": "lacks a package database",
        "SVC": "lacks an init system",
    }
    for rid, text in lacks.items():
        r = res(rid, "good")
        assert r["status"] == "error", res.explain(rid, "good")
        assert text in r["message"], r["message"]
