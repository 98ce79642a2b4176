"""A tiny stand-in for an edge site process, for the host/security/footprint suite tests.

It listens on 127.0.0.1 and can be told to misbehave in exactly one way at a time (an extra listening
socket, a big RSS, a busy CPU, missing headers, default credentials, TLS 1.0 ...). It writes
{"port": ..., "pid": ...} to --ready-file once it serves and exits when its stdin closes, so it never
outlives the test that started it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# Spins until its parent is gone (or 2 minutes pass), so a killed fake site leaves no busy orphan.
SPIN = ("import os, time\nparent, end = os.getppid(), time.monotonic() + 120\n"
        "while os.getppid() == parent and time.monotonic() < end:\n    pass\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--extra-listen", action="store_true", help="also listen on a second TCP port")
    ap.add_argument("--rss-mb", type=int, default=0)
    ap.add_argument("--busy", action="store_true", help="spin one core")
    ap.add_argument("--child", action="store_true", help="run a child process (a sleeping python)")
    ap.add_argument("--bad-headers", action="store_true", help="no security headers, a versioned Server")
    ap.add_argument("--basic-auth", default=None, help="user:password required on every path but /health")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--tls-legacy", action="store_true", help="accept TLS 1.0 too")
    ap.add_argument("--no-cache-hit", action="store_true")
    ap.add_argument("--reject-telemetry", action="store_true")
    ap.add_argument("--lose-sales", action="store_true")
    args = ap.parse_args()

    ballast = bytearray(args.rss_mb * 2**20)
    for i in range(0, len(ballast), 4096):  # touch every page so it is resident
        ballast[i] = 1

    sales: dict[str, dict] = {}
    cache: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeSite/1.2.3" if args.bad_headers else "edge"
        sys_version = ""

        def log_message(self, *a):  # quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if not args.bad_headers:
                self.send_header("X-Content-Type-Options", "nosniff")
                if args.tls:
                    self.send_header("Strict-Transport-Security", "max-age=31536000")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            if not args.basic_auth or self.path == "/health":
                return True
            want = "Basic " + base64.b64encode(args.basic_auth.encode()).decode()
            if self.headers.get("Authorization") == want:
                return True
            self._send(401, b'{"error":"auth"}', extra={"WWW-Authenticate": 'Basic realm="edge"'})
            return False

        def do_GET(self):
            if not self._authorized():
                return
            if self.path == "/health":
                return self._send(200, json.dumps({"status": "ok", "name": "fake"}).encode())
            if self.path.startswith("/pos/transactions/"):
                tx = sales.get(self.path.rsplit("/", 1)[1])
                if tx is None:
                    return self._send(404, b'{"error":"no such transaction"}')
                return self._send(200, json.dumps({"id": tx["id"], "state": "pending", "record": tx}).encode())
            if self.path.startswith("/content/"):
                key = self.path[len("/content/"):]
                hit = key in cache and not args.no_cache_hit
                cache.add(key)
                return self._send(200, f"content {key}\n".encode(), "text/plain",
                                  {"X-Cache": "HIT" if hit else "MISS"})
            return self._send(200, b"hello edge\n", "text/plain")

        def do_POST(self):
            if not self._authorized():
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path == "/pos/transactions":
                sale = json.loads(body)
                if not args.lose_sales:
                    sales[sale["id"]] = sale
                return self._send(201, json.dumps({"id": sale["id"], "state": "pending"}).encode())
            if self.path == "/telemetry":
                if args.reject_telemetry:
                    return self._send(503, b'{"error":"ingest disabled"}')
                return self._send(202, b'{"accepted":1}')
            return self._send(404, b'{"error":"not found"}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*args.tls)
        if args.tls_legacy:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    extra = None
    if args.extra_listen:
        extra = socket.socket()
        extra.bind(("127.0.0.1", 0))
        extra.listen()
    child = None
    if args.child:
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    spinners = []
    if args.busy:  # a spinning child: a core's worth of demand, visible even on a crowded machine
        for _ in range(1):
            spinners.append(subprocess.Popen([sys.executable, "-c", SPIN]))

    threading.Thread(target=server.serve_forever, daemon=True).start()
    info = {"port": server.server_address[1], "pid": os.getpid(),
            "extra_port": extra.getsockname()[1] if extra else None, "child": child.pid if child else None}
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, args.ready_file)
    try:
        sys.stdin.read()  # until the test closes our stdin (or dies)
    finally:
        for p in ([child] if child is not None else []) + spinners:
            p.kill()
        server.shutdown()
        del ballast
    time.sleep(0)


if __name__ == "__main__":
    main()
