"""Fixtures for the resilience suite tests (the CLI and profile helpers: tests.helpers.cli).

* `standin`: a stand-in REAL target made of local processes we control: a central and an edge
  workload process and a linkd relaying the edge's WAN, so fault hooks can partition, heal and degrade
  it (tests/suites/resilience/standin_ctl.py) and pause/resume the edge (kill -STOP/-CONT). Loopback only.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.processes import ReadyChild

HERE = Path(__file__).resolve().parent
CTL = HERE / "standin_ctl.py"


# ---------------------------------------------------------------------------------------------
# stand-in real target


def http(method: str, url: str, body: Any = None, timeout: float = 5) -> Any:
    assert url.startswith("http://127.0.0.1:"), url
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


class StandIn:
    """central + linkd (WAN of store-1) + store-1, all ours, on 127.0.0.1."""

    LINK = "wan:store-1"

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[ReadyChild] = []
        wl = [sys.executable, "-m", "edge_workloads"]
        fast = json.dumps({"cache_ttl_s": 1.0, "heartbeat_interval_s": 0.5, "config_poll_interval_s": 0.5})
        self.central = self._start([*wl, "--role", "central", "--name", "central", "--data-dir",
                                    str(root / "central")], "central")
        self.linkd = self._start([sys.executable, "-m", "conformance.emulation.linkd"], "linkd")
        self.control = f"127.0.0.1:{self.linkd.ready['control_port']}"
        link = http("PUT", f"http://{self.control}/links/{self.LINK}",
                    {"upstream": f"127.0.0.1:{self.central.ready['port']}", "delay_ms": 5})
        self.edge = self._start([*wl, "--role", "edge", "--name", "store-1", "--data-dir", str(root / "store-1"),
                                 "--central-url", f"http://127.0.0.1:{link['listen_port']}",
                                 "--site-config", fast], "store-1")
        self.central_url = f"http://127.0.0.1:{self.central.ready['port']}"
        self.edge_url = f"http://127.0.0.1:{self.edge.ready['port']}"

    def _start(self, args: list[str], name: str) -> ReadyChild:
        proc = ReadyChild(args, self.root / f"{name}.log")
        self.procs.append(proc)
        return proc

    def link(self) -> dict:
        return http("GET", f"http://{self.control}/links/{self.LINK}")

    def ctl(self, action: str, *extra: str) -> list[str]:
        """argv of a hook that drives our linkd ({site} picks the link, so one hook fits every site entry)."""
        return [sys.executable, str(CTL), "--control", self.control, "--log", str(self.root / "hooks.log"),
                action, "wan:store-1", *extra]

    def marker(self, name: str) -> Path:
        return self.root / f"{name}.marker"

    def target(self, path: Path, sites: dict[str, dict[str, Any]], central_hooks: dict | None = None) -> Path:
        """A target file: central (with `central_hooks`), plus edge site entries (all served by our
        store-1) with these hooks."""
        central = {"name": "central", "role": "central", "endpoints": {"api": self.central_url}}
        if central_hooks:
            central["hooks"] = central_hooks
        doc = {"name": "stand-in", "description": "local processes standing in for a real deployment",
               "sites": [central]}
        for name, hooks in sites.items():
            doc["sites"].append({"name": name, "role": "edge", "uplink": "central",
                                 "endpoints": {"api": self.edge_url}, "hooks": hooks})
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    s = StandIn(tmp_path_factory.mktemp("standin"))
    try:
        yield s
    finally:
        s.close()
