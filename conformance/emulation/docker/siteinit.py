"""The main process of a site container (docker backend): `python3 -m conformance.emulation.docker.siteinit`.

It runs INSIDE the container (under docker-init, so zombies are reaped), reads the site's spec from
the EDGE_CONFORMANCE_SITE environment variable (JSON, written by the supervisor) and runs:

* the reference workload (edge_workloads), in this very process, on 0.0.0.0:PORT
  (or on 0.0.0.0:APP_PORT when nginx sits in front of it);
* `nginx` (stack: [nginx]): on 0.0.0.0:PORT, the store's content cache. `/cdn/<key>` is
  proxy_cache'd from central's origin (`{central_url}/origin/<key>`, i.e. through the WAN link),
  fresh for `cache_ttl_s`, and served STALE while central cannot be reached
  (proxy_cache_use_stale error timeout updating + background update). Everything else is proxied
  to the workload, so the suites (/health, /pos, /content ...) work unchanged;
* `mosquitto` (stack: [mosquitto]): an MQTT broker on 0.0.0.0:MQTT_PORT. On an edge site it is bridged
  to central's broker through the WAN link: every local topic T goes to central as
  `stores/<site>/T`, QoS 1, persistent session (cleansession false) and messages queued while the
  WAN is down (queue_qos0_messages, max_queued_messages).

The site's defects that break nginx or mosquitto change what is written here (edge_workloads/defects.py):
`nginx-no-cache` (proxy_no_cache 1), `nginx-no-stale` (no proxy_cache_use_stale, no background update),
`bridge-drops-queued` (the bridge at QoS 0, no QoS 0 queueing).

* the management interface (spec `mgmt_port`): the workload's own TLS port on 0.0.0.0:MGMT_PORT
  (also with nginx in front: it is not proxied), with the certificate, key and password file the
  supervisor bind-mounts read-only under /run/mgmt.

PORT, APP_PORT, MQTT_PORT and MGMT_PORT come from the spec: the supervisor publishes each on
127.0.0.1 at the SAME port number, so what a site listens on inside its container is what its
endpoints say (port-based checks such as security.listening_ports see the endpoint's port).
Defaults: 8080, 8081, 1883; no management interface without MGMT_PORT.

If nginx or mosquitto dies, the site stops with status 1 (the container exits, and the supervisor
restarts it like any crashed site). SIGTERM stops everything cleanly. Only the standard library and
the workload's own dependencies are used here: this module is copied into the image.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from conformance.emulation.docker import (API_PORT, MGMT_CERT, MGMT_KEY, MGMT_PASSWORD, MQTT_PORT, SITE_ENV,
                                         STACK_SERVICES, WORKLOAD_PORT)

NGINX_CONF = "/etc/edge-conformance/nginx.conf"
MOSQUITTO_CONF = "/etc/edge-conformance/mosquitto.conf"
NGINX_CACHE_DIR = "/var/cache/edge-nginx"
DATA_DIR = "/data"
SERVICE_STOP_GRACE_S = 3.0

_stdin_keepalive: int | None = None  # write end of the workload's stdin pipe; never closed
_failed = threading.Event()
_stopping = threading.Event()


def log(message: str) -> None:
    print(f"siteinit: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- configuration


def nginx_conf(spec: dict[str, Any]) -> str:
    """nginx in front of the workload; /cdn/ is a proxy_cache of central's origin (edge sites)."""
    ttl = max(1, int(round(float(spec.get("cache_ttl_s") or 5))))
    central = (spec.get("central_url") or "").rstrip("/")
    defects = set(spec.get("defects") or [])
    # nginx-no-stale: no stale-if-error (an expired copy is never served: the origin's error is);
    # nginx-no-cache: nothing is ever stored (every GET a MISS fetched from the origin).
    serving = [] if "nginx-no-stale" in defects else [
        "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
        "proxy_cache_background_update on;"]
    if "nginx-no-cache" in defects:
        serving.append("proxy_no_cache 1;")
    serving_lines = "\n            ".join(serving)
    cdn = ""
    if central:
        cdn = f"""
        # The store's content cache: central's origin through the WAN link. Stale copies are served
        # at once while central is unreachable (error/timeout) or being refreshed (updating).
        location /cdn/ {{
            proxy_pass {central}/origin/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_key $request_uri;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            proxy_cache_valid 200 {ttl}s;
            proxy_cache_valid 404 1s;
            {serving_lines}
            proxy_cache_lock on;
            proxy_cache_lock_timeout 2s;
            proxy_connect_timeout 1s;
            proxy_send_timeout 2s;
            proxy_read_timeout 2s;
            add_header X-Cache $upstream_cache_status always;
        }}
"""
    return f"""# written by conformance.emulation.docker.siteinit for site {spec.get('name')}
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65;
    client_max_body_size 64m;
    proxy_cache_path {NGINX_CACHE_DIR} levels=1:2 keys_zone=edge:10m max_size=256m inactive=30d use_temp_path=off;
    upstream workload {{
        server 127.0.0.1:{spec.get("app_port") or WORKLOAD_PORT};
        keepalive 16;
    }}
    server {{
        listen {spec.get("port") or API_PORT} backlog=1024;
{cdn}
        location / {{
            proxy_pass http://workload;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
        }}
    }}
}}
"""


