"""The docker backend of emulated deployments: every site is a container (its own network namespace,
real CPU and memory limits), every WAN and access link a shaping relay on the host.

    start_deployment("retail", backend="docker")          # or: edge-conformance run --backend docker

Modules (see docs/docker-backend.md):

    images.py      the site image, built offline (mmdebstrap -> import -> a thin layer), cached by digest
    net.py         per-site networks, subnets, kernel netem detection (used when the kernel has it)
    relayd.py      the WAN/access link relay: linkd's relay bound to a site network's gateway address
    backend.py     containers of one deployment (DockerSite, a conformance.emulation.site.Site),
                   cleanup by label, container stats
    docker_supervisor.py  DockerSupervisor: the docker backend (a conformance.emulation.supervisor
                   Supervisor, named "docker" in conformance.emulation.backends)
    siteinit.py    runs INSIDE a site container: the workload, nginx and mosquitto

This module is imported inside the site containers (by siteinit), so it must stay free of imports:
only names and label keys live here.
"""

from __future__ import annotations

HARNESS = "edge-conformance"
LABEL_HARNESS = "io.edge-conformance.harness"     # = HARNESS on every object we create
LABEL_RUN = "io.edge-conformance.run-id"          # containers and networks of one deployment
LABEL_SITE = "io.edge-conformance.site"
LABEL_ROLE = "io.edge-conformance.role"
LABEL_KIND = "io.edge-conformance.kind"           # site | network | base-image | site-image
LABEL_RECIPE = "io.edge-conformance.recipe"       # images: digest of the recipe they were built from
LABEL_TEMPORARY = "io.edge-conformance.temporary"  # images: "1" = removed by `emulate down --all`

SITE_ENV = "EDGE_CONFORMANCE_SITE"                # the site's JSON spec, read by siteinit
# Defaults of siteinit when its spec names no port (the supervisor always does: it gives every site
# ports free on the host and publishes them at the same number, see backend.py).
API_PORT = 8080                                   # the site's HTTP port
WORKLOAD_PORT = 8081                              # the Python workload, when nginx sits in front
MQTT_PORT = 1883
# The site image's ENTRYPOINT: the container's main process (the workload, under docker-init). The
# target file names it (labels.command) so host checks find the site's own process in the container.
WORKLOAD_ARGV = ("python3", "-m", "conformance.emulation.docker.siteinit")
# The management interface's files, bind-mounted read-only into every site container by the
# supervisor (from STATE_DIR/pki: the site's certificate and key, the deployment's password file).
# The CA's key never enters a container; the password never travels in the environment or the spec.
MGMT_DIR = "/run/mgmt"
MGMT_CERT = f"{MGMT_DIR}/site.pem"
MGMT_KEY = f"{MGMT_DIR}/site.key"
MGMT_PASSWORD = f"{MGMT_DIR}/mgmt.password"
STACK_KEY = "stack"                               # site config key: extra real services of a site
STACK_SERVICES = ("nginx", "mosquitto")
# Defects that break a stack service (siteinit writes them into its configuration): a site must run it.
STACK_DEFECTS = {"nginx-no-cache": "nginx", "nginx-no-stale": "nginx", "bridge-drops-queued": "mosquitto"}
