"""Built-in faults on a stand-in REAL site: a container we start ourselves (NET_ADMIN, the site image)
running the reference edge workload as its probe, with a central container as its WAN peer. The faults
reach it ONLY through its testinfra host (docker://); what the tests observe they read with the Docker
SDK. Covered: partition really cuts the site from its peer (nft and iptables, drop and hold) and heal
restores it; only our tagged rules are ever removed (a foreign rule survives); the dead-man heals a cut
nobody heals after duration + margin; pause's dead-man resumes, stop's starts; kill, restart; degrade
without netem is not measured with the reason; nothing is applied without --allow-faults. Through the
whole harness: `edge-conformance run --allow-faults` measures resilience.partition through the built-in
cut (tagged with the run id of results.json) and finds resilience.degraded not measured, and a run
SIGKILLed mid-partition leaves a cut that the dead-man removes within the margin. Slow (the module
name) and marked docker: it skips without a Docker daemon.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conformance.emulation.docker.backend import free_port
from conformance.faults import faults_for
from conformance.faults.onsite import DEADMAN_WORD, NoNetem
from conformance.model.errors import NotMeasured
from conformance.model.target import load_target
from tests.helpers.cli import CLI, cli_env, run_edge
from tests.helpers.results import entries
from tests.helpers.waits import wait_for

pytestmark = pytest.mark.docker

LABEL = "io.edge-conformance.test"  # ours only: no harness label, so no sweep of the harness touches them
DURATION_S, MARGIN_S = 2.0, 2.0
PROBE = "conformance.emulation.docker.siteinit"  # the reference edge workload, as in the docker backend


class RealSite:
    def __init__(self, client, image: str, tmp: Path):
        self.client, self.tmp = client, tmp
        self.run = f"onsite-{os.getpid()}-{os.urandom(2).hex()}"
        labels = {LABEL: self.run}
        self.network = client.networks.create(f"edgeconf-test-{self.run}", driver="bridge", labels=labels)
        self.containers = []
        spec = {"name": "central", "role": "central", "workload": "central", "port": 8080}
        self.central = self._run(image, "central", labels, environment={"EDGE_CONFORMANCE_SITE": json.dumps(spec)})
        self.central.reload()
        self.peer = self.central.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
        # the store's main process only keeps it up: its workload (the probe) is started, killed and
        # restarted through the built-in faults; the harness reaches its API on a published port
        self.port = free_port()
        spec = {"name": "store-1", "role": "edge", "workload": "edge", "central_url": f"http://{self.peer}:8080",
                "port": 8080}
        self.store = self._run(image, "store", labels, entrypoint=["sleep", "infinity"], cap_add=["NET_ADMIN"],
                               environment={"EDGE_CONFORMANCE_SITE": json.dumps(spec)},
                               ports={"8080/tcp": ("127.0.0.1", self.port)})
        self.start = f"python3 -m {PROBE} >>/tmp/probe.log 2>&1"
        wait_for(self.reaches_peer, 30, "central answering the store")

    def _run(self, image: str, name: str, labels: dict, **kwargs):
        container = self.client.containers.run(image, name=f"edgeconf-test-{self.run}-{name}", labels=labels,
                                               network=self.network.name, init=True, detach=True, **kwargs)
        self.containers.append(container)
        return container

    def target(self, wan: dict | None = None, **faults) -> Path:
        grant = {"margin": f"{MARGIN_S:g} s", "wan": {"peer": "uplink", "interface": "eth0", **(wan or {})},
                 "process": {"pattern": PROBE, "start": self.start}, **faults}
        doc = {"name": "stand-in real site", "sites": [
            {"name": "central", "role": "central", "endpoints": {"api": f"http://{self.peer}:8080"}},
            {"name": "store-1", "role": "edge", "uplink": "central", "hosts": [f"docker://{self.store.name}"],
             "endpoints": {"api": f"http://127.0.0.1:{self.port}"}, "faults": grant}]}
        path = self.tmp / f"target-{os.urandom(2).hex()}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def faults(self, run_id: str, **kwargs):
        return faults_for(load_target(self.target(**kwargs)), "store-1", allow_real=True, run_id=run_id)

    def sh(self, command: str) -> tuple[int, str]:
        code, out = self.store.exec_run(["sh", "-c", command])
        return code, out.decode(errors="replace")

    def reaches_peer(self) -> bool:
        return self.sh(f"nc -z -w 1 {self.peer} 8080")[0] == 0

    def ruleset(self) -> str:
        """The firewall as rules: iptables-save's comment lines (a "Generated ... on <time>" header)
        are left out, or two dumps a second apart would differ."""
        out = self.sh("nft list ruleset 2>&1; iptables-save 2>&1")[1]
        return "\n".join(line for line in out.splitlines() if not line.startswith("#"))

    def deadmen(self) -> str:
        return self.sh(f"pgrep -af '{DEADMAN_WORD[:-1]}[{DEADMAN_WORD[-1]}]' || true")[1].strip()

    def remover_started(self) -> float:
        """When (time.monotonic() here) the oldest dead-man remover on the site started: the install of
        its fault, read from the site's own clock (/proc), so a slow `docker exec` does not blur it."""
        before = time.monotonic()
        code, out = self.sh(f"p=$(pgrep -of '{DEADMAN_WORD[:-1]}[{DEADMAN_WORD[-1]}]') && "
                            "echo $(cut -d' ' -f22 /proc/$p/stat) $(cut -d' ' -f1 /proc/uptime) $(getconf CLK_TCK)")
        after = time.monotonic()
        assert code == 0, out
        start, uptime, hz = out.split()
        return (before + after) / 2 - (float(uptime) - int(start) / int(hz))

    def await_probe(self, timeout: float, what: str) -> None:
        """Until the probe answers; else fail with its log and the site's processes."""
        try:
            wait_for(self.probe_healthy, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; probe log and processes: "
                                 f"{self.sh('tail -n 8 /tmp/probe.log; ps -eo pid,ppid,stat,args')[1]}") from None

    def probe_pids(self) -> list[str]:
        return self.sh(f"pgrep -f '^python3 -m {PROBE}' || true")[1].split()

    def probe_healthy(self, timeout: float = 2.0) -> bool:
        return self.sh("python3 -c \"import urllib.request; urllib.request.urlopen("
                       f"'http://127.0.0.1:8080/health', timeout={timeout:g})\"")[0] == 0

    def state(self, pid: str) -> str:
        return self.sh(f"cut -d' ' -f3 /proc/{pid}/stat")[1].strip()

    def close(self) -> None:
        for container in self.containers:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        try:
            self.network.remove()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(scope="module")
