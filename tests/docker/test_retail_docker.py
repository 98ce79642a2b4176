"""retail on the docker backend: containers, published ports, WAN emulation, faults, testinfra.

One deployment is shared by the module; every test undoes its fault (in a finally). Timing bounds
are generous: the machine is shared and has 2 cores.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
import yaml

from conformance.emulation import start_deployment
from conformance.emulation.docker.backend import container_stats
from conformance.faults.emulated import EmulatedFaults, FaultError
from conformance.model.target import load_target
from conformance.model.verdict import left_out_by_scope

pytestmark = pytest.mark.docker  # containers: slow by tests/conftest.py
ONE_WAY_MS = 20.0


@pytest.fixture(scope="module")
def retail(site_image, dk):
    dep = start_deployment("retail", run_id=dk.run_id("retail"), backend="docker", timeout=90)
    try:
        yield dep
    finally:
        dep.stop()


@pytest.fixture(scope="module")
def target(retail):
    return yaml.safe_load(retail.target_file.read_text())


@pytest.fixture(scope="module")
def sites(target):
    return {s["name"]: s for s in target["sites"]}


@pytest.fixture(scope="module")
def faults(retail):
    return EmulatedFaults(retail.control_url)


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_json(url: str, body: dict, timeout: float = 5.0) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def median_ping_ms(base: str, n: int = 15) -> float:
    """Median of GET /ping on one keep-alive connection (no connect cost in the samples)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    samples = []
    try:
        for i in range(n + 1):
            start = time.perf_counter()
            conn.request("GET", "/ping")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            if i:  # the first request pays the connect
                samples.append((time.perf_counter() - start) * 1e3)
    finally:
        conn.close()
    return statistics.median(samples)


def site_status(retail, name: str) -> dict:
    return next(s for s in retail.status()["sites"] if s["name"] == name)


# ------------------------------------------------------------------------------------ bring-up


def test_every_site_is_a_container_answering_through_published_ports(retail, sites, docker_client):
    assert set(sites) == {"central", "store-1", "store-2", "store-3"}
    for name, s in sites.items():
        for endpoint in ("api", "direct"):
            assert urlsplit(s["endpoints"][endpoint]).hostname == "127.0.0.1"
            status, body = get(s["endpoints"][endpoint] + "/health")
            assert status == 200 and json.loads(body)["name"] == name
        container = docker_client.containers.get(s["labels"]["container"])
        assert container.status == "running"
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for v in bindings.values() for b in v)
        # Published at the same port number the site listens on inside its container.
        port = urlsplit(s["endpoints"]["direct"]).port
        assert bindings[f"{port}/tcp"][0]["HostPort"] == str(port)


def test_target_file_names_docker_hosts_and_container_labels(retail, sites, docker_client):
    target = load_target(retail.target_file)  # validates against the shipped schema
    assert target.emulation["backend"] == "docker"
    for s in target.sites:
        assert s.hosts == [f"docker://{s.labels['container']}"]
        container = docker_client.containers.get(s.labels["container"])
        assert container.id == s.labels["container_id"]
        assert container.labels["io.edge-conformance.run-id"] == retail.run_id
        assert container.labels["io.edge-conformance.site"] == s.name


def test_resource_limits_are_applied(sites, docker_client):
    expect = {"central": (2.0, 256 * 2**20), "store-1": (1.0, 128 * 2**20)}
    for name, (cpus, memory) in expect.items():
        host_config = docker_client.containers.get(sites[name]["labels"]["container"]).attrs["HostConfig"]
        assert host_config["NanoCpus"] == int(cpus * 1e9)
        assert host_config["Memory"] == memory
        assert host_config["MemorySwap"] == memory  # no swap
        assert sites[name]["labels"]["resources_memory"] == memory


