"""The docker backend's parts that need no Docker daemon: configs, recipe digests, tc commands, relayd."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import pytest

from conformance.emulation import backends
from conformance.emulation.docker import backend, images, net, siteinit
from conformance.emulation.docker.relayd import BoundLink, parse_listen_host
from conformance.emulation.link import LinkParams
from conformance.emulation.site import workload_config
from conformance.model.topology import load_topology

EDGE_SPEC = {"name": "store-1", "role": "edge", "workload": "edge", "central_url": "http://10.231.0.1:4000",
             "stack": ["nginx", "mosquitto"], "mqtt_uplink": "10.231.0.1:4001", "cache_ttl_s": 2,
             "port": 40001, "app_port": 40002, "mqtt_port": 40003, "defects": ["no-fsync"],
             "config": {"cache_ttl_s": 2}}


def test_docker_is_a_backend_and_edge_stack_is_a_builtin_topology():
    assert "docker" in backends.BACKENDS
    topo = load_topology("edge-stack")
    stacks = {s.name: backend.stack_of(s) for s in topo.sites}
    assert stacks == {"central": ["mosquitto"], "store-1": ["nginx", "mosquitto"], "store-2": ["nginx", "mosquitto"]}
    # The workload never sees the backend's key; the local backend drops it as well.
    assert all("stack" not in workload_config(s) for s in topo.sites)
    assert [workload_config(s) for s in topo.sites][1] == {"cache_ttl_s": 2}


def test_unknown_stack_service_is_refused():
    topo = load_topology("edge-stack")
    import dataclasses

    bad = dataclasses.replace(topo.sites[0], config={"stack": ["nginx", "redis"]})
    with pytest.raises(ValueError, match=r"unknown service\(s\) \['redis'\]"):
        backend.stack_of(bad)


def test_a_stack_defect_needs_the_service_it_breaks():
    import dataclasses

    store, central = load_topology("edge-stack").sites[1], load_topology("edge-stack").sites[0]
    assert backend.stack_of(dataclasses.replace(store, defects=("nginx-no-stale", "bridge-drops-queued")))
    with pytest.raises(ValueError, match=r"site central: defect nginx-no-cache breaks nginx, which the site does "
                                         r"not run \(config.stack: \['mosquitto'\]\)"):
        backend.stack_of(dataclasses.replace(central, defects=("nginx-no-cache",)))
    plain = load_topology("retail").sites[1]
    with pytest.raises(ValueError, match="defect bridge-drops-queued breaks mosquitto"):
        backend.stack_of(dataclasses.replace(plain, defects=("bridge-drops-queued",)))


def test_nginx_config_caches_central_origin_and_serves_stale():
    conf = siteinit.nginx_conf(EDGE_SPEC)
    assert "listen 40001 backlog=1024;" in conf
    assert "server 127.0.0.1:40002;" in conf
    assert "proxy_pass http://10.231.0.1:4000/origin/;" in conf
    assert "proxy_cache_use_stale error timeout updating" in conf
    assert "proxy_cache_valid 200 2s;" in conf
    assert "proxy_ignore_headers Cache-Control Expires" in conf  # the origin says max-age=60
    central = siteinit.nginx_conf({"name": "central", "stack": ["nginx"]})
    assert "/cdn/" not in central and "listen 8080" in central


def test_mosquitto_config_bridges_to_central_and_queues():
    conf = siteinit.mosquitto_conf(EDGE_SPEC)
    for line in ("listener 40003 0.0.0.0", "address 10.231.0.1:4001", "cleansession false",
                 'topic # out 1 "" stores/store-1/', "queue_qos0_messages true", "max_queued_messages 100000"):
        assert line in conf.splitlines(), line
    assert "connection" not in siteinit.mosquitto_conf({"name": "central", "mqtt_port": 1883})


def test_the_stack_defects_change_what_nginx_and_mosquitto_are_told():
    healthy_nginx, healthy_mqtt = siteinit.nginx_conf(EDGE_SPEC), siteinit.mosquitto_conf(EDGE_SPEC)
    assert "proxy_no_cache" not in healthy_nginx and "proxy_cache_background_update on;" in healthy_nginx
    no_cache = siteinit.nginx_conf({**EDGE_SPEC, "defects": ["nginx-no-cache"]})
    assert "proxy_no_cache 1;" in no_cache and "proxy_cache_use_stale error" in no_cache
    no_stale = siteinit.nginx_conf({**EDGE_SPEC, "defects": ["nginx-no-stale"]})
    assert "proxy_cache_use_stale" not in no_stale and "proxy_cache_background_update" not in no_stale
    assert "proxy_cache edge;" in no_stale and "proxy_no_cache" not in no_stale
    drops = siteinit.mosquitto_conf({**EDGE_SPEC, "defects": ["bridge-drops-queued"]}).splitlines()
    assert 'topic # out 0 "" stores/store-1/' in drops and "queue_qos0_messages false" in drops
    assert set(drops) ^ set(healthy_mqtt.splitlines()) == {
        'topic # out 0 "" stores/store-1/', "queue_qos0_messages false",
        'topic # out 1 "" stores/store-1/', "queue_qos0_messages true"}


def test_the_target_file_names_the_cache_and_the_broker():
    from types import SimpleNamespace

    site = SimpleNamespace(app_port=40002, port=40001, mqtt_port=40003, central_url="http://10.231.0.1:4000")
    assert backend.DockerSite.extra_endpoints(site) == {
        "app": "http://127.0.0.1:40002", "cache": "http://127.0.0.1:40001/cdn/", "mqtt": "mqtt://127.0.0.1:40003"}
    central = SimpleNamespace(app_port=None, port=40005, mqtt_port=40006, central_url=None)
    assert backend.DockerSite.extra_endpoints(central) == {"mqtt": "mqtt://127.0.0.1:40006"}


def test_workload_arguments():
    argv = siteinit.workload_argv(EDGE_SPEC, 40002)
    assert argv[:8] == ["--role", "edge", "--name", "store-1", "--data-dir", "/data", "--port", "40002"]
    assert argv[argv.index("--central-url") + 1] == "http://10.231.0.1:4000"
    assert json.loads(argv[argv.index("--site-config") + 1]) == {"cache_ttl_s": 2}


def test_site_recipe_digest_follows_the_code():
    d1, base, files = images.site_recipe()
    d2, _, _ = images.site_recipe()
    d3, _, _ = images.site_recipe(extra_files={"conformance/emulation/docker/marker.txt": b"x"})
    assert d1 == d2 != d3
    assert base.startswith(images.BASE_REPOSITORY + ":")
    assert "edge_workloads/edge.py" in files
    assert "conformance/emulation/docker/siteinit.py" in files
    assert any(name.startswith("aiohttp/") for name in files)
    assert not any(name.startswith("conformance/emulation/docker/backend") for name in files)  # harness side only


def test_netem_commands_shape_only_the_relay_traffic():
    params = {"delay_ms": 20.0, "jitter_ms": 2.0, "loss": 0.001}
    up = net.shaping_commands("eth0", match="dst", address="10.231.0.1", ports=[4000, 4001], params=params)
    assert up[0][:8] == ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:"]
    assert up[1][-8:] == ["netem", "limit", "100000", "delay", "20ms", "2ms", "loss", "0.1%"]
    assert up[1][5:9] == ["parent", "1:3", "handle", "30:"]
    filters = [c for c in up if c[1] == "filter"]
    assert len(filters) == 2 and "dport" in filters[0] and "10.231.0.1/32" in filters[0]
    down = net.shaping_commands("veth1", match="src", address="10.231.0.1", ports=[4000], params=params)
    assert "sport" in down[-1]
    assert net.netem_args(5, 0, 0) == ["netem", "limit", "100000", "delay", "5ms", "loss", "0%"]


def test_netem_off_by_environment(monkeypatch):
    monkeypatch.setenv(net.NETEM_ENV, "off")
    monkeypatch.setattr(net, "_netem", None)
    assert net.netem_support() == (False, f"{net.NETEM_ENV}=off")
    monkeypatch.setattr(net, "_netem", None)


def test_listen_host_validation():
    assert parse_listen_host("10.231.0.1") == "10.231.0.1"
    for bad in ("0.0.0.0", "example.com", 5, "224.0.0.1"):
        with pytest.raises(ValueError):
            parse_listen_host(bad)


def test_bound_link_listens_on_the_given_address_and_shapes():
    async def scenario():
        async def echo(reader, writer):
            while data := await reader.read(100):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = BoundLink("wan:x", f"127.0.0.1:{port}", LinkParams(delay_ms=10), listen_host="127.0.0.2")
        await link.start()
        try:
            assert link.to_dict()["listen_host"] == "127.0.0.2"
            reader, writer = await asyncio.open_connection("127.0.0.2", link.listen_port)
            loop = asyncio.get_running_loop()
            start = loop.time()
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            elapsed = loop.time() - start
            writer.close()
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", link.listen_port)  # not on 127.0.0.1
            return elapsed
        finally:
            await link.close()
            server.close()

    assert asyncio.run(scenario()) >= 0.019  # 10 ms each way


def test_relayd_answers_put_with_listen_host():
    proc = subprocess.Popen([sys.executable, "-m", "conformance.emulation.docker.relayd", "--run-id", "unit"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        from conformance.emulation.client import ControlError, call

        base = f"http://127.0.0.1:{ready['control_port']}"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            upstream = s.getsockname()[1]
        link = call("PUT", base + "/links/wan:a", {"upstream": f"127.0.0.1:{upstream}", "listen_host": "127.0.0.3",
                                                   "delay_ms": 5})
        assert link["listen_host"] == "127.0.0.3" and link["delay_ms"] == 5
        again = call("PUT", base + "/links/wan:a", {"upstream": f"127.0.0.1:{upstream}", "listen_host": "127.0.0.3"})
        assert again["listen_port"] == link["listen_port"] and again["delay_ms"] == 0
        with pytest.raises(ControlError, match="listens on 127.0.0.3"):
            call("PUT", base + "/links/wan:a", {"upstream": f"127.0.0.1:{upstream}", "listen_host": "127.0.0.4"})
        with pytest.raises(ControlError, match="not a loopback address"):
            call("PUT", base + "/links/wan:b", {"upstream": "10.0.0.1:80", "listen_host": "127.0.0.3"})
        assert call("PATCH", base + "/links/wan:a", {"partitioned": True})["partitioned"] is True
    finally:
        proc.stdin.close()  # EOF: relayd stops, like linkd
        assert proc.wait(10) == 0


# ------------------------------------------------------------------ kernel netem: detection and choice
# This machine's kernel has no netem, so the detection is faked here: what `tc` answers decides.


def _fake_tc(monkeypatch, returncode: int, stderr: str = "", euid: int = 0) -> list[list[str]]:
    import subprocess

    calls: list[list[str]] = []

    def run(cmd, **kwargs):
        calls.append(list(cmd))
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    monkeypatch.delenv(net.NETEM_ENV, raising=False)
    monkeypatch.setattr(net, "_netem", None)
    monkeypatch.setattr(net.os, "geteuid", lambda: euid)
    monkeypatch.setattr(net.subprocess, "run", run)
    return calls


def test_a_kernel_with_netem_gets_the_wan_shaping(monkeypatch):
    calls = _fake_tc(monkeypatch, 0)
    ok, why = net.netem_support()
    assert ok and why == "kernel netem works"
    assert calls == [["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]]
    assert net.netem_support() == (True, why) and len(calls) == 1  # tried once per process
    params = {"delay_ms": 20.0, "jitter_ms": 2.0, "loss": 0.001, "bandwidth_bps": 10_000_000}
    relay, kernel = net.split_shaping(params, ok)
    assert kernel == params
    assert relay == {"delay_ms": 0.0, "jitter_ms": 0.0, "loss": 0.0, "bandwidth_bps": None}  # nothing twice
    up = net.shaping_commands("eth0", match="dst", address="10.231.0.1", ports=[4000], params=kernel)
    assert up[1] == ["tc", "qdisc", "replace", "dev", "eth0", "parent", "1:3", "handle", "30:", "netem",
                     "limit", "100000", "delay", "20ms", "2ms", "loss", "0.1%", "rate", "10000000bit"]
    change = net.change_commands("veth9", {**kernel, "bandwidth_bps": None, "jitter_ms": 0})[0]
    assert change[:9] == ["tc", "qdisc", "change", "dev", "veth9", "parent", "1:3", "handle", "30:"]
    assert change[9:] == ["netem", "limit", "100000", "delay", "20ms", "loss", "0.1%"]  # unlimited: no rate


def test_a_kernel_without_netem_falls_back_to_the_relay(monkeypatch):
    _fake_tc(monkeypatch, 2, "Error: Specified qdisc kind is unknown.")
    ok, why = net.netem_support()
    assert not ok and why == "no kernel netem: Error: Specified qdisc kind is unknown."
    params = {"delay_ms": 20.0, "jitter_ms": 2.0, "loss": 0.001, "bandwidth_bps": 10_000_000}
    assert net.split_shaping(params, ok) == (params, None)  # the relay shapes everything


def test_netem_is_not_tried_without_root(monkeypatch):
    calls = _fake_tc(monkeypatch, 0, euid=1000)
    assert net.netem_support() == (False, "needs root (tc in the containers' network namespaces)")
    assert calls == []


def _bare_supervisor(netem: bool):
    from types import SimpleNamespace

    from conformance.emulation.docker.docker_supervisor import DockerSupervisor

    sup = DockerSupervisor.__new__(DockerSupervisor)  # only the link bookkeeping is exercised
    sup.netem, sup.kernel_params, sup.channels = netem, {}, {}
    sup.sites = {"central": SimpleNamespace(name="central", mqtt_port=None),
                 "store-1": SimpleNamespace(name="store-1", mqtt_port=None)}
    sup.gateways = {"store-1": "10.231.0.1", "central": "10.231.0.17"}
    return sup


def test_the_supervisor_gives_wan_links_to_netem_only_where_the_kernel_has_it():
    from conformance.model.topology import load_topology

    wan = next(link for link in load_topology("retail").links if link.kind == "wan" and link.site == "store-1")
    with_netem = _bare_supervisor(True)
    chans = with_netem._channels_of(wan)
    assert [c.listen_host for c in chans] == ["10.231.0.1"]
    assert with_netem.kernel_params[wan.name] == {k: wan.params()[k] for k in net.KERNEL_FIELDS}
    assert with_netem._relay_params(wan)["delay_ms"] == 0.0
    assert with_netem._decorate(wan, {})["shaping"] == "netem+relay"
    without = _bare_supervisor(False)
    without._channels_of(wan)
    assert without.kernel_params == {} and without._relay_params(wan) == wan.params()
    assert without._decorate(wan, {})["shaping"] == "relay"


# ------------------------------------------------------------------ the management interface in a container


def test_workload_arguments_serve_the_management_interface_from_the_mounted_files():
    argv = siteinit.workload_argv({**EDGE_SPEC, "mgmt_port": 40004}, 40002)
    i = argv.index("--mgmt-port")
    assert argv[i:] == ["--mgmt-port", "40004", "--mgmt-cert", "/run/mgmt/site.pem", "--mgmt-key", "/run/mgmt/site.key",
                        "--mgmt-password-file", "/run/mgmt/mgmt.password"]
    assert "--mgmt-port" not in siteinit.workload_argv({**EDGE_SPEC, "mgmt_port": None}, 40002)


def test_the_site_spec_names_the_mgmt_port_and_mounts_only_the_sites_own_files(tmp_path):
    from conformance.emulation import pki

    topo = load_topology("retail")
    material = pki.prepare_mgmt(tmp_path / "pki", topo.sites, label="unit")
    spec = next(s for s in topo.sites if s.name == "store-1")
    site = backend.DockerSite(spec, client=None, run_id="unit", image="img", network="net", start_timeout=1,
                              mgmt=material.sites["store-1"])
    doc = site.site_document()
    assert doc["mgmt_port"] == site.mgmt_port and site.mgmt_port not in (site.port, None)
    password = material.password_file.read_text().strip()
    assert password not in json.dumps(doc)   # the spec travels in the container's environment
    mounts = backend.mgmt_mounts(site.mgmt)
    assert mounts == {str(tmp_path / "pki/sites/store-1.pem"): {"bind": "/run/mgmt/site.pem", "mode": "ro"},
                      str(tmp_path / "pki/sites/store-1.key"): {"bind": "/run/mgmt/site.key", "mode": "ro"},
                      str(tmp_path / "pki/mgmt.password"): {"bind": "/run/mgmt/mgmt.password", "mode": "ro"}}
    assert str(material.ca_key) not in mounts
    without = backend.DockerSite(spec, client=None, run_id="unit", image="img", network="net", start_timeout=1)
    assert without.mgmt_port is None and without.site_document()["mgmt_port"] is None


def test_docker_timestamps():
    assert backend.docker_time("2025-01-02T03:04:05.5Z") == pytest.approx(1735787045.5)
    assert backend.docker_time("2025-01-02T03:04:05.123456789Z") == pytest.approx(1735787045.123456789)
    assert backend.docker_time("2025-01-02T03:04:05Z") == 1735787045.0
    assert backend.docker_time("0001-01-01T00:00:00Z") is None and backend.docker_time(None) is None
