"""The target file's `probes:` section (model/target.py) and `run --deploy-probes`'s refusals: located
one-line errors, exit 2, before anything is installed."""

from __future__ import annotations

import pytest
import yaml

from conformance.model.errors import ConfigError
from conformance.model.target import load_target
from tests.helpers.cli import run_cli

HOST = "ssh://ops@10.0.0.5:2222"


def _write(tmp_path, central_probes=None, edge_probes=None, edge_uplink="hq", edge_hosts=(HOST,), defaults=None):
    sites = [{"name": "hq", "role": "central", "hosts": [HOST]},
             {"name": "store-1", "role": "edge", "hosts": list(edge_hosts)}]
    if edge_uplink:
        sites[1]["uplink"] = edge_uplink
    if central_probes is not None:
        sites[0]["probes"] = central_probes
    if edge_probes is not None:
        sites[1]["probes"] = edge_probes
    path = tmp_path / "lab.yaml"
    doc = {"name": "lab", **({"probes": defaults} if defaults is not None else {}), "sites": sites}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_defaults_and_wiring(tmp_path):
    t = load_target(_write(tmp_path, {}, {"port": 8088, "defects": ["slow-path"]}, edge_uplink=None))
    hq, store = t.site("hq"), t.site("store-1")
    assert hq.probes is not None and store.probes is not None
    assert (hq.probes.runtime, hq.probes.host, hq.probes.address, hq.probes.listen, hq.probes.port,
            hq.probes.python, hq.probes.dir) == ("ssh", HOST, "10.0.0.5", "10.0.0.5", 0, "python3", "/tmp")
    assert store.probes.port == 8088 and store.probes.defects == ["slow-path"]
    assert store.uplink == "hq"  # an edge probe without an uplink reports to the one central probe


@pytest.mark.parametrize(("central", "edge", "hosts", "field", "needle"), [
    ({}, {"port": 70000}, (HOST,), "sites[1].probes.port", "70000"),
    ({}, {"runtime": "k8s"}, (HOST,), "sites[1].probes.runtime", "k8s"),
    ({}, {"runtime": "docker"}, (HOST,), "sites[1].probes", "give port"),
    ({}, {"defects": ["leak-personel"]}, (HOST,), "sites[1].probes.defects", 'did you mean "leak-personal"'),
    ({}, {"python": "python3; rm -rf /"}, (HOST,), "sites[1].probes.python", "not a plain path"),
    ({}, {"dir": "tmp"}, (HOST,), "sites[1].probes.dir", "absolute"),
    ({}, {"host": "10.9.9.9"}, (HOST,), "sites[1].probes.host", "not part of any of the site's hosts"),
    ({}, {}, ("paramiko://ops@10.0.0.5",), "sites[1].probes.host", "through an ssh:// host"),
    ({}, {}, (), "sites[1].probes", "give the site hosts"),
    (None, {}, (HOST,), "sites[1].uplink", "has no central probe"),
    ({"central_url": "http://x:1"}, {}, (HOST,), "sites[0].probes.central_url", "an edge probe's"),
    ({}, {"config": {"no_such_setting": 1}}, (HOST,), "sites[1].probes.config", "no_such_setting"),
    ({}, {"engine": {"url": "tcp://e:2376"}}, (HOST,), "sites[1].probes.engine", "goes with runtime: docker"),
    ({}, {"runtime": "docker", "port": 1, "engine": {"url": "http://e:2375"}}, (HOST,),
     "sites[1].probes.engine.url", "is not tcp://HOST:PORT"),
    ({}, {"runtime": "docker", "port": 1, "engine": {"url": "tcp://e:2376"}}, (HOST,), "sites[1].probes.engine",
     "TLS only (both ways): give ca_file, cert_file, key_file"),
    ({}, {"runtime": "docker", "port": 1, "engine": {"url": "tcp://e:2376", "ca_file": "ca.pem",
                                                     "cert_file": "c.pem", "key_file": "c.key"}}, (HOST,),
     "sites[1].probes.engine.ca_file", "ca.pem: No such file"),
])
def test_bad_sections_are_located(tmp_path, central, edge, hosts, field, needle):
    with pytest.raises(ConfigError) as err:
        load_target(_write(tmp_path, central, edge, edge_hosts=hosts))
    assert err.value.field == field, str(err.value)
    assert err.value.line and needle in str(err.value), str(err.value)


def test_top_level_defaults(tmp_path):
    t = load_target(_write(tmp_path, {"port": 9000}, {}, defaults={"python": "/opt/py/bin/python3", "port": 8000,
                                                                 "dir": "/var/tmp"}))
    hq, store = t.site("hq").probes, t.site("store-1").probes
    assert hq is not None and store is not None
    assert (hq.python, hq.port, hq.dir) == ("/opt/py/bin/python3", 9000, "/var/tmp")  # the site's own wins
    assert (store.python, store.port, store.dir) == ("/opt/py/bin/python3", 8000, "/var/tmp")
    # a bad default is located where it is written; a site without probes: gets none
    with pytest.raises(ConfigError) as err:
        load_target(_write(tmp_path, {}, None, edge_uplink=None, defaults={"dir": "relative"}))
    assert err.value.field == "probes.dir" and err.value.line == 3, str(err.value)
    with pytest.raises(ConfigError) as err:
        load_target(_write(tmp_path, {}, {}, defaults={"central_url": "http://x:1"}))
    assert err.value.field == "probes.central_url", str(err.value)


def test_a_bad_section_is_one_line_and_exit_2(tmp_path):
    target = _write(tmp_path, {}, {"port": "eighty"})
    proc = run_cli("run", "--profile", "edge-baseline", "--target", target, "--deploy-probes",
                   "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sites[1].probes.port" in lines[0] and f"{target}:" in lines[0], proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_deploy_probes_needs_a_probes_section(tmp_path):
    target = _write(tmp_path)
    proc = run_cli("run", "--profile", "edge-baseline", "--target", target, "--deploy-probes",
                   "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--deploy-probes" in lines[0] and "no site of target lab has a probes:" in lines[0]
    proc = run_cli("run", "--profile", "edge-baseline", "--target", "emulated", "--deploy-probes",
                   "--out", tmp_path / "out2")
    assert proc.returncode == 2 and "not on an emulated target" in proc.stderr, proc.stderr


def test_an_engine_over_tls_needs_no_host_and_its_files_are_found_next_to_the_target(tmp_path):
    for name in ("ca.pem", "c.pem", "c.key"):
        (tmp_path / name).write_text("x")
    engine = {"url": "tcp://10.0.0.9:2376", "ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "c.key"}
    t = load_target(_write(tmp_path, {}, {"runtime": "docker", "port": 18081, "engine": engine}, edge_hosts=()))
    spec = t.site("store-1").probes
    assert spec.engine is not None and spec.engine.url == "tcp://10.0.0.9:2376" and spec.host == ""
    assert spec.engine.ca_file == str(tmp_path / "ca.pem") and spec.address == "10.0.0.9"
    from conformance.probes.docker import Engine

    argv = Engine(spec).argv(["ps"])
    assert argv == ["docker", "-H", "tcp://10.0.0.9:2376", "--tlsverify", "--tlscacert", str(tmp_path / "ca.pem"),
                    "--tlscert", str(tmp_path / "c.pem"), "--tlskey", str(tmp_path / "c.key"), "ps"]