def realsite(docker_client, site_image, tmp_path_factory):
    site = RealSite(docker_client, site_image.tag, tmp_path_factory.mktemp("onsite"))
    try:
        code, out = site.sh("command -v nft iptables tc")
        if code != 0:
            pytest.fail(f"the site image lacks nft/iptables/tc (BASE_PACKAGES): {out}")
        site.sh(f"setsid nohup sh -c '{site.start}' >/dev/null 2>&1 </dev/null &")
        site.await_probe(30, "the store's probe answering")
        yield site
    finally:
        site.close()
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL}={site.run}"})


@pytest.mark.parametrize("kind, mode", [("nft", "drop"), ("iptables", "hold")])
def test_partition_cuts_the_site_from_its_peer_and_heal_removes_only_our_rules(realsite, kind, mode):
    # a foreign rule and a foreign table: never ours to touch
    assert realsite.sh("iptables -I OUTPUT -d 203.0.113.9 -m comment --comment someone-else -j DROP && "
                       "nft add table inet someone_else")[0] == 0
    run_id = f"RUN-{kind}"
    faults = realsite.faults(run_id, wan={"filter": kind})
    assert realsite.reaches_peer()
    with faults.partitioned(mode, duration=DURATION_S):
        assert not realsite.reaches_peer(), "the cut let a request to the peer through"
        assert f"edgeconf:{run_id}:" in realsite.ruleset()
        assert realsite.deadmen(), "no dead-man remover on the site"
    assert realsite.reaches_peer()
    rules = realsite.ruleset()
    assert f"edgeconf:{run_id}" not in rules and f"edgeconf_{run_id.replace('-', '_')}" not in rules
    assert "someone-else" in rules and "table inet someone_else" in rules
    assert not realsite.deadmen(), "heal left its dead-man running"
    assert any(f"partition ({mode}, {kind}: {realsite.peer})" in line for line in faults.log)
    realsite.sh("iptables -D OUTPUT -d 203.0.113.9 -m comment --comment someone-else -j DROP; "
                "nft delete table inet someone_else")


