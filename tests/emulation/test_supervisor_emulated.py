"""The local emulation backend end to end: supervisor, control API, fault client, cleanup.

One `retail` deployment is shared by the tests that only look or inject reversible faults (each
undoes its fault in a finally); the cleanup tests bring up their own two-site deployments. Timing
bounds are one-sided or generous: the machine is shared. Nothing here calls stop_all(): other runs
on this machine are not ours to stop.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import yaml

from conformance.emulation import list_running, start_deployment, stop_run
from conformance.emulation import state as emu_state
from conformance.emulation.forkserver import mode_for
from conformance.emulation.procs import RUN_ID_ENV, find_labelled
from conformance.faults.emulated import EmulatedFaults, FaultError
from conformance.model.errors import ConfigError
from conformance.model.target import load_target
from tests.helpers.waits import wait_for

ONE_WAY_MS = 20.0  # retail's WAN delay
DEFECTS = ["store-2:no-fsync", "store-3:slow-path"]


def _run_id(tag: str) -> str:
    return f"test-{tag}-{os.getpid()}-{os.urandom(2).hex()}"


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def health(url: str, timeout: float = 5.0) -> dict:
    status, body = get(url + "/health", timeout)
    assert status == 200
    return json.loads(body)


def timed_ping(base: str, timeout: float = 5.0) -> float:
    """One request on a fresh connection; seconds."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        start = time.perf_counter()
        conn.request("GET", "/ping")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        return time.perf_counter() - start
    finally:
        conn.close()


def median_ms(base: str, n: int = 9) -> float:
    return statistics.median(timed_ping(base) for _ in range(n)) * 1e3


def labelled(run_id: str) -> list[psutil.Process]:
    return find_labelled(run_id).get(run_id, [])


def site_status(faults: EmulatedFaults, name: str) -> dict:
    return faults.site_status(name)


def port_closed(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1.0).close()
        return False
    except OSError:
        return True


# --------------------------------------------------------------------------- the shared deployment


