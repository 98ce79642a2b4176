"""The `edge_run` fixture: the plugin in a pytester sandbox (its checks, sites and requirements:
tests/plugin/sandbox.py)."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

import conformance.engine.lifecycle  # noqa: F401  (imported once, not per inner run)
import conformance.engine.record  # noqa: F401

from tests.plugin.sandbox import CHECKS, FAST, SITES, EdgeRun


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
