"""The docker probe runtime: the reference workload as a container on the site's own Docker engine, run
attached, `docker run -i --rm`, whose stdin is the probe's life-line (docs/real-targets.md, "Probes").
The engine is reached one of two ways (`Engine`):

* through the site's ssh host (default): the site's docker CLI, as the long-lived child of the harness's
  ssh (`ssh HOST exec docker run ...`);
* over TCP with TLS both ways (`probes.engine: {url: tcp://HOST:2376, ca_file, cert_file, key_file}`):
  this machine's docker CLI with `-H URL --tlsverify` and the three files, as the harness's child; no
  ssh, no docker CLI at the site.

* the image is the docker backend's site image (conformance/emulation/docker/images.py: built by the
  harness machine's own Docker, cached by digest); when the site's engine lacks it, `docker save` here
  is piped into `docker load` there, over the same ssh options;
* the container is `edge-conformance-probe-<run id>-<site>`, labelled with the run id, publishing the
  probe's port on `listen:port`; its entrypoint is python3 with a three-line bootstrap (the workload
  listening on 0.0.0.0 inside the container);
* it ends when its stdin ends: the harness closes the pipe (remove), or dies (ssh sends EOF or the
  connection drops; the docker CLI then closes the container's stdin, `docker run -i` sets StdinOnce),
  and `--rm` removes it. `remove` also runs `docker rm -f` of that one name.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess

from ..model.hostspec import split_spec
from ..model.target import ProbeSpec
from .base import READY_TIMEOUT_S, Deployed, ProbeError, ProbeRequest
from .ssh import REMOVE_TIMEOUT_S, STOP_WAIT_S, _ready_line, _url_host, ssh_argv

CONTAINER_PORT = 8080
LABEL_PROBE_RUN = "io.edge-conformance.probe-run"
LABEL_SITE = "io.edge-conformance.site"
LOAD_TIMEOUT_S = 600.0
BOOTSTRAP = ("import sys; from edge_workloads.lean import prepare_site_process; prepare_site_process(); "
             "from edge_workloads import runtime; runtime.HOST = '0.0.0.0'; "
             "from edge_workloads.cli import main; sys.exit(main(sys.argv[1:]))")


def container_name(request: ProbeRequest) -> str:
    return f"{request.tag}-{request.site}"


class Engine:
    """How docker commands reach the site's engine: `argv(args)` runs `docker ARGS` there."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        if spec.engine is not None:
            e = spec.engine
            self.via = f"docker engine {e.url} (TLS)"
            self.ssh: list[str] = []
            self.local = ["docker", "-H", e.url, "--tlsverify", "--tlscacert", e.ca_file, "--tlscert", e.cert_file,
                          "--tlskey", e.key_file]
        else:
            self.via = f"docker through {split_spec(spec.host)[0]}"
            self.ssh = ssh_argv(spec.host)  # LookupError: a host the ssh options cannot be built for
            self.local = []

    def argv(self, args: list[str], *, quiet: bool = False) -> list[str]:
        if self.local:
            return [*self.local, *args]
        line = "exec " + " ".join(shlex.quote(a) for a in ["docker", *args])
        if quiet:
            line = " ".join(shlex.quote(a) for a in ["docker", *args]) + " >/dev/null 2>&1; true"
        return [*self.ssh, line]


class DockerRuntime:
    name = "docker"

    def __init__(self) -> None:
        self._image: str | None = None

    def image(self) -> str:
        """The site image's tag, built here if needed (the harness machine's Docker)."""
        if self._image is None:
            from ..emulation.docker.images import ensure_image

            try:
                self._image = ensure_image().tag
            except Exception as exc:  # noqa: BLE001 - no local docker, a failed build: one message
                raise ProbeError(f"the probe image could not be built on this machine (it needs Docker here "
                                 f"too): {exc}") from None
        return self._image

    def run_args(self, request: ProbeRequest, image: str) -> list[str]:
        """`docker ARGS` of the probe's container (attached: its stdin is the life-line)."""
        spec = request.spec
        return ["run", "-i", "--rm", "--init", "--name", container_name(request),
                "--label", f"{LABEL_PROBE_RUN}={request.run_id}", "--label", f"{LABEL_SITE}={request.site}",
                "-p", f"{_url_host(spec.listen)}:{spec.port}:{CONTAINER_PORT}", "--entrypoint", "python3", image,
                "-c", BOOTSTRAP, *request.workload_args("/data", CONTAINER_PORT)]

    def deploy(self, request: ProbeRequest) -> Deployed:
        spec = request.spec
        try:
            engine = Engine(spec)
        except LookupError as exc:
            raise ProbeError(f"probe of site {request.site}: {exc}") from None
        where = f"probe of site {request.site} ({engine.via})"
        image = self.image()
        self._ensure_image_there(engine, image, where)
        request.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = request.log_dir / f"{request.site}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(engine.argv(self.run_args(request, image)), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        deployed = Deployed(request, url="", port=spec.port, handle=proc,
                            info={"log": str(log_path), "engine": engine, "container": container_name(request)})
        try:
            ready = _ready_line(proc, log_path, READY_TIMEOUT_S)
        except ProbeError as exc:
            self.remove(deployed)
            raise ProbeError(f"{where}: {exc}") from None
        deployed.url = f"http://{_url_host(spec.address)}:{spec.port}"
        deployed.info["pid"] = ready.get("pid")
        return deployed

    def health(self, deployed: Deployed) -> bool:
        from edge_workloads.defects import readiness_path

        from ..measure.http import request

        proc = deployed.handle
        if proc is None or proc.poll() is not None:
            return False
        return request(deployed.url + readiness_path(deployed.request.spec.defects), timeout=3.0).status == 200

    def remove(self, deployed: Deployed) -> None:
        proc: subprocess.Popen | None = deployed.handle
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            try:
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        engine = deployed.info.get("engine") or Engine(deployed.request.spec)
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(engine.argv(["rm", "-f", container_name(deployed.request)], quiet=True),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=REMOVE_TIMEOUT_S)

    def _ensure_image_there(self, engine: Engine, image: str, where: str) -> None:
        try:
            done = subprocess.run(engine.argv(["image", "inspect", "--format", "{{.Id}}", image]),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise ProbeError(f"{where}: docker did not answer within 60 s") from None
        if done.returncode == 0:
            return
        said = done.stderr.decode("utf-8", "replace").strip()
        if "No such image" not in said:
            who = ("the engine's URL and the TLS files" if engine.local
                   else "the ssh user needs the docker CLI and access to the engine")
            raise ProbeError(f"{where}: the site's docker does not answer: {(said.splitlines() or ['?'])[-1]} "
                             f"({who})")
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            load = subprocess.run(engine.argv(["load", "--quiet"]), stdin=save.stdout, capture_output=True,
                                  timeout=LOAD_TIMEOUT_S)
        finally:
            if save.stdout:
                save.stdout.close()
            save.wait()
        if load.returncode != 0:
            raise ProbeError(f"{where}: docker load of {image} there failed: "
                             f"{(load.stderr.decode('utf-8', 'replace').strip().splitlines() or ['?'])[-1]}")
