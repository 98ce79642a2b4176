"""functional.tcp through the plugin, against local socket servers: a port that accepts and then closes
at once (EOF or reset, as a relay with no live backend does) is not "connected"; one that stays open
silently, or sends a banner, is; a closed port is not."""

from __future__ import annotations

import socket
import struct
import threading

import pytest


class Server:
    """A TCP server on 127.0.0.1 in a thread: `behaviour` is eof, reset, silent or banner."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.behaviour == "eof":
                conn.close()
            elif self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                if self.behaviour == "banner":
                    conn.sendall(b"SSH-2.0-edge-test\r\n")
                self.held.append(conn)   # kept open until the test ends

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def servers():
    made: list[Server] = []

    def make(behaviour: str) -> Server:
        made.append(Server(behaviour))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_accepted_then_closed_is_not_connected(edge_run, make_site, servers):
    with socket.socket() as probe:   # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    made = {b: servers(b) for b in ("eof", "reset", "silent", "banner")}
    sites = [make_site(b, endpoints={"api": s.url}, hosts=()) for b, s in made.items()]
    sites.append(make_site("closed", endpoints={"api": f"http://127.0.0.1:{closed_port}"}, hosts=()))
    results = edge_run([{"id": "T-TCP", "title": "tcp", "level": "must", "check": "functional.tcp",
                         "params": {"timeout": "2 s"}, "expect": "connected == true"}],
                       sites, ["functional"], name="tcp")
    for behaviour in ("eof", "reset"):
        r = results("T-TCP", behaviour)
        assert r["status"] == "fail" and r["measured"]["connected"]["value"] in (False, 0), results.explain("T-TCP", behaviour)
        assert "accepted, then closed at once: a proxy with no live backend?" in r["message"]
        assert made[behaviour].accepted >= 1   # the handshake did complete: this is not a refusal
    for behaviour in ("silent", "banner"):
        assert results.status("T-TCP", behaviour) == "pass", results.explain("T-TCP", behaviour)
        assert results.value("T-TCP", behaviour, "connect_time") < 2000
    assert results.status("T-TCP", "closed") == "fail", results.explain("T-TCP", "closed")
    assert "accepted" not in results("T-TCP", "closed")["message"]
