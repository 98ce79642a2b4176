"""Host checks over real SSH: sshd on loopback (tests/helpers/sshbed.py), read through ssh://, paramiko://
(directly and through a jump host) and ansible:// (an Ansible inventory), by the real CLI.

* functional.process, functional.port and footprint.memory pass on every way in;
* the jump host is used (its sshd logs the connections);
* a host whose key is not the one in known_hosts is refused: `error` naming the host-key failure,
  never a pass, on ssh:// and paramiko:// alike (testinfra's own paramiko backend would connect);
* the key path given as ${ENV_VAR} is in no output: results.json, junit.xml, summary.md, report.html,
  the terminal;
* an inventory's groups become roles as documented; a bad inventory is one line and exit 2.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import requirement, run_edge, write_profile
from tests.helpers.results import entry, validate_results
from tests.helpers.sshbed import SshBed

KEY_VAR = "EDGE_TEST_SSH_KEY"
BAD_KEY_VAR = "EDGE_TEST_SSH_BAD_KEY"
KNOWN_VAR = "EDGE_TEST_KNOWN_HOSTS"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshbed")
    bed = SshBed.start(root / "bed")
    yield bed
    bed.stop()


def _requirements(bed: SshBed) -> list[dict]:
    pattern = "sshd_config"  # the test bed's sshd (its command line names its config) and its children
    return [
        requirement("PROC", "functional.process", "running == true and count >= 1",
                    {"process": str(bed.root / "sshd_config")}, sites=["edge", "central"]),
        requirement("PORT", "functional.port", "listening == true and owner_ok == true",
                    {"port": bed.port, "process": pattern}, sites=["edge", "central"]),
        requirement("MEM", "footprint.memory", "rss > 0 MiB", {"process": str(bed.root / "sshd_config")},
                    sites=["edge", "central"]),
    ]


def _outputs(out: Path, output: str) -> str:
    texts = [output]
    for name in ("results.json", "junit.xml", "summary.md", "report.html"):
        path = out / name
        assert path.exists(), f"no {name}"
        texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_ssh_paramiko_and_jump_hosts_from_a_target_file(bed, tmp_path):
    key_copy = tmp_path / "keys" / "site-key-7f3a"  # a path only the environment names
    key_copy.parent.mkdir()
    shutil.copy(bed.key, key_copy)
    key_copy.chmod(0o600)
    missing_key = tmp_path / "keys" / "no-such-key-91c2"
    host = f"{bed.user}@127.0.0.1:{bed.port}"
    jump = f"{bed.user}@127.0.0.1:{bed.jump_port}"
    shutil.copy(bed.known_hosts, tmp_path / "known_hosts")  # the target file's, relative to it
    secret_known = tmp_path / "keys" / "kh-5d1e"  # one only the environment names
    shutil.copy(bed.known_hosts, secret_known)
    sites = [
        {"name": "via-ssh", "role": "edge",
         "hosts": [{"spec": f"ssh://{host}", "ssh_identity_file": "${%s}" % KEY_VAR, "known_hosts": "known_hosts"}]},
        {"name": "via-paramiko", "role": "edge",
         "hosts": [f"paramiko://{host}?ssh_identity_file=${{{KEY_VAR}}}&known_hosts=${{{KNOWN_VAR}}}"]},
        {"name": "via-jump", "role": "edge",
         "hosts": [{"spec": f"ssh://{host}", "ssh_identity_file": "${%s}" % KEY_VAR,
                    "known_hosts": "known_hosts", "jump": jump}]},
        {"name": "paramiko-jump", "role": "edge",
         "hosts": [{"spec": f"paramiko://{host}", "ssh_identity_file": "${%s}" % KEY_VAR,
                    "known_hosts": "known_hosts", "jump": jump}]},
        {"name": "wrong-key-ssh", "role": "central",
         "hosts": [{"spec": f"ssh://{host}", "ssh_identity_file": "${%s}" % KEY_VAR,
                    "known_hosts": str(bed.wrong_known_hosts)}]},
        {"name": "wrong-key-paramiko", "role": "central",
         "hosts": [{"spec": f"paramiko://{host}", "ssh_identity_file": "${%s}" % KEY_VAR,
                    "known_hosts": str(bed.wrong_known_hosts)}]},
        {"name": "bad-key", "role": "central",
         "hosts": [{"spec": f"ssh://{host}", "ssh_identity_file": "${%s}" % BAD_KEY_VAR,
                    "known_hosts": "known_hosts"}]},
    ]
    target = tmp_path / "lab.yaml"
    target.write_text(yaml.safe_dump({"name": "sshbed", "sites": sites}, sort_keys=False))
    profile = write_profile(tmp_path / "p.yaml", _requirements(bed))
    jump_log_before = bed.log("jump").count("Accepted publickey")
    started = time.monotonic()
    code, res, output = run_edge("--profile", profile, "--target", target, out=tmp_path / "out",
                                 env={KEY_VAR: str(key_copy), BAD_KEY_VAR: str(missing_key),
                                      KNOWN_VAR: str(secret_known)}, timeout=120)
    took = time.monotonic() - started
    validate_results(res)
    for site in ("via-ssh", "via-paramiko", "via-jump", "paramiko-jump"):
        for rid in ("PROC", "PORT", "MEM"):
            r = entry(res, rid, site)
            assert r["status"] == "pass", (site, rid, r["status"], r.get("message"), output[-2000:])
    assert entry(res, "PROC", "via-ssh")["measured"]["count"]["value"] >= 1
    # the jump host carried the jump sites' connections (ssh's ProxyCommand and paramiko's channel)
    assert bed.log("jump").count("Accepted publickey") >= jump_log_before + 2, bed.log("jump")[-2000:]

    for site, needle in (("wrong-key-ssh", "Host key verification failed"),
                         ("wrong-key-paramiko", "host key verification failed")):
        for rid in ("PROC", "PORT", "MEM"):
            r = entry(res, rid, site)
            assert r["status"] == "error", (site, rid, r["status"], r.get("message"))
            assert needle in r["message"], (site, rid, r["message"])
    bad = entry(res, "PROC", "bad-key")
    assert bad["status"] == "error", bad
    assert code == 1 or code == 3, output[-2000:]  # errors on musts: not conformant / incomplete

    # The key paths the environment gave are nowhere: not in results, reports or the terminal.
    everything = _outputs(tmp_path / "out", output)
    assert str(key_copy) not in everything
    assert "site-key-7f3a" not in everything
    assert "no-such-key-91c2" not in everything
    assert "kh-5d1e" not in everything
    assert "${%s}" % KEY_VAR in (tmp_path / "out" / "results.json").read_text()
    print(f"target-file run: {took:.1f} s")


INVENTORY = """\
[edge]
store-a ansible_host=127.0.0.1 edge_conformance_endpoint_api=http://127.0.0.1:{port}