@pytest.fixture(scope="module")
def retail(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("retail") / "state"
    with start_deployment("retail", state_dir=state_dir, run_id=_run_id("retail"), defects=DEFECTS,
                          timeout=60) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def target(retail):
    return load_target(retail.target_file)


@pytest.fixture(scope="module")
def faults(retail):
    return EmulatedFaults(retail.control_url, timeout=30)


def test_target_file_has_the_agreed_shape_and_passes_the_target_parser(retail, target):
    raw = yaml.safe_load(retail.target_file.read_text(encoding="utf-8"))
    assert list(raw) == ["name", "emulation", "sites"]
    assert raw["name"] == "emulated-retail"
    assert raw["emulation"] == {"run_id": retail.run_id, "backend": "local", "topology": "retail",
                                "control_url": retail.control_url, "state_dir": str(retail.state_dir),
                                "site_processes": mode_for(4)}  # exec, unless forced to fork
    assert [s.name for s in target.sites] == ["central", "store-1", "store-2", "store-3"]
    status = {s["name"]: s for s in retail.status()["sites"]}
    for site, entry in zip(target.sites, raw["sites"]):
        assert list(entry)[:2] == ["name", "role"]
        assert site.hosts == ["local://"]
        assert site.labels["pid"] == status[site.name]["pid"]
        assert site.labels["workload"] == ("central" if site.name == "central" else "edge")
        assert Path(site.labels["data_dir"]).is_dir()
        assert site.endpoints["direct"] == f"http://127.0.0.1:{status[site.name]['port']}"
        # The TLS management interface: its own port, the deployment's private CA as the site's ca_file.
        assert site.endpoints["mgmt"].startswith("https://127.0.0.1:")
        assert urlsplit(site.endpoints["mgmt"]).port not in (urlsplit(site.endpoints["direct"]).port, None)
        assert site.ca_file == str(retail.state_dir / "pki" / "ca.pem") and Path(site.ca_file).is_file()
        if site.name == "central":
            assert site.role == "central" and site.uplink is None
            assert set(site.endpoints) == {"api", "direct", "mgmt"}
            assert site.labels["resources_cpus"] == 2.0 and site.labels["resources_memory"] == 256 * 2**20
        else:
            assert site.role == "edge" and site.uplink == "central"
            assert set(site.endpoints) == {"api", "direct", "wan", "mgmt"}
    state = json.loads((retail.state_dir / "state.json").read_text(encoding="utf-8"))
    assert state["run_id"] == retail.run_id and state["control_url"] == retail.control_url


def test_every_site_answers_health_through_its_access_link(retail, target):
    before = {link["name"]: link["stats"]["connections_total"] for link in retail.status()["links"]}
    links = {link["name"]: link for link in retail.status()["links"]}
    for site in target.sites:
        assert health(site.endpoint("api"))["name"] == site.name
        assert health(site.endpoint("direct"))["name"] == site.name
        access = links[f"access:{site.name}"]
        # The api endpoint is the access link, and the link relays to the site itself.
        assert site.endpoint("api") == f"http://127.0.0.1:{access['listen_port']}"
        assert access["upstream"] == "127.0.0.1:" + site.endpoint("direct").rsplit(":", 1)[1]
    after = {link["name"]: link["stats"]["connections_total"] for link in retail.status()["links"]}
    for site in target.sites:
        assert after[f"access:{site.name}"] > before[f"access:{site.name}"]


def test_wan_link_adds_its_delay_both_ways(target):
    store = target.site("store-1")
    central = target.site("central")
    assert health(store.endpoint("wan"))["role"] == "central"  # the wan endpoint IS central, via the link
    direct = median_ms(central.endpoint("direct"))
    via_wan = median_ms(store.endpoint("wan"))
    extra = via_wan - direct
    # A request and its response each cross the link once: about 2 x 20 ms (jitter +-2 ms each way).
    assert extra >= 0.75 * 2 * ONE_WAY_MS, (direct, via_wan)
    assert extra <= 2 * ONE_WAY_MS + 150, (direct, via_wan)


def test_partition_holds_traffic_until_heal(target, faults):
    wan = target.site("store-1").endpoint("wan")
    other = target.site("store-2").endpoint("wan")
    faults.partition("store-1")
    try:
        links = {x["name"]: x for x in faults.status()["links"]}
        assert links["wan:store-1"]["partitioned"] is True and links["wan:store-2"]["partitioned"] is False
        assert links["wan:store-1"]["partition_mode"] == "hold"  # the default: today's cut
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError, ConnectionError)):
            get(wan + "/ping", timeout=1.0)
        assert get(other + "/ping")[0] == 200  # only store-1 is cut off
    finally:
        faults.heal("store-1")
    assert get(wan + "/ping", timeout=5.0)[0] == 200
    assert {x["name"]: x for x in faults.status()["links"]}["wan:store-1"]["partitioned"] is False


def test_partitioning_central_cuts_every_wan_link(target, faults):
    faults.partition("central")
    try:
        states = {x["name"]: x["partitioned"] for x in faults.status()["links"]}
        assert all(states[f"wan:store-{i}"] for i in (1, 2, 3))
        assert not any(states[f"access:{s.name}"] for s in target.sites)
    finally:
        faults.heal("central")
    states = {x["name"]: x["partitioned"] for x in faults.status()["links"]}
    assert not any(states[f"wan:store-{i}"] for i in (1, 2, 3))


