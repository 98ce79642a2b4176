"""Ctrl-C (SIGINT) and SIGTERM during a run keep what was measured and mark the rest not-run."""

from __future__ import annotations

import json
import signal
import time

from tests.helpers.cli import popen_cli, write_profile, write_target
from tests.helpers.results import read_json, validate_results
from tests.helpers.waits import wait_for


def test_sigint_and_sigterm_during_a_run(tmp_path, http_url, hanging_url):
    profile = write_profile(tmp_path / "p.yaml", [
        "{id: R-1, title: first, level: must, check: functional.http, params: {path: /health}, "
        "expect: status == 200}",
        "{id: R-2, title: hangs, level: must, check: functional.http, "
        "params: {endpoint: hang, path: /health, timeout: 10 s}, expect: status == 200}",
        "{id: R-3, title: never reached, level: must, check: functional.http, params: {path: /health}, "
        "expect: status == 200}",
    ])
    target = write_target(tmp_path / "t.yaml", {"api": http_url, "hang": hanging_url})
    # both runs at once: each spends most of its time blocked on the hanging endpoint
    runs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / f"out-{sig.name}"
        runs[sig] = (popen_cli("run", "--profile", profile, "--target", target, "--out", out, cwd=tmp_path), out)
    try:
        for sig, (proc, out) in runs.items():
            def first_done(out=out):
                data = read_json(out / "results.json")
                return data and data["requirements"][0]["status"] != "not-run"

            wait_for(first_done, 60, f"the first result of the {sig.name} run")
            time.sleep(0.5)  # R-2 is now blocked on the endpoint that never answers
            assert proc.poll() is None, "the run ended before it could be interrupted"
            proc.send_signal(sig)
            signalled = time.monotonic()
            wait_for(lambda out=out: (read_json(out / "results.json") or {}).get("state") == "interrupted", 8,
                      f"results.json to say interrupted after {sig.name}")
            assert time.monotonic() - signalled < 8
        for sig, (proc, out) in runs.items():
            stdout, stderr = proc.communicate(timeout=40)  # the 10 s check timeout bounds any straggler
            assert proc.returncode == 3, f"{sig.name}: exit {proc.returncode}\n{stdout}\n{stderr}"
            assert "Traceback" not in stderr
            data = json.loads((out / "results.json").read_text(encoding="utf-8"))
            validate_results(data)
            assert data["state"] == "interrupted" and data["finished"]
            status = {r["id"]: r["status"] for r in data["requirements"]}
            assert status == {"R-1": "pass", "R-2": "not-run", "R-3": "not-run"}, (sig.name, status)
            assert data["verdict"] == "incomplete"
            assert data["counts"]["not-run"] == 2 and data["counts"]["pass"] == 1
    finally:
        for proc, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
