"""A run's load spread over Locust workers from the CLI (engine/loadspread.py, docs/load.md), against a
real target (a small aiohttp server on 127.0.0.1, tests/helpers/servers/loopback.py):

* `--load-workers 2`: each load measurement has a master and two worker processes on this machine; the
  scope records it and names it in changed_by;
* `--load-remote-workers 1 --load-master 127.0.0.1:PORT` with a worker started beforehand as the docs
  say (`python -m conformance.measure.load --join 127.0.0.1:PORT --again`): each of the run's two load
  measurements has the local worker and the joined one (the joiner comes back for the second master),
  and the joiner stops cleanly on SIGTERM (the worker waiting for a third master with it).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from tests.helpers.cli import run_edge, write_profile, write_target
from tests.helpers.results import entry
from tests.helpers.servers import script_server

SITE = "lab-1"


@pytest.fixture(scope="module")
def server():
    with script_server("loopback") as url:
        yield url


def _profile(path, ids=("S-1",)):
    return write_profile(path, [{"id": rid, "level": "must", "check": "load.sustained",
                                 "params": {"rate": 60, "duration": "3 s", "guard": {"loop_lag_p99_ms": 2000}},
                                 "expect": "error_ratio <= 1 %"} for rid in ids])


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_local_workers_from_the_cli(server, tmp_path):
    target = write_target(tmp_path / "t.yaml", {"api": f"{server}/"}, site=SITE)
    code, res, output = run_edge("--profile", _profile(tmp_path / "p.yaml"), "--target", target, "--suite", "load",
                                 "--load-workers", "2", out=tmp_path / "out", timeout=120)
    r = entry(res, "S-1", SITE)
    assert r["status"] == "pass", (r["status"], r.get("message"), output[-2000:])
    assert "generator: 2 process(es)" in " ".join(r["notes"]), r["notes"]
    assert res["scope"]["load"] == {"workers": 2} and "--load-workers 2" in res["scope"]["changed_by"]


def test_remote_workers_join_every_measurement_of_a_run(server, tmp_path):
    port = _port()
    joiner = subprocess.Popen([sys.executable, "-m", "conformance.measure.load", "--join", f"127.0.0.1:{port}",
                               "--again"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        target = write_target(tmp_path / "t.yaml", {"api": f"{server}/"}, site=SITE)
        code, res, output = run_edge("--profile", _profile(tmp_path / "p.yaml", ("S-1", "S-2")), "--target", target,
                                     "--suite", "load", "--load-remote-workers", "1", "--load-master",
                                     f"127.0.0.1:{port}", out=tmp_path / "out", timeout=180)
        for rid in ("S-1", "S-2"):  # one master per measurement: the joiner came back for the second
            r = entry(res, rid, SITE)
            assert r["status"] == "pass", (rid, r["status"], r.get("message"), output[-2000:])
            assert "generator: 2 process(es)" in " ".join(r["notes"]), r["notes"]
        assert "--load-remote-workers 1 (master 127.0.0.1:%d)" % port in res["scope"]["changed_by"]
        joiner.send_signal(signal.SIGTERM)
        _, err = joiner.communicate(timeout=20)
        assert joiner.returncode == 0 and "master done (worker exit 0)" in err and "load worker: stopped (" in err, \
            err[-2000:]
    finally:
        if joiner.poll() is None:
            joiner.kill()
            joiner.communicate()