def test_deadman_heals_a_cut_nobody_heals(realsite):
    faults = realsite.faults("RUN-nobody")
    faults.partition("hold", duration=1.0)  # and never heal: as if the link to the site were lost
    installed = realsite.remover_started()
    assert not realsite.reaches_peer()
    wait_for(lambda: "edgeconf:RUN-nobody" not in realsite.ruleset() and "RUN_nobody" not in realsite.ruleset(),
             1.0 + MARGIN_S + 5, "the dead-man removing the cut", interval=0.1)
    healed = time.monotonic() - installed
    assert 1.0 + MARGIN_S - 0.3 < healed < 1.0 + MARGIN_S + 2.0, healed
    assert realsite.reaches_peer() and not realsite.deadmen()


def test_pause_deadman_resumes_and_kill_restart_the_probe(realsite):
    faults = realsite.faults("RUN-proc")
    pids = realsite.probe_pids()
    assert pids and realsite.probe_healthy()
    faults.pause(duration=0.5)  # and never resume
    assert realsite.state(pids[0]) == "T"
    assert not realsite.probe_healthy(timeout=0.3)
    wait_for(lambda: realsite.state(pids[0]) in ("S", "R"), 0.5 + MARGIN_S + 3, "the dead-man's SIGCONT")
    assert realsite.probe_healthy() and not realsite.deadmen()
    with faults.paused(duration=5):
        assert realsite.state(pids[0]) == "T"
    assert realsite.state(pids[0]) in ("S", "R") and not realsite.deadmen()

    faults.kill()
    wait_for(lambda: not realsite.probe_pids(), 5, "the probe gone after kill")
    faults.restart()  # nothing left to stop: starts it again
    realsite.await_probe(20, "the probe back after restart")
    assert realsite.probe_pids() and realsite.probe_pids() != pids
    faults.stop(duration=0.5)  # and never start: the dead-man starts it
    assert not realsite.probe_pids()
    realsite.await_probe(0.5 + MARGIN_S + 15, "the dead-man's start")
    assert not realsite.deadmen()


def test_degrade_without_netem_is_not_measured_and_loss_is_emulated(realsite):
    faults = realsite.faults("RUN-wan")
    with pytest.raises(NoNetem) as err:
        with faults.degraded(delay_ms=30, duration=1):
            pass
    assert isinstance(err.value, NotMeasured)
    assert "the site's kernel has no netem: cannot add delay_ms=30" in err.value.reason
    assert "qdisc kind is unknown" in err.value.reason.lower()
    assert "RUN-wan" not in realsite.ruleset() and "qdisc netem" not in realsite.sh("tc qdisc show dev eth0")[1]
    with faults.degraded(loss=0.5, duration=1):
        assert "numgen random mod 1000 < 500 drop" in realsite.ruleset()
    with faults.degraded(loss=1.0, duration=1):  # all of it: a request cannot get through
        assert "RUN-wan" in realsite.ruleset()
        assert not realsite.reaches_peer()
    assert realsite.reaches_peer() and "RUN_wan" not in realsite.ruleset() and not realsite.deadmen()


def test_without_allow_faults_nothing_is_applied(realsite):
    before = realsite.ruleset()
    with pytest.raises(NotMeasured) as err:
        faults_for(load_target(realsite.target()), "store-1", allow_real=False)
    assert err.value.remedy.startswith("pass --allow-faults")
    assert realsite.ruleset() == before and realsite.reaches_peer() and not realsite.deadmen()


