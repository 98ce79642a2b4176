"""Helpers for the latency suite's end-to-end tests.

* `run_cli(...)`: the real `edge-conformance run` in a subprocess; results.json read back.
* `derived_profile(...)`: a profile file extending a shipped one with some of its requirements disabled.
* `write_profile(...)`: a small profile of our own requirements.
* `entry(results, id, site)`: one results.json entry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from conformance.model.paths import profiles_dir

CLI = [sys.executable, "-m", "conformance.cli"]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_"))}
    env["PYTEST_ADDOPTS"] = "-p no:hypothesispytest -p no:benchmark"
    return env


def run(args: list[Any], timeout: float = 120, cwd: Path | None = None) -> tuple[int, str]:
    """(exit code, output) of a command; the child is killed (its whole group) after `timeout`."""
    proc = subprocess.Popen([*map(str, args)], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # a run turns SIGTERM into a clean stop (deployment removed)
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        raise AssertionError(f"{args[:6]} did not finish within {timeout} s:\n{output[-3000:]}")
    return proc.returncode, output


def run_cli(*args: Any, out: Path, timeout: float = 120) -> tuple[int, dict, str]:
    """(exit code, results.json, output) of `edge-conformance run ... --out OUT`."""
    code, output = run([*CLI, "run", *args, "--out", out], timeout=timeout)
    return code, read_results(out, code, output), output


def read_results(out: Path, code: int, output: str) -> dict:
    path = out / "results.json"
    assert path.exists(), f"no results.json (exit {code}):\n{output[-3000:]}"
    return json.loads(path.read_text())


def left_out(r: dict) -> bool:
    """An entry the run's own options (--site, --suite, --requirement) left out: not measured, never a
    pass, and not a check that could not measure."""
    return r["status"] == "not-measured" and "left out of this run" in (r.get("ended") or {}).get("reason", "")


def starved(r: dict) -> bool:
    """Inconclusive because the harness's machine was starved while measuring (the verdict rule's
    contention excuse, with the pressure evidence that grounds it): what a healthy site may get on a
    busy shared runner instead of a pass. A fail never counts as this."""
    from conformance.model.verdict import starved_resources

    return (r["status"] == "inconclusive" and "starved while measuring" in r["message"]
            and any(v.get("kind") == "pressure" and starved_resources(v) for v in r.get("validity", [])))


def entry(results: dict, rid: str, site: str) -> dict:
    for r in results["requirements"]:
        if r["id"] == rid and r["site"] == site:
            return r
    raise AssertionError(f"no result for {rid}@{site}: "
                         f"{sorted((r['id'], r['site']) for r in results['requirements'])}")


def measured(r: dict, metric: str) -> float:
    """A measured time metric in ms (or a ratio in %, a count as is)."""
    m = r["measured"].get(metric)
    assert m is not None, f"{r['id']}@{r['site']}: {metric} not measured ({r['status']}: {r['message']})"
    factor = {"us": 1e-3, "ms": 1.0, "s": 1e3}.get(m["unit"], 1.0)
    return m["value"] * factor


def derived_profile(path: Path, parent: str, disable: list[str], pid: str | None = None) -> Path:
    """A profile extending shipped profile `parent`, with the requirements in `disable` disabled."""
    doc = {"id": pid or f"{parent}-latency-test", "version": "0", "title": f"{parent} without {', '.join(disable)}",
           "extends": str(profiles_dir() / f"{parent}.yaml"),
           "requirements": [{"id": rid, "disabled": True} for rid in disable]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_profile(path: Path, requirements: list[dict], pid: str = "latency-test") -> Path:
    reqs = [{"title": r["id"], "level": "should", "source": "assumed: a test of the latency suite", **r}
            for r in requirements]
    path.write_text(yaml.safe_dump({"id": pid, "version": "0", "title": "latency suite test",
                                    "requirements": reqs}, sort_keys=False))
    return path
