"""The SSH lab's target document (conformance/emulation/docker/sshlab.py), without Docker: it loads as a real
target with ssh:// hosts, strict known_hosts, probes, each edge's WAN grant and every site's probe grant;
the sshd it runs takes keys only; the ssh-lab topology is reached by ssh and runs on the docker backend only."""

from __future__ import annotations

import pytest

from conformance.emulation import backends
from conformance.emulation.docker.sshlab import LAB_PYTHON, LabSite, SshLab, lab_python, sshd_config
from conformance.model.target import load_target
from conformance.model.topology import load_topology


def _lab(tmp_path) -> SshLab:
    lab = SshLab(tmp_path)
    lab.key.write_text("key")
    lab.known_hosts.write_text("")
    lab.sites = [LabSite("hq", "central", 40022, 40080, address="172.30.0.2"),
                 LabSite("store-1", "edge", 40023, 40081, uplink="hq", defects=["leak-personal"],
                         address="172.30.0.3")]
    return lab


def test_the_lab_target_loads_with_probes_and_the_grants(tmp_path):
    import yaml

    doc = _lab(tmp_path).target_doc(margin="3 s", extra={"lab": {"run_id": "R", "backend": "docker",
                                                                  "control_url": "http://127.0.0.1:1"}})
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    target = load_target(tmp_path / "lab.yaml")
    hq, store = (next(s for s in target.sites if s.name == n) for n in ("hq", "store-1"))
    assert store.uplink == "hq" and hq.role == "central" and target.lab["run_id"] == "R"
    assert target.kind == "emulated" and target.redacted()["lab"] == {"run_id": "R", "backend": "docker",
                                                                     "topology": None}
    assert store.hosts[0].startswith("ssh://root@127.0.0.1:40023")
    assert store.probes is not None and store.probes.central_url == "http://172.30.0.2:40080"
    assert store.probes.port == 40081 and store.probes.listen == "0.0.0.0" and store.probes.python == LAB_PYTHON
    assert list(store.probes.defects) == ["leak-personal"] and hq.probes is not None and not hq.probes.defects
    assert doc["sites"][1]["faults"] == {"margin": "3 s", "process": {"probe": True},
                                         "wan": {"peer": "172.30.0.2", "interface": "eth0", "filter": "nft"}}
    assert doc["sites"][0]["faults"] == {"margin": "3 s", "process": {"probe": True}}  # central: no WAN cut
    assert store.faults.process.probe and store.faults.wan.peers == ["172.30.0.2"] and store.faults.margin == 3


def test_sshd_refuses_passwords_and_the_wrapper_finds_aiohttp():
    config = sshd_config()
    assert "PasswordAuthentication no" in config and "PermitRootLogin prohibit-password" in config
    assert "PYTHONPATH=/opt/edge-conformance/lib" in lab_python() and lab_python().startswith("#!/bin/sh\n")


def test_the_ssh_lab_topology_runs_on_the_docker_backend_only():
    topology = load_topology("ssh-lab")
    assert topology.reach == "ssh" and [s.name for s in topology.sites] == ["hq", "store-1", "store-2"]
    assert backends.supervisor_class("docker", "ssh").__name__ == "SshLabSupervisor"
    assert backends.supervisor_class("docker").__name__ == "DockerSupervisor"
    with pytest.raises(backends.UnknownBackend, match="runs on the docker backend, not local: pass --backend docker"):
        backends.supervisor_class("local", "ssh")


def _write(tmp_path, doc) -> str:
    import yaml

    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_a_lab_block_that_is_not_this_harness_s_grants_nothing(tmp_path):
    """A hand-written (or another state root's) `lab:` neither allows faults nor deploys probes."""
    from conformance.engine.lifecycle import open_target
    from conformance.faults import NOT_ALLOWED, faults_for
    from conformance.model.errors import ConfigError, NotMeasured

    path = _write(tmp_path, _lab(tmp_path).target_doc(extra={"lab": {
        "run_id": "not-ours", "backend": "docker", "control_url": "http://127.0.0.1:9"}}))
    with pytest.raises(NotMeasured) as err:
        faults_for(load_target(path), "store-1", allow_real=False)
    assert err.value.reason == NOT_ALLOWED
    with pytest.raises(ConfigError, match=r"lab: fault refused: run not-ours at http://127.0.0.1:9 is not an "
                                          r"emulated deployment of this state root .*--target emulated:ssh-lab"):
        with open_target(path, run_id="R", profiles=[]):
            pass


@pytest.mark.parametrize("process,message", [
    ({"probe": True, "pattern": "x"}, "give exactly one of pattern"),
    ({"probe": True, "start": "x"}, "the probe's keeper starts it"),
    ({"probe": "yes"}, r"faults\.process\.probe: True was expected"),
])
def test_a_probe_grant_is_alone_and_true(tmp_path, process, message):
    from conformance.model.errors import ConfigError

    doc = _lab(tmp_path).target_doc()
    doc["sites"][1]["faults"]["process"] = process
    with pytest.raises(ConfigError, match=message):
        load_target(_write(tmp_path, doc))


def test_a_probe_grant_needs_a_probe_and_does_nothing_without_one(tmp_path):
    from conformance.faults import faults_for
    from conformance.model.errors import ConfigError, NotMeasured

    doc = _lab(tmp_path).target_doc()
    del doc["sites"][1]["probes"]
    with pytest.raises(ConfigError, match=r"sites\[1\]\.faults\.process\.probe: the site has no probes: section"):
        load_target(_write(tmp_path, doc))
    # with a probes: section but no --deploy-probes: nothing to kill (never an empty pattern: that is everyone)
    faults = faults_for(load_target(_write(tmp_path, _lab(tmp_path).target_doc())), "store-1", allow_real=True)
    with pytest.raises(NotMeasured) as err:
        faults.require("kill")
    assert "faults.process names the probe, but this run deployed no probe on site store-1" in err.value.reason
    assert err.value.remedy == "pass --deploy-probes (the grant is for the probe the run deploys)"


def test_a_probe_grant_needs_the_ssh_runtime_s_keeper(tmp_path):
    from conformance.model.errors import ConfigError

    doc = _lab(tmp_path).target_doc()
    doc["sites"][1]["probes"].update({"runtime": "docker", "port": 18081})
    with pytest.raises(ConfigError, match=r"sites\[1\]\.faults\.process\.probe: the docker probe runtime has no "
                                          r"keeper to stop and start the probe"):
        load_target(_write(tmp_path, doc))


def test_a_deployed_probe_s_labels_describe_its_own_host_only():
    from types import SimpleNamespace

    from conformance.measure.host.edgehost import EdgeHost
    from conformance.measure.host.site import scope_for, site_data_dir

    site = SimpleNamespace(name="store-1", labels={"process": "probe --serve", "data_dir": "/tmp/p/data",
                                                   "probe_host": "ssh://ops@app"})
    app, db = EdgeHost("ssh://ops@app"), EdgeHost("ssh://ops@db")
    assert scope_for(site, {}, app).pattern == "probe --serve" and site_data_dir(site, app) == "/tmp/p/data"
    assert scope_for(site, {}, db).kind == "host" and site_data_dir(site, db) is None
    own = SimpleNamespace(name="store-1", labels={"process": "edge-stack", "data_dir": "/var/lib/edge"})
    assert scope_for(own, {}, db).pattern == "edge-stack" and site_data_dir(own, db) == "/var/lib/edge"
