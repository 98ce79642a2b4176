"""The process contract others code against: arguments, the ready line, stopping, and bad input."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

MODULE = "edge_workloads"


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", MODULE, *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def test_ready_line_and_clean_sigterm(env):
    central = env.central("c-ready")
    assert central.ready == {"ready": True, "port": central.port, "pid": central.proc.pid,
                             "role": "central", "name": "c-ready"}
    edge = env.edge("e-ready", central.url)
    assert edge.ready["role"] == "edge" and edge.ready["pid"] == edge.proc.pid
    assert edge.get("/ping").body == b"pong"
    assert edge.terminate() == 0
    assert central.terminate() == 0
    for site in (edge, central):
        assert "Traceback" not in site.stderr()
        assert site.proc.stdout.read() == b"", "stdout must carry only the ready line"


def test_exits_when_stdin_closes(env):
    central = env.central("c-stdin")
    central.proc.stdin.close()
    assert central.proc.wait(timeout=10) == 0
    assert "Traceback" not in central.stderr()


def test_edge_starts_and_serves_while_central_is_unreachable(env):
    link = env.link()   # refuses everything: a closed port
    link.set_mode("refuse")
    edge = env.edge("e-alone", link.url)
    assert edge.get("/ping").status == 200
    health = edge.get("/health")
    assert health.status == 200 and health.json()["status"] == "ok"
    assert edge.post("/echo", b"hello", headers={"Content-Type": "text/plain"}).body == b"hello"


@pytest.mark.parametrize("args, message", [
    (["--defects", "no-such-thing"], 'unknown defect "no-such-thing"'),
    (["--defects", "slow-pat"], 'did you mean "slow-path"'),
    (["--site-config", '{"cache_ttl": 1}'], "cache_ttl: unknown setting"),
    (["--site-config", '{"cache_ttl_s": -1}'], "cache_ttl_s: expected a number >= 0"),
    (["--site-config", "[1]"], "expected a JSON object"),
    (["--central-url", "ftp://x"], "expected http://HOST:PORT"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    base = ["--role", "edge", "--name", "e", "--data-dir", str(tmp_path), "--central-url", "http://127.0.0.1:9"]
    done = run_cli(*base, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


def test_edge_needs_central_url(tmp_path):
    done = run_cli("--role", "edge", "--name", "e", "--data-dir", str(tmp_path))
    assert done.returncode == 2 and "--central-url is required" in done.stderr


def test_one_site_per_data_dir(env):
    central = env.central("c-lock")
    done = run_cli("--role", "central", "--name", "other", "--data-dir", central.data_dir)
    assert done.returncode == 2
    assert f"is in use by pid {central.proc.pid}" in done.stderr


def test_all_defects_are_accepted(env):
    from edge_workloads.defects import DEFECTS

    link = env.link()
    edge = env.edge("e-all", link.url, defects=tuple(DEFECTS))
    health = edge.get("/health").json()
    assert health["defects"] == sorted(DEFECTS)
    start = time.monotonic()
    assert edge.terminate() == 0 and time.monotonic() - start < 5
