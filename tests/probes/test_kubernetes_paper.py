"""The Kubernetes probe runtime on paper (conformance/probes/kubernetes.py): the kubectl commands it gives,
against a recorded kubectl (a script on PATH that logs its argv and stdin and answers canned output).
Not run against a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.model.target import ProbeSpec
from conformance.probes import RUNTIMES, ProbeError, ProbeRequest
from conformance.probes.kubernetes import KubectlRuntime, object_name

FAKE = """#!/bin/sh
log={log}
printf '%s\\n' "$*" >> "$log"
case "$*" in
  *" apply -f -"*) cat >> "$log"; echo >> "$log"; echo "deployment.apps/x created" ;;
  *" rollout status "*) {rollout} ;;
  *" port-forward "*) echo "Forwarding from 127.0.0.1:43123 -> 8080"; exec sleep 300 ;;
  *" get deployment/"*) echo '{{"status": {{"readyReplicas": 1}}}}' ;;
  *" delete "*) echo "deleted" ;;
esac
"""


def _kubectl(tmp_path: Path, rollout: str = "echo rolled out") -> tuple[Path, Path]:
    log = tmp_path / "kubectl.log"
    script = tmp_path / "bin" / "kubectl"
    script.parent.mkdir()
    script.write_text(FAKE.format(log=log, rollout=rollout))
    script.chmod(0o755)
    return script, log


def _request(tmp_path: Path, site: str, workload: str, central_url: str | None = None) -> ProbeRequest:
    spec = ProbeSpec(host="ssh://unused", address="unused", listen="unused", defects=["slow-path"])
    return ProbeRequest(site=site, workload=workload, spec=spec, run_id="20261207T063001Z-c113e0",
                        log_dir=tmp_path, central_url=central_url)


def test_deploy_health_remove_through_kubectl(tmp_path):
    kubectl, log = _kubectl(tmp_path)
    rt = KubectlRuntime(kubectl=str(kubectl), context="lab", namespace="probes",
                        node_selectors={"store-1": {"edge.example/site": "store-1"}})
    central = _request(tmp_path, "hq", "central")
    edge = _request(tmp_path, "store-1", "edge", central_url=rt.service_url(central))
    d = rt.deploy(edge)
    try:
        assert d.url == "http://127.0.0.1:43123" and d.port == 43123
        assert rt.health(d)
    finally:
        rt.remove(d)
    assert d.handle.poll() is not None  # the port-forward child ended
    name = object_name(edge)
    assert name == "ecp-20261207t063001z-c113e0-store-1" and len(name) <= 63
    lines = log.read_text().splitlines()
    argv = [ln for ln in lines if ln.startswith("--context")]
    assert argv == [
        "--context lab --namespace probes apply -f -",
        f"--context lab --namespace probes rollout status deployment/{name} --timeout=30s",
        f"--context lab --namespace probes port-forward service/{name} :8080",
        f"--context lab --namespace probes get deployment/{name} -o json",
        "--context lab --namespace probes delete deployment,service -l "
        "edge-conformance/run-id=20261207T063001Z-c113e0,edge-conformance/site=store-1 --ignore-not-found --wait=false",
    ]
    manifest = json.loads(lines[1])
    deployment, service = manifest["items"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"edge.example/site": "store-1"}
    args = pod["containers"][0]["args"]
    assert args[:2] == ["--listen", "0.0.0.0"]
    assert args[args.index("--central-url") + 1] == "http://ecp-20261207t063001z-c113e0-hq.probes.svc:8080"
    assert args[args.index("--defects") + 1] == "slow-path"
    assert deployment["metadata"]["labels"]["edge-conformance/run-id"] == "20261207T063001Z-c113e0"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_a_failed_rollout_removes_what_was_applied(tmp_path):
    kubectl, log = _kubectl(tmp_path, rollout="echo 'error: timed out waiting' >&2; exit 1")
    rt = KubectlRuntime(kubectl=str(kubectl))
    with pytest.raises(ProbeError, match="timed out waiting"):
        rt.deploy(_request(tmp_path, "hq", "central"))
    assert "delete deployment,service -l edge-conformance/run-id=" in log.read_text()


def test_on_paper_only():
    assert "kubernetes" not in RUNTIMES  # a target file cannot choose it (docs/real-targets.md)