[stores]
store-b ansible_host=127.0.0.1 edge_conformance_endpoints='{{"api": "tcp://127.0.0.1:{port}"}}'

[stores:vars]
edge_conformance_role=edge
edge_conformance_uplink=hq

[central]
hq ansible_host=127.0.0.1

[paramiko_hosts]
store-p ansible_host=127.0.0.1 ansible_connection=paramiko_ssh edge_conformance_role=edge

[all:vars]
ansible_port={port}
ansible_user={user}
ansible_ssh_private_key_file={key}
ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes'
edge_conformance_name=inventory-bed
"""


def test_inventory_hosts_through_ansible(bed, tmp_path):
    if shutil.which("ansible-inventory") is None:
        pytest.skip("ansible-core is not installed (pip install -e '.[test]')")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(INVENTORY.format(port=bed.port, user=bed.user, key=bed.key, known=bed.known_hosts))
    # a footprint read through ssh is the target-file test's; here the process and port checks
    profile = write_profile(tmp_path / "p.yaml", [r for r in _requirements(bed) if r["id"] != "MEM"])
    started = time.monotonic()
    code, res, output = run_edge("--profile", profile, "--inventory", inventory, out=tmp_path / "out", timeout=120)
    took = time.monotonic() - started
    validate_results(res)
    sites = {s["name"]: s for s in res["target"]["sites"]}
    assert {n: s["role"] for n, s in sites.items()} == {"store-a": "edge", "store-b": "edge", "hq": "central",
                                                        "store-p": "edge"}
    assert sites["store-b"]["uplink"] == "hq"
    assert sites["store-a"]["endpoints"] == {"api": f"http://127.0.0.1:{bed.port}"}
    assert sites["store-b"]["endpoints"] == {"api": f"tcp://127.0.0.1:{bed.port}"}
    assert sites["hq"]["hosts"] == [f"ansible://hq?ansible_inventory={inventory}"]
    assert res["target"]["inventory"] == str(inventory)
    assert res["options"]["inventory"] == str(inventory)
    for site in ("store-a", "store-b", "hq"):
        for rid in ("PROC", "PORT"):
            r = entry(res, rid, site)
            assert r["status"] == "pass", (site, rid, r["status"], r.get("message"), output[-2000:])
    # paramiko_ssh: the harness's strict paramiko backend, and this host's key is in no known_hosts it reads
    r = entry(res, "PROC", "store-p")
    assert r["status"] == "error" and "host key verification failed" in r["message"], r
    assert code in (1, 3)
    # --rerun-failed takes the inventory again (not a target file) and re-runs only what did not pass
    code2, res2, output2 = run_edge("--rerun-failed", tmp_path / "out" / "results.json", out=tmp_path / "out2",
                                    timeout=120)
    assert res2["target"]["inventory"] == str(inventory), output2[-2000:]
    assert entry(res2, "PROC", "store-p")["status"] == "error"
    assert entry(res2, "PROC", "store-a")["status"] == "pass"  # merged from the first run
    print(f"inventory run: {took:.1f} s")


def test_bad_inventory_is_one_line_and_exit_2(tmp_path):
    if shutil.which("ansible-inventory") is None:
        pytest.skip("ansible-core is not installed (pip install -e '.[test]')")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[edge]\nstore-1 edge_conformance_endpoint_api=10.0.0.5:8080\n")
    from tests.helpers.cli import run_cli

    proc = run_cli("run", "--profile", "edge-baseline", "--inventory", inventory, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0] == (f"edge-conformance: error: {inventory}:2: store-1: edge_conformance_endpoint_api: "
                        '"10.0.0.5:8080" is not a URL with one of the schemes '
                        + lines[0].split("one of the schemes ", 1)[1]), lines[0]
    assert not (tmp_path / "out" / "results.json").exists()
