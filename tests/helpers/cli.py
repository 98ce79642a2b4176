"""The real command line in a subprocess, and the input files a run takes.

* `run_cli(*args)`: `edge-conformance ARGS` to completion (a CompletedProcess).
* `popen_cli(*args)`: the same, started (SIGINT at its default, as at a terminal).
* `run_command(argv)`: any command in a session of its own, (exit code, output); stopped with SIGTERM to
  its whole group (then SIGKILL) when it overruns, so a run takes its deployment down.
* `run_edge(*args, out=OUT)`: `edge-conformance run ARGS --out OUT`, (exit code, results.json, output).
* `run_edge_watched(*args, out=OUT)`: the same, tagged, watching for the run's load processes (a `Run`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.results import read_results
from tests.helpers.waits import LOAD_NEEDLES, TAG_VAR, descendants

CLI = [sys.executable, "-m", "conformance.cli"]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI child: no CI-provided summary file, no pytest variables of the outer run,
    plus `extra`. Third-party pytest plugins that happen to be installed (hypothesis, benchmark) have
    nothing to do with the suites yet cost a run more time than the checks
    (tests/cli/test_install_real_target.py runs without this)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_"))}
    env["PYTEST_ADDOPTS"] = "-p no:hypothesispytest -p no:benchmark"
    env.update(extra or {})
    return env


def _sigint_default() -> None:
    # SIGINT back to its default, whatever the outer process ignores, so the child turns it into
    # KeyboardInterrupt as an interactive Ctrl-C would
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: Any, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """`edge-conformance ARGS` to completion; stdout and stderr apart."""
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, env=cli_env(env), capture_output=True, text=True,
                          timeout=timeout)


def popen_cli(*args: Any, cwd: Path | None = None, env: dict[str, str] | None = None,
              stderr: int = subprocess.PIPE) -> subprocess.Popen:
    """`edge-conformance ARGS`, started; text pipes (stderr=subprocess.STDOUT merges the two)."""
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, env=cli_env(env), stdout=subprocess.PIPE,
                            stderr=stderr, text=True, preexec_fn=_sigint_default)


def _stop_group(proc: subprocess.Popen, grace: float = 20) -> str:
    """SIGTERM to the child's group (a run turns it into a clean stop, deployment removed), SIGKILL
    after `grace` s; what it wrote."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    return output or ""


def run_command(argv: list[Any], timeout: float = 120, cwd: Path | None = None,
                env: dict[str, str] | None = None, *, timeout_fails: bool = True,
                grace: float = 20) -> tuple[int, str]:
    """(exit code, output) of a command in a session of its own. After `timeout` s its whole group is
    stopped (SIGTERM, SIGKILL `grace` s later) and the test fails, or, with timeout_fails=False, the
    output starts with a TIMEOUT line."""
    proc = subprocess.Popen([*map(str, argv)], cwd=cwd, env=cli_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_sigint_default)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        output = _stop_group(proc, grace)
        if timeout_fails:
            raise AssertionError(f"{[str(a) for a in argv[:6]]} did not finish within {timeout} s:\n"
                                 f"{output[-3000:]}") from None
        output = f"TIMEOUT after {timeout:g} s\n{output}"
    return proc.returncode, output


def run_edge(*args: Any, out: Path, cwd: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 180) -> tuple[int, dict, str]:
    """(exit code, results.json, output) of `edge-conformance run ARGS --out OUT`."""
    code, output = run_command([*CLI, "run", *args, "--out", out], timeout=timeout, cwd=cwd, env=env)
    return code, read_results(out, code, output), output


@dataclass
class Run:
    code: int
    output: str
    results: dict
    tag: str
    out: Path
    seconds: float
    saw_load: bool = False
    load_pids: set[int] = field(default_factory=set)


def start_tagged(argv: list[Any], tag: str) -> subprocess.Popen:
    """A command in a session of its own, TAG_VAR=tag in its environment (inherited by all it starts)."""
    return subprocess.Popen([*map(str, argv)], env=cli_env({TAG_VAR: tag}), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_sigint_default)