def test_a_drop_partition_resets_open_connections_and_new_ones_time_out(target, faults):
    wan = urlsplit(target.site("store-2").endpoint("wan"))
    kept = http.client.HTTPConnection(wan.hostname, wan.port, timeout=5.0)  # a keep-alive connection
    try:
        kept.request("GET", "/ping")
        assert kept.getresponse().read() and kept.sock is not None  # open, across the WAN link
        with pytest.raises(FaultError, match="mode: expected one of hold, drop"):
            faults._call("POST", "/sites/store-2/partition", {"mode": "dorp"})
        with pytest.raises(FaultError, match="heal takes no body"):
            faults._call("POST", "/sites/store-2/heal", {"mode": "drop"})
        faults.partition("store-2", mode="drop")
        try:
            link = {x["name"]: x for x in faults.status()["links"]}["wan:store-2"]
            assert link["partitioned"] is True and link["partition_mode"] == "drop"
            assert link["stats"]["connections_dropped"] >= 1  # ours, and the site's own pooled ones
            started = time.monotonic()
            with pytest.raises((ConnectionError, http.client.HTTPException)):  # not a timeout: a reset
                kept.request("GET", "/ping")  # the connection was reset at the cut
                kept.getresponse().read()
            assert time.monotonic() - started < 2.0
            with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError, ConnectionError)):
                get(target.site("store-2").endpoint("wan") + "/ping", timeout=1.0)  # a black hole
        finally:
            faults.heal("store-2")
    finally:
        kept.close()
    assert get(target.site("store-2").endpoint("wan") + "/ping", timeout=5.0)[0] == 200


def test_degrade_changes_the_link_and_reset_restores_the_topology(target, faults):
    wan = target.site("store-1").endpoint("wan")
    faults.degrade("store-1", delay_ms=120)
    try:
        assert median_ms(wan, n=3) >= 0.75 * 2 * 120
        link = {x["name"]: x for x in faults.status()["links"]}["wan:store-1"]
        assert link["delay_ms"] == 120 and link["bandwidth_bps"] == 10_000_000
    finally:
        faults.reset("store-1")
    assert {x["name"]: x for x in faults.status()["links"]}["wan:store-1"]["delay_ms"] == ONE_WAY_MS
    assert median_ms(wan, n=5) < 2 * 120 * 0.75


def test_kill_is_a_crash_the_supervisor_restarts(retail, target, faults):
    before = site_status(faults, "store-1")
    assert before["state"] == "running" and before["restarts"] == 0
    faults.kill("store-1")
    after = wait_for(lambda: (s := site_status(faults, "store-1"))["restarts"] == 1 and s["state"] == "running"
                     and s, 20, "store-1 to be restarted")
    assert after["pid"] != before["pid"] and not psutil.pid_exists(before["pid"])
    assert after["port"] == before["port"]  # same port: links and target file stay valid
    assert health(target.site("store-1").endpoint("api"))["name"] == "store-1"
    labels = wait_for(lambda: (t := load_target(retail.target_file)).site("store-1").labels["pid"] == after["pid"]
                      and t, 5, "the target file to show the new pid")
    assert labels


def test_stop_keeps_a_site_down_until_start(target, faults):
    direct = target.site("store-2").endpoint("direct")
    faults.stop("store-2")
    try:
        status = site_status(faults, "store-2")
        assert status["state"] == "stopped" and status["pid"] is None
        time.sleep(1.5)  # well past the 0.5 s restart delay
        assert site_status(faults, "store-2")["state"] == "stopped" and port_closed(direct)
    finally:
        faults.start("store-2")
    assert site_status(faults, "store-2")["state"] == "running"
    assert health(direct)["name"] == "store-2"


def test_pause_freezes_a_site_and_resume_thaws_it(target, faults):
    direct = target.site("store-3").endpoint("direct")
    faults.pause("store-3")
    try:
        assert site_status(faults, "store-3")["state"] == "paused"
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
            get(direct + "/ping", timeout=1.0)
        assert site_status(faults, "store-3")["restarts"] == 0  # paused is not dead
    finally:
        faults.resume("store-3")
    assert site_status(faults, "store-3")["state"] == "running"
    assert get(direct + "/ping", timeout=5.0)[0] == 200


def test_defects_reach_exactly_the_sites_they_name(retail):
    target = load_target(retail.target_file)  # fresh: other tests restart sites (new pids)
    expected = {"central": [], "store-1": [], "store-2": ["no-fsync"], "store-3": ["slow-path"]}
    for site in target.sites:
        assert health(site.endpoint("direct"))["defects"] == expected[site.name]
        assert site.labels["defects"] == expected[site.name]
    pid = target.site("store-2").labels["pid"]
    cmdline = psutil.Process(pid).cmdline()
    assert cmdline[cmdline.index("--defects") + 1] == "no-fsync"