def test_edges_reach_central_only_through_their_wan_link(sites, docker_client):
    store = docker_client.containers.get(sites["store-1"]["labels"]["container"])
    central = docker_client.containers.get(sites["central"]["labels"]["container"])
    central_ip = next(iter(central.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    port = urlsplit(sites["central"]["endpoints"]["direct"]).port
    direct = store.exec_run(["sh", "-c", f"nc -z -w 2 {central_ip} {port}; echo rc=$?"]).output.decode()
    assert "rc=0" not in direct  # no route between two sites' networks
    wan = urlsplit(sites["store-1"]["endpoints"]["wan"])
    code = ("import urllib.request,json;"
            f"print(json.loads(urllib.request.urlopen('http://{wan.hostname}:{wan.port}/health',timeout=5).read())['role'])")
    assert store.exec_run(["python3", "-c", code]).output.decode().strip() == "central"


# ------------------------------------------------------------------------------------ WAN


def test_wan_delay_is_added_and_can_be_changed(sites, faults):
    direct = median_ping_ms(sites["central"]["endpoints"]["direct"])
    wan = median_ping_ms(sites["store-1"]["endpoints"]["wan"])
    added = wan - direct
    assert 2 * ONE_WAY_MS - 3 <= added <= 2 * ONE_WAY_MS + 8, (direct, wan)
    try:
        faults.degrade("store-1", delay_ms=50, jitter_ms=0)
        slower = median_ping_ms(sites["store-1"]["endpoints"]["wan"], n=9) - direct
        assert 97 <= slower <= 110, slower
    finally:
        faults.reset("store-1")
    assert median_ping_ms(sites["store-1"]["endpoints"]["wan"], n=9) - direct < 2 * ONE_WAY_MS + 8


def test_partition_and_heal(retail, sites, faults, dk):
    store, central = sites["store-2"]["endpoints"]["api"], sites["central"]["endpoints"]["api"]
    before = json.loads(get(central + "/sink/transactions/summary?site=store-2")[1])["count"]
    try:
        reply = faults.partition("store-2")
        assert reply["links"][0]["partitioned"] is True
        with pytest.raises(OSError):  # a cut cable: nothing comes back
            urllib.request.urlopen(sites["store-2"]["endpoints"]["wan"] + "/health", timeout=1.0)
        status, sale = post_json(store + "/pos/transactions", {"amount": 9.5})
        assert status == 201  # answered locally while partitioned
        time.sleep(1.0)
        assert json.loads(get(central + "/sink/transactions/summary?site=store-2")[1])["count"] == before
    finally:
        faults.heal("store-2")
    dk.wait_for(lambda: json.loads(get(central + "/sink/transactions/summary?site=store-2")[1])["count"] > before,
                15, "the sale to reach central after heal")
    status, body = get(store + f"/pos/transactions/{sale['id']}")
    assert status == 200 and json.loads(body)["state"] == "forwarded"


# ------------------------------------------------------------------------------------ sites


def test_kill_restarts_the_container_and_keeps_its_data(retail, sites, faults, docker_client, dk):
    api = sites["store-1"]["endpoints"]["api"]
    status, sale = post_json(api + "/pos/transactions", {"amount": 3.0})
    assert status == 201
    container = docker_client.containers.get(sites["store-1"]["labels"]["container"])
    started_at = container.attrs["State"]["StartedAt"]
    before = site_status(retail, "store-1")["restarts"]
    faults.kill("store-1")
    dk.wait_for(lambda: site_status(retail, "store-1")["restarts"] == before + 1
                and site_status(retail, "store-1")["state"] == "running", 30, "store-1 to restart")
    assert get(api + "/health")[0] == 200
    container.reload()
    assert container.id == sites["store-1"]["labels"]["container_id"]  # the same container, restarted
    assert container.attrs["State"]["StartedAt"] != started_at
    assert site_status(retail, "store-1")["last_exit"] == 137
    status, body = get(api + f"/pos/transactions/{sale['id']}")
    assert status == 200, body  # the acknowledged sale survived SIGKILL


def test_pause_and_resume(retail, sites, faults, docker_client):
    api = sites["store-3"]["endpoints"]["api"]
    container = docker_client.containers.get(sites["store-3"]["labels"]["container"])
    try:
        assert faults.pause("store-3")["state"] == "paused"
        container.reload()
        assert container.attrs["State"]["Paused"] is True
        with pytest.raises(OSError):
            urllib.request.urlopen(api + "/health", timeout=1.0)
    finally:
        faults.resume("store-3")
    container.reload()
    assert container.attrs["State"]["Paused"] is False
    assert get(api + "/health")[0] == 200
    assert site_status(retail, "store-3")["state"] == "running"


def test_stop_and_start(retail, sites, faults, docker_client, dk):
    api = sites["store-3"]["endpoints"]["api"]
    container = docker_client.containers.get(sites["store-3"]["labels"]["container"])
    restarts = site_status(retail, "store-3")["restarts"]
    try:
        faults.stop("store-3")
        container.reload()
        assert container.status == "exited"
        time.sleep(1.0)  # no restart policy for a stop
        assert site_status(retail, "store-3")["state"] == "stopped"
        with pytest.raises(OSError):
            urllib.request.urlopen(sites["store-3"]["endpoints"]["direct"] + "/health", timeout=1.0)
    finally:
        faults.start("store-3")
    assert get(api + "/health")[0] == 200
    assert site_status(retail, "store-3")["restarts"] == restarts  # a requested stop is not a crash


def test_unknown_site_is_a_fault_error(faults):
    with pytest.raises(FaultError, match='no site "store-9"'):
        faults.kill("store-9")


# ------------------------------------------------------------------------------------ hosts


def test_testinfra_docker_host_works(sites):
    import testinfra

    s = sites["store-2"]
    host = testinfra.get_host(s["hosts"][0])
    ps = host.run("ps -ef")
    assert ps.rc == 0 and "conformance.emulation.docker.siteinit" in ps.stdout
    port = urlsplit(s["endpoints"]["direct"]).port
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert host.file("/data/site.sqlite3").exists
    assert host.process.filter(comm="python3")


def test_container_stats_give_the_footprint(sites, docker_client):
    stats = container_stats(docker_client, sites["store-2"]["labels"]["container"])
    assert 10 * 2**20 < stats["memory_bytes"] < stats["memory_limit_bytes"] == 128 * 2**20
    assert stats["cpu_seconds"] > 0 and stats["pids"] >= 2


# ------------------------------------------------------------------ host checks through docker:// hosts

HOST_CHECKS = [
    {"id": "PROC", "check": "functional.process", "expect": "running == true"},
    {"id": "PORTS", "check": "security.listening_ports", "expect": "unexpected == 0",
     "params": {"allow": ["22/tcp"], "allow_endpoints": True, "proto": "both"}},
    {"id": "SECRETS", "check": "security.secret_files", "expect": "world_readable == 0"},
    {"id": "DISK", "check": "footprint.disk", "expect": "used <= 10 GiB"},
]


def run_host_checks(target_file, site: str, tmp_path, name: str, only=None) -> dict[str, dict]:
    import subprocess
    import sys

    reqs = [{"title": r["id"], "level": "must", "rationale": "test", "source": "assumed: test", **r}
            for r in HOST_CHECKS if only is None or r["id"] in only]
    profile = tmp_path / f"{name}.yaml"
    profile.write_text(yaml.safe_dump({"id": f"test-{name}", "version": "1", "title": name, "requirements": reqs}))
    out = tmp_path / name
    subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", str(target_file), "--profile",
                    str(profile), "--site", site, "--out", str(out)], capture_output=True, text=True, timeout=180)
    return {r["id"]: r for r in json.loads((out / "results.json").read_text())["requirements"]
            if r["site"] == site}  # the other sites are recorded too, as left out by --site


