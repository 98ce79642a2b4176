"""The docker probe runtime with the site's engine reached over TCP with TLS both ways (`probes.engine`),
no ssh: this machine's Docker engine behind a TLS relay that requires a client certificate
(tests/helpers/tlsdocker.py) stands in for a site's tcp://HOST:2376. The central and edge probes are
containers started by this machine's docker CLI with --tlsverify; the data and fleet musts pass on them;
afterwards, also after a SIGKILL of the harness mid-run, no container of the run is left; a client
certificate the engine does not trust is one line, exit 2, and nothing started. Skipped without a Docker
engine (or the site image)."""

from __future__ import annotations

import os
import signal

import pytest
import yaml

from tests.helpers.cli import popen_cli, run_cli, run_edge
from tests.helpers.results import entry, read_json, validate_results
from tests.helpers.tlsdocker import TlsDocker, make_pki
from tests.probes.test_probes_docker_real_target import (  # noqa: F401 - gateway: a fixture
    _await_probes, _containers, _port, _profile, _wait_none, gateway)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def engine(tmp_path_factory, gateway):  # noqa: F811 - the fixture imported above
    proxy = TlsDocker.start(tmp_path_factory.mktemp("tlsdocker"))
    yield proxy
    proxy.stop()


def _target(engine: TlsDocker, gateway: str, tmp_path, *, cert=None, key=None, edge_defects=()):  # noqa: F811
    tls = {"url": engine.url, "ca_file": str(engine.ca), "cert_file": str(cert or engine.cert),
           "key_file": str(key or engine.key)}
    # no hosts at all: the probes reach the sites' engine directly; central published on the bridge's gateway
    sites = [{"name": "hq", "role": "central",
              "probes": {"runtime": "docker", "engine": tls, "port": _port(), "address": gateway}},
             {"name": "store-1", "role": "edge", "uplink": "hq",
              "probes": {"runtime": "docker", "engine": tls, "port": _port(), "defects": list(edge_defects)}}]
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"name": "docker-tls-lab", "sites": sites}, sort_keys=False))
    return path


def test_probes_on_an_engine_over_tls_are_measured_and_removed(engine, gateway, tmp_path):  # noqa: F811
    code, res, output = run_edge("--profile", _profile(tmp_path), "--target", _target(engine, gateway, tmp_path),
                                 "--deploy-probes", out=tmp_path / "out", timeout=120)
    validate_results(res)
    for rid, site in (("DATA", "store-1"), ("REG", "hq")):
        r = entry(res, rid, site)
        assert r["status"] == "pass", (rid, r["status"], r.get("message"), output[-3000:])
    assert code == 0 and res["scope"]["probes"] == ["hq", "store-1"]
    assert _wait_none(res["run_id"], 10) == []


def test_sigkill_of_the_harness_leaves_no_container(engine, gateway, tmp_path):  # noqa: F811
    target = _target(engine, gateway, tmp_path, edge_defects=["no-heartbeat"])
    proc = popen_cli("run", "--profile", _profile(tmp_path, within="60 s"), "--target", target, "--deploy-probes",
                     "--requirement", "REG", "--out", tmp_path / "out")
    try:
        run_id = _await_probes(proc, tmp_path / "out", 2)
        os.kill(proc.pid, signal.SIGKILL)  # the local docker CLIs lose their parent; their attach ends
        proc.wait(10)
        left = _wait_none(run_id, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert left == [], f"containers left after the harness was killed: {left}"


def test_an_untrusted_client_certificate_is_one_line_and_starts_nothing(engine, gateway, tmp_path):  # noqa: F811
    make_pki(tmp_path / "other")  # a client certificate of another CA
    target = _target(engine, gateway, tmp_path, cert=tmp_path / "other" / "client.pem",
                     key=tmp_path / "other" / "client.key")
    done = run_cli("run", "--profile", _profile(tmp_path), "--target", target, "--deploy-probes",
                   "--out", tmp_path / "out", timeout=120)
    assert done.returncode == 2, (done.returncode, done.stdout[-1000:], done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if "probe of site hq" in line]
    assert len(lines) == 1 and f"docker engine {engine.url} (TLS)" in lines[0], done.stderr[-2000:]
    assert "the engine's URL and the TLS files" in lines[0] and "Traceback" not in done.stderr
    run_id = (read_json(tmp_path / "out" / "results.json") or {}).get("run_id")
    assert not run_id or _containers(run_id) == []
