"""Helpers for running the plugin in a pytester sandbox: a user's own checks, profile and target."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import conformance.engine.lifecycle  # noqa: F401  (imported once, not per inner run)
import conformance.engine.record  # noqa: F401

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


@pytest.fixture
def edge_run(pytester):
    def run(requirements, *args, sites=SITES, waivers=None, checks=CHECKS) -> EdgeRun:
        profile = pytester.path / "profile.yaml"
        profile.write_text(yaml.safe_dump({"id": "mine", "version": "1", "title": "Mine",
                                           "requirements": requirements}, sort_keys=False))
        target = pytester.path / "target.yaml"
        target.write_text(yaml.safe_dump({"name": "lab", "sites": sites}, sort_keys=False))
        test_file = pytester.path / "test_mine.py"
        test_file.write_text(textwrap.dedent(checks))
        extra = []
        if waivers is not None:
            w = pytester.path / "waivers.yaml"
            w.write_text(yaml.safe_dump({"waivers": waivers}, sort_keys=False))
            extra += ["--edge-waivers", str(w)]
        out = pytester.path / "out"
        result = pytester.runpytest("-p", "no:locust", *FAST, "--edge-profile", str(profile), "--edge-target",
                                    str(target), "--edge-out", str(out), "--edge-no-reports", "-rA",
                                    *extra, *args, str(test_file))
        data = json.loads((out / "results.json").read_text(encoding="utf-8"))
        return EdgeRun(result, data, out)

    return run