def test_host_checks_judge_the_sites_container(retail, sites, docker_client, tmp_path):
    container = docker_client.containers.get(sites["store-2"]["labels"]["container"])
    assert sites["store-2"]["labels"]["command"] == " ".join([container.attrs["Path"], *container.attrs["Args"]])
    # A world-readable secret in the site's data dir (/data in its container) must be found there.
    assert container.exec_run(["sh", "-c", "echo s > /data/leak.key && chmod 0644 /data/leak.key"]).exit_code == 0
    try:
        res = run_host_checks(retail.target_file, "store-2", tmp_path, "host")
    finally:
        container.exec_run(["rm", "-f", "/data/leak.key"])
    proc, ports, secrets, disk = res["PROC"], res["PORTS"], res["SECRETS"], res["DISK"]
    assert proc["status"] == "pass" and "python3 pid" in " ".join(proc["notes"]), proc
    assert proc["measured"]["count"]["value"] >= 1
    # Docker's DNS resolver (tcp and udp on 127.0.0.11) is excused, with a note; the site's port is seen.
    assert ports["status"] == "pass", ports
    assert any("Docker's embedded DNS resolver on 127.0.0.11" in n for n in ports["notes"]), ports["notes"]
    assert ports["measured"]["listening"]["value"] >= 1
    assert secrets["status"] == "fail" and secrets["measured"]["world_readable"]["value"] == 1, secrets
    assert any("/data/leak.key" in n for n in secrets["notes"]), secrets["notes"]
    assert disk["status"] == "pass" and 0 < disk["measured"]["used"]["value"], disk
    assert any(n.startswith("/data:") for n in disk["notes"]), disk["notes"]


def test_a_listener_of_the_site_on_dockers_dns_address_is_not_excused(retail, sites, docker_client, tmp_path):
    container = docker_client.containers.get(sites["store-1"]["labels"]["container"])
    # A process of the site listening on 127.0.0.11 is the site's, not Docker's: it shows an owner.
    rogue = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.11', 5999)); s.listen(); "
             "time.sleep(120)")
    container.exec_run(["python3", "-c", rogue], detach=True)
    try:
        time.sleep(1.0)
        res = run_host_checks(retail.target_file, "store-1", tmp_path, "rogue", only={"PORTS"})
    finally:
        container.exec_run(["pkill", "-f", "127.0.0.11"])
    ports = res["PORTS"]
    assert ports["status"] == "fail" and ports["measured"]["unexpected"]["value"] == 1, ports
    assert any("tcp/5999 on 127.0.0.11" in n for n in ports["notes"]), ports["notes"]