# --- through the suite: `edge-conformance run --allow-faults` -----------------------------------------


def cut_profile(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"id": "onsite-cut", "version": "0", "title": "built-in cut", "requirements": [{
        "id": "RT-01", "title": "keeps answering while its WAN is cut", "level": "must",
        "check": "resilience.partition", "applies_to": "edge", "expect": "availability >= 99 %",
        "params": {"duration": f"{DURATION_S:g} s", "workloads": [], "cut_mode": "drop"}}, {
        "id": "RT-02", "title": "copes with a slow WAN", "level": "should", "check": "resilience.degraded",
        "applies_to": "edge", "expect": "min_success_ratio >= 99 %",
        "params": {"delays_ms": [30], "losses": [], "operations": ["pos"], "ops_per_step": 1}}]}, sort_keys=False))
    return path


def test_a_run_cuts_through_builtin_faults_tagged_with_its_run_id(realsite, tmp_path):
    code, results, output = run_edge("--profile", cut_profile(tmp_path / "p.yaml"), "--target", realsite.target(),
                                     "--suite", "resilience", "--allow-faults", out=tmp_path / "out")
    r = entries(results, "RT-")[("RT-01", "store-1")]
    assert r["status"] == "pass" and code == 0, (r["message"], r["notes"], output[-2000:])
    notes = " ".join(r["notes"])
    assert f"partition (drop, nft: {realsite.peer}) on store-1" in notes, notes
    assert f"tag edgeconf:{results['run_id']}:" in notes and "dead-man (detached sleep) undoes it after 4 s" in notes
    assert "removed (tag edgeconf:" in notes and "WAN cut (drop) for 2." in notes
    assert "edgeconf" not in realsite.ruleset() and not realsite.deadmen() and realsite.reaches_peer()
    # no netem in this machine's kernel: the degraded WAN is not measured, with tc's answer (a should: the
    # run stays conformant, its report says why)
    d = entries(results, "RT-")[("RT-02", "store-1")]
    assert d["status"] == "not-measured", (d["message"], d["notes"])
    assert "the site's kernel has no netem: cannot add delay_ms=30" in d["message"], d["message"]
    assert "qdisc kind is unknown" in d["message"].lower() and "modprobe sch_netem" in d["message"]
    print(f"degrade without netem: {d['message']}")


def test_sigkill_of_edge_conformance_run_mid_partition_heals_within_the_margin(realsite, tmp_path):
    argv = [*CLI, "run", "--profile", cut_profile(tmp_path / "p.yaml"), "--target", realsite.target(),
            "--suite", "resilience", "--allow-faults", "--out", tmp_path / "out"]
    run = subprocess.Popen([str(a) for a in argv], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)  # its own group: the kill takes all of it
    try:
        wait_for(lambda: "edgeconf:" in realsite.ruleset() or run.poll() is not None, 60, "the run's cut",
                 interval=0.05)
        seen = time.monotonic()
        assert run.poll() is None, run.communicate()[0][-2000:]
        os.killpg(run.pid, signal.SIGKILL)  # at once, mid-cut: the harness and its group; no finally runs
        killed = time.monotonic()
        run.communicate(timeout=10)
        installed = realsite.remover_started()
        assert not realsite.reaches_peer(), "the cut is gone although nothing healed it yet"
        wait_for(lambda: "edgeconf" not in realsite.ruleset(), DURATION_S + MARGIN_S + 5, "the dead-man removing the cut",
                 interval=0.1)
        healed = time.monotonic()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate(timeout=10)
    print(f"SIGKILL of edge-conformance run: killed {killed - installed:.2f} s after the cut was installed "
          f"({killed - seen:.2f} s after the test saw it); healed {healed - installed:.2f} s after the install "
          f"({healed - killed:.2f} s after the kill); duration {DURATION_S:g} s + margin {MARGIN_S:g} s")
    assert DURATION_S + MARGIN_S - 0.3 < healed - installed < DURATION_S + MARGIN_S + 2.0, healed - installed
    assert realsite.reaches_peer() and not realsite.deadmen()
