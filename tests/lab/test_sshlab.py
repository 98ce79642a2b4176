"""The SSH lab's target file (tests/helpers/sshlab.py), without Docker: it loads as a real target with
ssh:// hosts, strict known_hosts, probes and the edge's WAN grant."""

from __future__ import annotations

import yaml

from conformance.model.target import load_target
from tests.helpers.sshlab import LAB_PYTHON, LabSite, SshLab, lab_python, sshd_config, target_doc


def _lab(tmp_path) -> SshLab:
    lab = SshLab(tmp_path)
    lab.key.write_text("key")
    lab.known_hosts.write_text("")
    lab.sites = [LabSite("hq", "central", 40022, 40080, address="172.30.0.2"),
                 LabSite("store-1", "edge", 40023, 40081, address="172.30.0.3")]
    return lab


def test_the_lab_target_loads_with_probes_and_the_wan_grant(tmp_path):
    lab = _lab(tmp_path)
    target = load_target(lab.target(tmp_path / "lab.yaml", margin="3 s", defects={"store-1": ["leak-personal"]}))
    hq, store = (next(s for s in target.sites if s.name == n) for n in ("hq", "store-1"))
    assert store.uplink == "hq" and hq.role == "central"
    assert store.hosts[0].startswith("ssh://root@127.0.0.1:40023")
    assert store.probes is not None and store.probes.central_url == "http://172.30.0.2:40080"
    assert store.probes.port == 40081 and store.probes.listen == "0.0.0.0" and store.probes.python == LAB_PYTHON
    assert list(store.probes.defects) == ["leak-personal"] and hq.probes is not None and not hq.probes.defects
    doc = yaml.safe_load((tmp_path / "lab.yaml").read_text())
    grant = doc["sites"][1]["faults"]
    assert grant == {"margin": "3 s", "wan": {"peer": "172.30.0.2", "interface": "eth0", "filter": "nft"}}
    assert "faults" not in doc["sites"][0]
    assert target_doc(lab)["sites"][1]["faults"]["margin"] == "30 s"


def test_sshd_refuses_passwords_and_the_wrapper_finds_aiohttp():
    config = sshd_config()
    assert "PasswordAuthentication no" in config and "PermitRootLogin prohibit-password" in config
    assert "PYTHONPATH=/opt/edge-conformance/lib" in lab_python() and lab_python().startswith("#!/bin/sh\n")