def test_the_process_check_fails_when_the_sites_workload_is_gone(retail, sites, faults, tmp_path):
    api = sites["store-3"]["endpoints"]["api"]
    faults.stop("store-3")  # the workload exits, and with it the container (nothing restarts it)
    try:
        res = run_host_checks(retail.target_file, "store-3", tmp_path, "gone", only={"PROC"})
    finally:
        faults.start("store-3")
    proc = res["PROC"]
    assert proc["status"] == "fail" and not proc["measured"]["running"]["value"], proc
    assert any("is exited" in n and "workload is not running" in n for n in proc["notes"]), proc["notes"]
    assert get(api + "/health")[0] == 200


# ------------------------------------------------------------------ the TLS management interface


def mgmt_get(site: dict, password: str | None, path: str = "/status"):
    """GET on the site's mgmt endpoint, verified against its ca_file; (status, headers, body)."""
    import base64
    import ssl

    ctx = ssl.create_default_context(cafile=site["ca_file"])
    headers = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()} if password else {}
    req = urllib.request.Request(site["endpoints"]["mgmt"] + path, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_every_site_serves_the_management_interface_over_tls(retail, sites, docker_client):
    from pathlib import Path

    pki = Path(sites["central"]["ca_file"]).parent
    password = (pki / "mgmt.password").read_text().strip()
    for name, s in sites.items():
        url = urlsplit(s["endpoints"]["mgmt"])
        assert (url.scheme, url.hostname) == ("https", "127.0.0.1") and s["ca_file"] == str(pki / "ca.pem")
        assert url.port not in {urlsplit(u).port for k, u in s["endpoints"].items() if k != "mgmt"}
        container = docker_client.containers.get(s["labels"]["container"])
        assert container.attrs["HostConfig"]["PortBindings"][f"{url.port}/tcp"] == [
            {"HostIp": "127.0.0.1", "HostPort": str(url.port)}]
        status, headers, _ = mgmt_get(s, None)   # the certificate verifies against the deployment's CA
        assert status == 401 and headers["X-Content-Type-Options"] == "nosniff"
        status, _, body = mgmt_get(s, password)
        assert status == 200 and json.loads(body)["site"] == name
        # Exactly the site's own three files, read-only; never the CA's key; secrets 0600 inside.
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert set(mounts) == {"/run/mgmt/site.pem", "/run/mgmt/site.key", "/run/mgmt/mgmt.password"}
        assert all(not m["RW"] for m in mounts.values())
        assert {m["Source"] for m in mounts.values()} == {str(pki / "sites" / f"{name}.pem"),
                                                          str(pki / "sites" / f"{name}.key"),
                                                          str(pki / "mgmt.password")}
        modes = container.exec_run(["stat", "-c", "%n %a", "/run/mgmt/site.key", "/run/mgmt/mgmt.password"])
        assert modes.output.decode().split() == ["/run/mgmt/site.key", "600", "/run/mgmt/mgmt.password", "600"]
        # The password never travels in the environment, the spec or the target file.
        assert password not in json.dumps(container.attrs["Config"])
    assert password not in retail.target_file.read_text()


def test_the_management_requirements_pass_on_docker(retail, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "mgmt"
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", str(retail.target_file),
                           "-p", "edge-baseline", "-r", "BASE-SEC-01", "-r", "BASE-SEC-02", "-r", "BASE-SEC-03",
                           "-r", "BASE-SEC-05", "--site", "store-2", "--site", "central", "--out", str(out)],
                          capture_output=True, text=True, timeout=180)
    results = {(r["id"], r["site"]): r for r in json.loads((out / "results.json").read_text())["requirements"]
               if not left_out_by_scope(r["ended"])}  # the rest of edge-baseline, and the other sites
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]  # narrowed: incomplete
    assert {k: r["status"] for k, r in results.items()} == {
        (rid, site): "pass" for rid in ("BASE-SEC-01", "BASE-SEC-02", "BASE-SEC-03", "BASE-SEC-05")
        for site in ("store-2", "central")}
    assert results[("BASE-SEC-03", "store-2")]["measured"]["protected"]["value"] == 1  # the mgmt endpoint
    assert results[("BASE-SEC-02", "store-2")]["measured"]["days_to_expiry"]["value"] > 300
