"""A plain threaded HTTP/1.1 server that answers GET after a fixed sleep: a target the prober was not
tuned on (benchmarks/latency_floor.py). Standard library only, one thread per connection, keep-alive.

    python benchmarks/threaded_sleep_server.py PORT DELAY_MS

Prints "ready PORT" once listening; stops on SIGTERM or when its stdin closes.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"ok\n"


def main() -> int:
    port, delay_s = int(sys.argv[1]), float(sys.argv[2]) / 1000

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the prober and wrk expect
        # Headers and body are separate writes: with Nagle on, the body waits for the peer's delayed
        # ACK (40 ms on Linux), which would measure the TCP stack, not the server.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if delay_s:
                time.sleep(delay_s)
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args) -> None:
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError:  # a client that leaves mid-request (wrk at its end)
                pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