def mosquitto_conf(spec: dict[str, Any]) -> str:
    """A broker on 1883; on an edge site, bridged to central's broker over the WAN link."""
    name = spec.get("name", "site")
    # bridge-drops-queued: the bridge forwards at QoS 0 and nothing at QoS 0 is queued for a disconnected
    # client, so what is published while the bridge is down is dropped (a bridge set up for QoS 0).
    drops = "bridge-drops-queued" in (spec.get("defects") or [])
    lines = [
        f"# written by conformance.emulation.docker.siteinit for site {name}",
        "persistence true",
        "persistence_location /var/lib/mosquitto/",
        "autosave_interval 1",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "per_listener_settings false",
        "allow_anonymous true",
        # Messages for a disconnected persistent session (the bridge included) are queued.
        "max_queued_messages 100000",
        f"queue_qos0_messages {'false' if drops else 'true'}",
        f"listener {spec.get('mqtt_port') or MQTT_PORT} 0.0.0.0",
    ]
    uplink = spec.get("mqtt_uplink")
    if uplink:
        lines += [
            "",
            "# Bridge to central through the WAN link; queue while it is down.",
            f"connection {name}-uplink",
            f"address {uplink}",
            f"remote_clientid edge-{name}",
            f"local_clientid bridge-{name}",
            "cleansession false",
            "local_cleansession false",
            f'topic # out {0 if drops else 1} "" stores/{name}/',
            "try_private true",
            "notifications true",
            "keepalive_interval 5",
            "restart_timeout 1 5",
            "start_type automatic",
        ]
    return "\n".join(lines) + "\n"


def workload_argv(spec: dict[str, Any], port: int) -> list[str]:
    argv = ["--role", spec["workload"], "--name", spec["name"], "--data-dir", DATA_DIR, "--port", str(port)]
    if spec.get("central_url"):
        argv += ["--central-url", spec["central_url"]]
    if spec.get("defects"):
        argv += ["--defects", ",".join(spec["defects"])]
    if spec.get("config"):
        argv += ["--site-config", json.dumps(spec["config"], sort_keys=True)]
    if spec.get("mgmt_port"):
        # The management interface: the workload's own TLS port (never behind nginx), its files
        # bind-mounted read-only by the supervisor; the password is read from the file, never passed.
        argv += ["--mgmt-port", str(spec["mgmt_port"]), "--mgmt-cert", MGMT_CERT, "--mgmt-key", MGMT_KEY,
                 "--mgmt-password-file", MGMT_PASSWORD]
    return argv


# ------------------------------------------------------------------------------------ services


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def start_services(spec: dict[str, Any]) -> list[tuple[str, subprocess.Popen]]:
    stack = [s for s in spec.get("stack") or [] if s in STACK_SERVICES]
    started: list[tuple[str, subprocess.Popen]] = []
    if "mosquitto" in stack:
        _write(MOSQUITTO_CONF, mosquitto_conf(spec))
        started.append(("mosquitto", subprocess.Popen(["mosquitto", "-c", MOSQUITTO_CONF], stdin=subprocess.DEVNULL)))
    if "nginx" in stack:
        _write(NGINX_CONF, nginx_conf(spec))
        os.makedirs(NGINX_CACHE_DIR, exist_ok=True)
        subprocess.run(["chown", "www-data:www-data", NGINX_CACHE_DIR], check=False)
        started.append(("nginx", subprocess.Popen(["nginx", "-c", NGINX_CONF], stdin=subprocess.DEVNULL)))
    for name, proc in started:
        threading.Thread(target=_watch_service, args=(name, proc), name=f"watch-{name}", daemon=True).start()
    return started


def _watch_service(name: str, proc: subprocess.Popen) -> None:
    code = proc.wait()
    if _stopping.is_set():
        return
    log(f"{name} exited with status {code}: stopping the site (the supervisor restarts it)")
    _failed.set()
    os.kill(os.getpid(), signal.SIGTERM)  # the workload's handler stops it cleanly


def stop_services(services: list[tuple[str, subprocess.Popen]]) -> None:
    _stopping.set()
    for _name, proc in services:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SERVICE_STOP_GRACE_S
    for _name, proc in services:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------------------------------- main


def main() -> int:
    global _stdin_keepalive
    try:
        spec = json.loads(os.environ[SITE_ENV])
    except (KeyError, ValueError) as exc:
        log(f"no valid site spec in ${SITE_ENV}: {exc!r}")
        return 2
    with_nginx = "nginx" in (spec.get("stack") or [])
    port = int(spec.get("app_port") or WORKLOAD_PORT) if with_nginx else int(spec.get("port") or API_PORT)
    host = "0.0.0.0"
    services = start_services(spec)
    # The workload stops when its stdin reaches EOF (its harness died). Here the container is the
    # harness's handle, so give it a pipe whose write end we hold for as long as we live.
    read_end, _stdin_keepalive = os.pipe()
    os.dup2(read_end, 0)
    os.close(read_end)
    from edge_workloads import cli, runtime

    runtime.HOST = host  # the workload listens on 127.0.0.1 by contract; a container needs its eth0
    try:
        code = cli.main(workload_argv(spec, port))
    finally:
        stop_services(services)
    if _failed.is_set() and not code:
        code = 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