def test_every_process_is_labelled_with_the_run_id(retail):
    procs = labelled(retail.run_id)
    status = retail.status()
    expected = {s["pid"] for s in status["sites"]} | {status["linkd"]["pid"], retail.pid}
    assert expected <= {p.pid for p in procs}
    for p in procs:
        assert p.environ().get(RUN_ID_ENV) == retail.run_id
    run = {r.run_id: r for r in list_running()}[retail.run_id]
    assert run.alive and run.pid == retail.pid and run.control_url == retail.control_url


def test_fault_client_errors_are_clear(faults):
    with pytest.raises(FaultError, match=r'no site "store-9" \(did you mean "store-'):
        faults.kill("store-9")
    with pytest.raises(FaultError, match=r"HTTP 400.*unknown field|must be one of"):
        faults._call("PATCH", "/links/wan:store-1", {"dealy_ms": 5})
    with pytest.raises(ValueError):
        faults.degrade("store-1")
    with pytest.raises(FaultError, match="did not answer"):
        EmulatedFaults("http://127.0.0.1:9", timeout=2).status()


# ------------------------------------------------------------------------------------- cleanup

SMALL = """\
sites:
  - {name: central, role: central}
  - {name: shop, role: edge}
wan: {default_delay: 5 ms}
"""


def small_topology(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL, encoding="utf-8")
    return path


def assert_nothing_left(run_id: str, state_dir: Path, urls: list[str], timeout: float = 20.0) -> None:
    wait_for(lambda: not labelled(run_id), timeout, f"every process of {run_id} to exit")
    assert not state_dir.exists()
    assert emu_state.read_entry(run_id) is None
    for url in urls:
        assert port_closed(url), url


def endpoints(target_file: Path) -> list[str]:
    return [url for site in load_target(target_file).sites for url in site.endpoints.values()]


def test_stop_leaves_nothing_behind(tmp_path):
    run_id = _run_id("stop")
    dep = start_deployment(str(small_topology(tmp_path)), run_id=run_id, timeout=60)
    urls = endpoints(dep.target_file)
    assert len(labelled(run_id)) == 4 and dep.state_dir.is_dir()  # supervisor, linkd, 2 sites
    assert dep.state_dir.parent.name == "state"  # the per-user runtime dir by default
    dep.stop()
    dep.stop()  # idempotent
    assert_nothing_left(run_id, dep.state_dir, urls, timeout=5)


def test_sigterm_to_the_harness_takes_everything_down(tmp_path):
    run_id = _run_id("sigterm")
    state_dir = tmp_path / "state"
    script = textwrap.dedent(f"""
        import sys, time
        from conformance.emulation import start_deployment
        d = start_deployment({str(small_topology(tmp_path))!r}, state_dir={str(state_dir)!r}, run_id={run_id!r})
        print(d.target_file, flush=True)
        time.sleep(300)
    """)
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        target_file = Path(caller.stdout.readline().strip())
        urls = endpoints(target_file)
        assert len(labelled(run_id)) == 4
        caller.send_signal(signal.SIGTERM)  # Python's default: die at once, no cleanup code runs
        assert caller.wait(10) == -signal.SIGTERM
        assert_nothing_left(run_id, state_dir, urls)
    finally:
        caller.kill()
        caller.wait()


def test_sigkill_of_the_supervisor_takes_its_children_down(tmp_path):
    run_id = _run_id("sigkill")
    dep = start_deployment(str(small_topology(tmp_path)), state_dir=tmp_path / "state", run_id=run_id)
    urls = endpoints(dep.target_file)
    os.kill(dep.pid, signal.SIGKILL)
    # The children notice on their own (stdin EOF, parent gone); nobody else cleans up yet.
    wait_for(lambda: not labelled(run_id), 20, "the orphaned children to exit")
    for url in urls:
        assert port_closed(url), url
    # What a SIGKILLed supervisor cannot remove, stop() (or emulate down) does.
    assert dep.state_dir.exists() and emu_state.read_entry(run_id) is not None
    dep.stop()
    assert not dep.state_dir.exists() and emu_state.read_entry(run_id) is None


