"""One ownership rule for emulated deployments (issue 15): a deployment is the caller's when its run id
has a registry entry in the caller's state root, and its processes and containers carry that root.

* Labelled processes of another state root, or with no root and a run id our registry does not know,
  are never listed as ours, never stopped by `stop_run`/`stop_all`/`emulate down --all`.
* A deployment of our root whose supervisor was SIGKILLed is cleaned up by `emulate down --all`.
* Two deployments under two state roots: `emulate status` in A lists only A's, `emulate down --all`
  in A leaves B's running and healthy (test_ownership_emulated.py: real deployments).
* The fault gate: faults go only to a loopback control_url of a deployment of our root; a hand-written
  `emulation:` block (loopback but not ours, or not loopback) gets no fault request, and the
  requirement is not-measured, never a pass.

Every test uses state roots of its own (EDGE_CONFORMANCE_STATE_ROOT under tmp_path) and no Docker
daemon (DOCKER_HOST points nowhere), so nothing here can touch another run on this machine. All
traffic stays on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
import yaml

from conformance.emulation import list_running, procs, stop_all, stop_run
from conformance.emulation import state as emu_state
from conformance.faults import faults_for
from conformance.faults.emulated import EmulatedFaults, FaultError
from conformance.model.errors import NotMeasured
from conformance.model.target import Site, Target
from tests.emulation.ownership import cli, root_env, run_id
from tests.helpers.waits import wait_for

class Labelled:
    """A process of ours labelled with `run_id` (and the state root `root`, or none): a linkd, which
    exits on stdin EOF or when its parent goes."""

    def __init__(self, run_id: str, root: Path | None):
        env = root_env(root)
        env[procs.RUN_ID_ENV] = run_id
        self.proc = subprocess.Popen([sys.executable, "-m", "conformance.emulation.linkd", "--run-id", run_id],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env)
        line = self.proc.stdout.readline()
        assert json.loads(line)["ready"] is True, line
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def labelled():
    started: list[Labelled] = []

    def start(run_id: str, root: Path | None) -> Labelled:
        proc = Labelled(run_id, root)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


# ----------------------------------------------------------------------------------- the state root


def test_the_state_root_comes_from_the_environment_and_labels_every_child(tmp_path, monkeypatch):
    root = tmp_path / "link-target"
    root.mkdir()
    (tmp_path / "via-link").symlink_to(root)
    monkeypatch.setenv(emu_state.ROOT_ENV, str(tmp_path / "via-link"))
    assert emu_state.runtime_root() == tmp_path / "via-link"
    assert emu_state.root_label() == str(root.resolve())  # the label is the real path
    assert emu_state.runs_dir().parent == tmp_path / "via-link"
    assert emu_state.default_state_dir("r1") == tmp_path / "via-link" / "state" / "r1"
    env = procs.child_env("r1")
    assert env[procs.RUN_ID_ENV] == "r1" and env[emu_state.ROOT_ENV] == str(root.resolve())


# ----------------------------------------------------------------------- processes of other roots


def test_processes_of_another_root_are_not_ours(roots, labelled):
    a, b = roots
    run_a, run_b = run_id("a"), run_id("b")
    theirs = labelled(run_b, b)
    mine = labelled(run_a, a)  # a leftover of our root without a registry entry: still ours by its label
    assert procs.label_of(psutil.Process(theirs.pid)) == (run_b, str(b.resolve()))

    assert run_b not in procs.find_labelled()  # default: the caller's root
    assert [p.pid for p in procs.find_labelled(run_b, root=b)[run_b]] == [theirs.pid]
    own = {r.run_id: r for r in list_running()}
    assert run_b not in own and own[run_a].ours and own[run_a].processes == [mine.pid]

    shown = {r.run_id: r for r in list_running(others=True)}
    assert shown[run_b].ours is False and shown[run_b].state_root == str(b.resolve())
    assert shown[run_b].processes == [theirs.pid]

    assert stop_run(run_b) is False
    assert stop_all(timeout=5) == [run_a]
    wait_for(lambda: not mine.alive(), 10, "our own leftover to be stopped")
    time.sleep(0.2)
    assert theirs.alive(), "a process of another state root was stopped"


def test_an_unlabelled_root_is_ours_only_through_our_registry(roots, labelled):
    """A process with a run id but no root label (an older version's) is adopted only when our
    registry knows its run id; otherwise it is nobody's we know: shown, never stopped."""
    a, _ = roots
    unknown, known = run_id("legacy-unknown"), run_id("legacy-known")
    stranger = labelled(unknown, None)
    orphan = labelled(known, None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    emu_state.write_entry({"run_id": known, "pid": dead.pid, "topology": "small", "control_url": None,
                           "state_dir": str(a / "state" / known), "owns_state_dir": True, "detached": True})
    (a / "state" / known).mkdir(parents=True)

    own = {r.run_id: r for r in list_running()}
    assert unknown not in own
    assert own[known].processes == [orphan.pid] and not own[known].alive  # the supervisor is gone
    others = {r.run_id: r for r in list_running(others=True) if not r.ours}
    assert others[unknown].state_root is None and others[unknown].processes == [stranger.pid]

    assert stop_run(unknown) is False
    assert set(stop_all(timeout=5)) == {known}
    wait_for(lambda: not orphan.alive(), 10, "the adopted leftover to be stopped")
    assert emu_state.read_entry(known) is None and not (a / "state" / known).exists()
    time.sleep(0.2)
    assert stranger.alive(), "a process no registry of ours knows was stopped"


def test_emulate_status_and_down_in_a_root_touch_only_that_root(roots, labelled):
    a, b = roots
    run_b = run_id("cli-b")
    theirs = labelled(run_b, b)
    status = cli("emulate", "status", "--json", root=a)
    assert status.returncode == 0, status.stderr
    assert run_b not in {r["run_id"] for r in json.loads(status.stdout)}
    text = cli("emulate", "status", root=a).stdout
    assert run_b not in text and "other state roots not shown" in text
    others = cli("emulate", "status", "--others", root=a).stdout
    assert run_b in others and "not ours" in others and str(b.resolve()) in others

    down = cli("emulate", "down", run_b, root=a)
    assert down.returncode == 2 and "belongs to another state root" in down.stderr, down.stderr
    down = cli("emulate", "down", "--all", root=a)
    assert down.returncode == 0 and run_b not in down.stdout, down.stdout + down.stderr
    assert theirs.alive()
    status_b = json.loads(cli("emulate", "status", "--json", root=b).stdout)
    assert [r["run_id"] for r in status_b] == [run_b] and status_b[0]["ours"] is True


# ----------------------------------------------------------------------------------- the fault gate


class Counter:
    """A loopback HTTP server that answers 200 {} to everything and counts the requests: a stand-in
    control API (or an HTTP proxy) that would accept any fault."""

    def __init__(self):
        self.requests: list[tuple[str, str]] = []
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                counter.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b'{"ok": true, "status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def faults(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def counter():
    c = Counter()
    yield c
    c.close()


def test_faults_to_a_control_url_that_is_not_ours_are_refused_before_any_request(roots, counter):
    faults = EmulatedFaults(counter.url, timeout=2)
    for action in (lambda: faults.partition("store-1"), lambda: faults.heal("store-1"),
                   lambda: faults.kill("store-1"), lambda: faults.degrade("store-1", delay_ms=50)):
        with pytest.raises(NotMeasured, match=r"fault refused: control_url .* is not an emulated deployment "
                                              r"of this state root") as info:
            action()
        assert "EDGE_CONFORMANCE_STATE_ROOT" in info.value.remedy
    with pytest.raises(NotMeasured, match="not on this machine's loopback"):
        EmulatedFaults("http://192.0.2.1:8080", timeout=1).partition("store-1")  # TEST-NET-1: never sent
    with pytest.raises(NotMeasured, match="not on this machine's loopback"):
        EmulatedFaults("http://localhost:1", timeout=1).kill("store-1")  # names are not loopback literals
    with pytest.raises(NotMeasured, match="not on this machine's loopback"):
        EmulatedFaults("http://192.0.2.1:8080", timeout=1).status()  # nor reads
    assert counter.requests == []
    assert faults.status() == {"ok": True, "status": "ok"}  # a read of a loopback URL is not a fault
    assert counter.faults() == []


def test_faults_reach_a_deployment_of_our_root_and_only_with_its_run_id(roots, counter, labelled):
    """The same stand-in, registered in our root with a live supervisor: the gate lets faults through."""
    run = run_id("gate")
    supervisor = labelled(run, roots[0])
    emu_state.write_entry({"run_id": run, "pid": supervisor.pid, "control_url": counter.url, "detached": True})
    EmulatedFaults(counter.url + "/", timeout=2).partition("store-1", mode="drop")
    assert counter.faults() == [("POST", "/sites/store-1/partition")]
    EmulatedFaults(counter.url, timeout=2, run_id=run).heal("store-1")
    with pytest.raises(NotMeasured, match=f"run other-run at {counter.url} is not"):
        EmulatedFaults(counter.url, timeout=2, run_id="other-run").kill("store-1")
    assert len(counter.faults()) == 2

    # Its supervisor gone (the port could be anyone's now): an error, and still no request.
    supervisor.stop()
    with pytest.raises(FaultError, match="supervisor .* is gone"):
        EmulatedFaults(counter.url, timeout=2).kill("store-1")
    assert len(counter.faults()) == 2


def test_faults_for_a_hand_written_emulation_block_are_not_measured(roots, counter):
    site = Site(name="store-1", role="edge", endpoints={"api": counter.url})
    target = Target(name="hand", sites=[site], emulation={"run_id": "hand-1", "backend": "local",
                                                          "control_url": counter.url})
    faults = faults_for(target, site, allow_real=False)
    with pytest.raises(NotMeasured, match="fault refused"):
        with faults.partitioned():
            pass  # never reached
    assert counter.faults() == []


PROFILE = """\
id: ownership-test
version: "1"
title: The fault gate (issue 15)
requirements:
  - id: OWN-RES-01
    title: the site keeps serving while its WAN is cut
    level: must
    check: resilience.partition
    applies_to: edge
    params: {duration: 1 s, rate: 5, workloads: [], cut_mode: hold}
    expect: availability >= 0.99
    source: "assumed: a test of the harness"
"""


def hand_written_target(path: Path, control_url: str, site_url: str) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "hand-written",
        "emulation": {"run_id": "hand-written-1", "backend": "local", "topology": "retail",
                      "control_url": control_url},
        "sites": [{"name": "central", "role": "central", "endpoints": {"api": site_url}},
                  {"name": "store-1", "role": "edge", "uplink": "central", "endpoints": {"api": site_url}}],
    }, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["loopback-not-ours", "not-loopback"])