def run_edge_watched(*args: Any, out: Path, timeout: float = 150) -> Run:
    """`edge-conformance run ARGS --out OUT`, tagged; `Run.saw_load` says whether a load process of the
    run was seen while it ran (so "none left afterwards", `wait_gone(run.tag)`, is not vacuous)."""
    tag = uuid.uuid4().hex
    t0 = time.monotonic()
    proc = start_tagged([*CLI, "run", *args, "--out", out], tag)
    pids: set[int] = set()
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"run {args[:6]} did not finish within {timeout} s")
            pids.update(pid for pid, _ in descendants(proc.pid, LOAD_NEEDLES))
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(10)
    output = "".join(chunks)
    return Run(proc.returncode, output, read_results(out, proc.returncode, output), tag, out,
               time.monotonic() - t0, saw_load=bool(pids), load_pids=pids)


# ------------------------------------------------------------------ input files


def requirement(rid: str, check: str, expect: str, params: dict | None = None, sites=None,
                level: str = "must") -> dict:
    """A requirement of a profile for a test, as a dict: `sites` is its applies_to."""
    r = {"id": rid, "title": rid, "level": level, "check": check, "expect": expect,
         "rationale": "test", "source": "assumed: test"}
    if params:
        r["params"] = params
    if sites:
        r["applies_to"] = sites
    return r


def write_profile(path: Path, requirements: list[dict | str], pid: str = "test-profile", *,
                  version: str = "0", title: str = "test profile", extends: str | None = None,
                  disable: tuple[str, ...] | list[str] = ()) -> Path:
    """A profile of our own requirements. A dict gets a title (its id), level `should` and a source
    unless it has them; a string is one requirement's YAML, written as it is (so a test can write what
    the loader must reject). `extends`: a shipped profile by name (written as its file), whose
    requirements in `disable` are disabled."""
    head: dict[str, Any] = {"id": pid, "version": version, "title": title}
    if extends:
        from conformance.model.paths import profiles_dir

        head["extends"] = str(profiles_dir() / f"{extends}.yaml")
    items = [json.dumps({"id": rid, "disabled": True}) for rid in disable]
    items += [r if isinstance(r, str) else json.dumps({"title": r["id"], "level": "should",
                                                       "source": "assumed: a test of the harness", **r})
              for r in requirements]
    text = yaml.safe_dump(head, sort_keys=False) + "requirements:" + ("".join(f"\n  - {r}" for r in items)
                                                                       if items else " []") + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def write_target(path: Path, endpoints: dict[str, str], site: str = "store-1", *,
                 credentials: dict[str, str] | None = None, name: str = "loopback") -> Path:
    """A target of one edge site with these endpoints (and credentials, e.g. {"token": "${VAR}"})."""
    entry: dict[str, Any] = {"name": site, "role": "edge", "endpoints": dict(endpoints)}
    if credentials:
        entry["credentials"] = dict(credentials)
    path.write_text(yaml.safe_dump({"name": name, "sites": [entry]}, sort_keys=False), encoding="utf-8")
    return path


def narrowed_profile(path: Path, parent: str, keep: dict[str, str | None], pid: str | None = None,
                     suite: str = "resilience") -> Path:
    """A profile extending shipped profile `parent`: its requirements in `keep` stay (narrowed to the
    site given, None = as shipped); every other requirement of `suite` is disabled. The same
    requirement text, checked on fewer sites."""
    from conformance.model.paths import profiles_dir
    from conformance.model.profile import load_profile

    base = load_profile(parent)
    reqs: list[dict] = []
    for r in base.requirements:
        if not r.check.startswith(f"{suite}."):
            continue
        if r.id in keep:
            if keep[r.id]:
                reqs.append({"id": r.id, "applies_to": keep[r.id]})
        else:
            reqs.append({"id": r.id, "disabled": True})
    missing = set(keep) - {r.id for r in base.requirements}
    assert not missing, f"{parent} has no requirements {missing}"
    doc = {"id": pid or f"{parent}-subset", "version": "0", "title": f"{parent}, some requirements",
           "extends": str(profiles_dir() / f"{parent}.yaml"), "requirements": reqs}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
