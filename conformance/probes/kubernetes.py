"""A Kubernetes probe runtime, ON PAPER: the commands it gives kubectl are tested against a recorded kubectl
(tests/probes/test_kubernetes_paper.py), never against a cluster. It is not in RUNTIMES, and a target
file cannot choose it (docs/real-targets.md, "Probes", "Kubernetes (planned)").

Per site, the same interface as the ssh runtime:

* deploy: `kubectl apply -f -` of a Deployment (one replica, a nodeSelector that pins it to the site's
  nodes, the workload image running the probe zipapp listening on 0.0.0.0:8080) and a ClusterIP Service
  of the same name, both labelled edge-conformance/run-id and edge-conformance/site; `kubectl rollout
  status` (bounded); then a `kubectl port-forward service/NAME :8080` child of the harness, whose first
  line names the local port the harness measures through. An edge probe's central URL is the central
  probe's Service as the edge pod reaches it: http://NAME.NAMESPACE.svc:8080;
* health: `kubectl get deployment NAME -o json`, readyReplicas >= 1;
* remove: the port-forward ends; `kubectl delete deployment,service -l run-id=...,site=...`.

What this runtime cannot do that the ssh one does: die with the harness. A SIGKILLed harness leaves the
objects; the plan is `sweep(run_id)` (delete by the run-id label) at the start of the next run with the
same kubeconfig context, and an `edge-conformance/expires` annotation the sweep honours for other runs.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Sequence

from .base import READY_TIMEOUT_S, Deployed, ProbeError, ProbeRequest

PROBE_PORT = 8080
LABEL_RUN = "edge-conformance/run-id"
LABEL_SITE = "edge-conformance/site"
_FORWARDING = re.compile(r"Forwarding from (?:127\.0\.0\.1|\[::1\]):(\d+)")


def object_name(request: ProbeRequest) -> str:
    """A DNS-1123 name of at most 63 characters that carries the run id and the site."""
    raw = f"ecp-{request.run_id}-{request.site}".lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw)[:63].strip("-")


class KubectlRuntime:
    name = "kubernetes"

    def __init__(self, *, kubectl: str = "kubectl", context: str | None = None, namespace: str = "default",
                 image: str = "edge-conformance/workloads:latest",
                 node_selectors: dict[str, dict[str, str]] | None = None):
        self.kubectl = kubectl
        self.context = context
        self.namespace = namespace
        self.image = image
        self.node_selectors = node_selectors or {}

    # ------------------------------------------------------------------ commands

    def base(self) -> list[str]:
        argv = [self.kubectl]
        if self.context:
            argv += ["--context", self.context]
        return [*argv, "--namespace", self.namespace]

    def service_url(self, request: ProbeRequest) -> str:
        return f"http://{object_name(request)}.{self.namespace}.svc:{PROBE_PORT}"

    def manifest(self, request: ProbeRequest) -> dict:
        name = object_name(request)
        labels = {LABEL_RUN: request.run_id, LABEL_SITE: request.site}
        args = ["--listen", "0.0.0.0", *request.workload_args("/data", PROBE_PORT)]
        container = {"name": "probe", "image": self.image, "args": args,
                     "ports": [{"containerPort": PROBE_PORT}],
                     "readinessProbe": {"httpGet": {"path": "/ping", "port": PROBE_PORT}},
                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"nodeSelector": self.node_selectors.get(request.site, {}),
                                           "containers": [container],
                                           "volumes": [{"name": "data", "emptyDir": {}}]}}}}
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
                   "spec": {"selector": labels, "ports": [{"port": PROBE_PORT, "targetPort": PROBE_PORT}]}}
        return {"apiVersion": "v1", "kind": "List", "items": [deployment, service]}

    def _run(self, args: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> str:
        try:
            done = subprocess.run([*self.base(), *args], input=stdin, capture_output=True, text=True,
                                  timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProbeError(f"kubectl {args[0]}: {exc}") from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise ProbeError(f"kubectl {' '.join(args[:2])}: exit {done.returncode}: {said}")
        return done.stdout

    # ------------------------------------------------------------------ the interface

    def deploy(self, request: ProbeRequest) -> Deployed:
        name = object_name(request)
        self._run(["apply", "-f", "-"], stdin=json.dumps(self.manifest(request)))
        deployed = Deployed(request, url="", port=0, info={"name": name})
        try:
            self._run(["rollout", "status", f"deployment/{name}", f"--timeout={int(READY_TIMEOUT_S)}s"],
                      timeout=READY_TIMEOUT_S + 10)
            forward = subprocess.Popen([*self.base(), "port-forward", f"service/{name}", f":{PROBE_PORT}"],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       text=True, start_new_session=True)
            deployed.handle = forward
            line = forward.stdout.readline() if forward.stdout else ""
            m = _FORWARDING.search(line)
            if not m:
                raise ProbeError(f"kubectl port-forward service/{name}: {line.strip() or 'no output'}")
        except ProbeError:
            self.remove(deployed)
            raise
        deployed.port = int(m[1])
        deployed.url = f"http://127.0.0.1:{deployed.port}"
        deployed.info["service_url"] = self.service_url(request)
        return deployed

    def health(self, deployed: Deployed) -> bool:
        try:
            doc = json.loads(self._run(["get", f"deployment/{deployed.info['name']}", "-o", "json"]))
        except (ProbeError, ValueError):
            return False
        return int((doc.get("status") or {}).get("readyReplicas") or 0) >= 1

    def remove(self, deployed: Deployed) -> None:
        forward = deployed.handle
        if forward is not None and forward.poll() is None:
            forward.terminate()
            try:
                forward.wait(5)
            except subprocess.TimeoutExpired:
                forward.kill()
                forward.wait()
        request = deployed.request
        with contextlib.suppress(ProbeError):
            self._run(["delete", "deployment,service", "-l",
                       f"{LABEL_RUN}={request.run_id},{LABEL_SITE}={request.site}", "--ignore-not-found",
                       "--wait=false"])

    def sweep(self, run_id: str) -> None:
        """Everything a run left (a harness that died): by its run-id label."""
        self._run(["delete", "deployment,service", "-l", f"{LABEL_RUN}={run_id}", "--ignore-not-found",
                   "--wait=false"])