def test_detached_deployment_survives_stdin_and_stop_run_removes_it(tmp_path):
    run_id = _run_id("detach")
    dep = start_deployment(str(small_topology(tmp_path)), run_id=run_id, detach=True)
    try:
        assert dep._proc.stdin is None  # nothing ties it to us: only the registry finds it
        run = {r.run_id: r for r in list_running()}[run_id]
        assert run.alive and run.detached and run.target_file == str(dep.target_file)
        assert (dep.state_dir / "logs" / "supervisor.log").exists()
        urls = endpoints(dep.target_file)
        assert stop_run(run_id) is True
        assert_nothing_left(run_id, dep.state_dir, urls, timeout=10)
        assert stop_run(run_id) is False
    finally:
        dep.stop()


def test_a_site_config_the_site_would_refuse_is_refused_before_bring_up(tmp_path):
    """It used to fail at bring-up (exit 3, after processes started); the topology now applies the
    site's own settings rules on load: one located line, nothing started."""
    path = tmp_path / "broken.yaml"
    path.write_text(SMALL.replace("{name: shop, role: edge}", "{name: shop, role: edge, config: {no_such_setting: 1}}"),
                    encoding="utf-8")
    run_id = _run_id("broken")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: sites\[\d\]\.config\.no_such_setting: unknown setting"):
        start_deployment(str(path), state_dir=tmp_path / "state", run_id=run_id, timeout=30)
    assert not labelled(run_id)
    assert not (tmp_path / "state").exists() and emu_state.read_entry(run_id) is None


# ------------------------------------------------------------------------------------- restart policy


def test_restart_policy_is_on_failure(tmp_path):
    """Like systemd's Restart=on-failure: a site that exits with status 0 by itself stays down (state
    `exited`, its last pid kept in the target file so process checks see it gone), one that dies by a
    signal is restarted, and `start` brings an exited one back."""
    path = tmp_path / "policy.yaml"
    path.write_text(SMALL.replace("  - {name: shop, role: edge}\n",
                                  "  - {name: shop, role: edge}\n  - {name: kiosk, role: edge}\n"), encoding="utf-8")
    with start_deployment(str(path), state_dir=tmp_path / "state", run_id=_run_id("policy"),
                          defects=["kiosk:exits-after-start"], timeout=60) as dep:
        faults = EmulatedFaults(dep.control_url)
        # Bring-up waited for the defect to take effect: the deployment is in its steady state.
        kiosk = site_status(faults, "kiosk")
        assert kiosk["state"] == "exited" and kiosk["last_exit"] == 0 and kiosk["pid"] is None, kiosk
        assert kiosk["restarts"] == 0 and kiosk["last_pid"] and not psutil.pid_exists(kiosk["last_pid"])
        assert load_target(dep.target_file).site("kiosk").labels["pid"] == kiosk["last_pid"]
        with pytest.raises(FaultError, match="not running"):
            faults.kill("kiosk")

        # A death by a signal (not through the API) is a failure: restarted on the same port.
        shop = site_status(faults, "shop")
        os.kill(shop["pid"], signal.SIGUSR1)   # default action: terminate, no core dump
        after = wait_for(lambda: (s := site_status(faults, "shop"))["restarts"] == 1 and s["state"] == "running"
                         and s, 20, "shop to be restarted")
        assert after["last_exit"] == -signal.SIGUSR1 and after["port"] == shop["port"]
        assert site_status(faults, "kiosk")["state"] == "exited"   # still not restarted, seconds later

        faults.start("kiosk")   # and it exits again: that is its defect
        assert site_status(faults, "kiosk")["state"] == "running"
        wait_for(lambda: site_status(faults, "kiosk")["state"] == "exited", 10, "kiosk to exit again")
        assert site_status(faults, "kiosk")["restarts"] == 0
