"""The plugin tests' sandbox: a user's own checks (CHECKS), a target's sites, a requirement of theirs
(`req`), the options that keep inner runs fast, and what `edge_run` (conftest.py) returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

# A user's own check, in their own test file: what it does is chosen by the requirement's params.
CHECKS = '''
import pytest


@pytest.mark.edge_check("custom.thing")
def test_x(edge):
    mode = edge.params.get("mode", "pass")
    edge.note(f"mode {mode}")
    if mode == "pass":
        edge.record("value", 2)
    elif mode == "fail":
        edge.record("value", 5)
    elif mode == "raise":
        raise RuntimeError("boom")
    elif mode == "error":
        edge.error("endpoint unreachable")
    elif mode == "inconclusive":
        edge.inconclusive("too few samples")
    elif mode == "skip":
        edge.skip("feature absent at this site")
    elif mode == "pytest-skip":
        pytest.skip("no tool here")
    elif mode == "unmeasured":
        edge.not_measured("site has no hosts", "give the site a host")
    elif mode == "not-applicable":
        edge.not_applicable("nothing asks for credentials")
    elif mode == "starved":
        edge.record("p50", 5, "ms")
        edge.record("p99", 40, "ms")
        edge.evidence("pressure", cpu=35.0, io=0.5, memory=0.0, window_s=6.0, target_cores=0.1)
    elif mode == "samples":
        edge.record("p99", 2, "ms")
        edge.evidence("samples", count=3)
    elif mode == "assert":
        assert 1 == 2, "custom assertion"
    elif mode == "nan":
        edge.record("value", float("nan"))
    elif mode == "ms":
        edge.record("wait", 1500, "ms")
    elif mode == "nothing":
        pass
    edge.attach("samples", [1, 2, 3])


def test_plain():
    """An ordinary test next to the checks keeps running."""
'''

SITES = [
    {"name": "central", "role": "central", "endpoints": {"api": "http://127.0.0.1:9"}},
    {"name": "site-a", "role": "edge", "uplink": "central", "endpoints": {"api": "http://127.0.0.1:9"}},
    {"name": "site-b", "role": "edge", "uplink": "central", "endpoints": {"api": "http://127.0.0.1:9"}},
]


def req(rid, mode="pass", level="must", expect="value <= 3", applies_to=("site-a",), check="custom.thing",
        **extra):
    r = {"id": rid, "title": f"{rid} title", "level": level, "check": check, "params": {"mode": mode},
         "expect": expect, "rationale": "because", "source": "assumed: test"}
    if applies_to:
        r["applies_to"] = list(applies_to)
    r.update(extra)
    return r


# The inner runs happen in this process: without these, pytest re-does the assertion rewriting of
# whole plugin packages (hypothesis ...) on every run, which costs seconds each time.
FAST = ("--assert=plain", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:cacheprovider")


@dataclass
class EdgeRun:
    result: pytest.RunResult
    data: dict
    out: Path

    def entry(self, rid: str, site: str = "site-a") -> dict:
        found = [r for r in self.data["requirements"] if r["id"] == rid and r["site"] == site]
        assert len(found) == 1, f"{rid}@{site}: {found}"
        return found[0]

    def statuses(self) -> dict[str, str]:
        return {f"{r['id']}@{r['site']}": r["status"] for r in self.data["requirements"]}