def test_a_hand_written_emulation_block_cannot_inject_faults_in_a_run(roots, counter, tmp_path, where):
    """The real `edge-conformance run`: the must is not-measured (exit 3, incomplete), and the stand-in
    control API, which would have accepted the partition and let the must pass, got no fault. The
    non-loopback URL is routed to the counter through http_proxy, so a request would be counted
    there instead of leaving this machine."""
    site = Counter()  # the "site": answers /health 200, so a partition that did nothing would pass
    try:
        extra = {}
        control = counter.url
        if where == "not-loopback":
            control = "http://192.0.2.1:8080"
            extra = {"http_proxy": counter.url, "HTTP_PROXY": counter.url, "no_proxy": "127.0.0.1,localhost,::1",
                     "NO_PROXY": "127.0.0.1,localhost,::1"}
        (tmp_path / "own.yaml").write_text(PROFILE, encoding="utf-8")
        target = hand_written_target(tmp_path / "hand.yaml", control, site.url)
        out = tmp_path / "out"
        done = cli("run", "--profile", tmp_path / "own.yaml", "--target", target, "--suite", "resilience",
                   "--out", out, root=roots[0], timeout=120, **extra)
        results = json.loads((out / "results.json").read_text())
        entry = next(r for r in results["requirements"] if r["id"] == "OWN-RES-01" and r["site"] == "store-1")
        assert entry["status"] == "not-measured", entry
        assert "fault refused" in entry["ended"]["reason"], entry["ended"]
        assert entry["ended"]["remedy"], entry["ended"]
        assert results["verdict"] != "conformant" and done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
        assert counter.requests == [], counter.requests  # not a fault, not even a read
    finally:
        site.close()
