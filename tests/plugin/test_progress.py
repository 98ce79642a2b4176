"""Live progress: where the run is and why a result did not pass, as it happens (report/progress.py)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap

import pytest
import yaml

from conformance.emulation.deployment import _read_ready
from conformance.report.progress import Estimate, bring_up_printer, clock, where
from tests.plugin.sandbox import CHECKS, FAST, SITES, req

REQUIREMENTS = [req("REQ-1", "pass", applies_to=("edge",)), req("REQ-2", "fail"), req("REQ-3", "unmeasured")]


def _files(path):
    (path / "profile.yaml").write_text(yaml.safe_dump(
        {"id": "mine", "version": "1", "title": "Mine", "requirements": REQUIREMENTS}, sort_keys=False))
    (path / "target.yaml").write_text(yaml.safe_dump({"name": "lab", "sites": SITES}, sort_keys=False))
    (path / "test_mine.py").write_text(textwrap.dedent(CHECKS))
    return ["--edge-profile", "profile.yaml", "--edge-target", "target.yaml", "--edge-out", "out",
            "--edge-no-reports", "test_mine.py"]


def test_the_time_left_is_the_rate_so_far_and_none_at_first():
    now = [100.0]
    e = Estimate(now=lambda: now[0])
    e.total = 200
    assert e.text() == "[0/200   0%] 0:00" and e.left() is None
    e.done, now[0] = 5, 110.0   # 2.5 % done: too early to tell
    assert e.left() is None
    e.done = 50                 # 50 in 10 s: 150 more take 30 s
    assert e.left() == pytest.approx(30.0) and e.text() == "[50/200  25%] 0:10, ~0:30 left"
    assert clock(3725) == "1:02:05"
    assert where("latency/test_latency.py::test_request[BASE-LAT-01@store-1]") == ("latency", "BASE-LAT-01@store-1")


def test_plain_lines_say_what_runs_and_why_a_result_did_not_pass_as_it_happens(pytester):
    args = _files(pytester.path)
    result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, "-q", *args)  # -q: as `run` calls pytest
    out = result.stdout.lines
    assert "edge-conformance: 4 requirement@site checks and 1 other tests to run" in out
    fail = out.index("  FAIL         REQ-2 site-a: value = 5, expected <= 3 (mode fail)")
    unmeasured = next(i for i, line in enumerate(out) if line.startswith("  NOT MEASURED REQ-3 site-a: not measured"))
    summary = next(i for i, line in enumerate(out) if "edge-conformance ===" in line)
    assert fail < unmeasured < summary  # as they happened, before the verdict table
    # no pytest letters for the checks (the ordinary test_plain keeps its dot)
    assert not any(line.lstrip(".").startswith(("F", "n")) or line.startswith("..") for line in out[:summary]), out


def test_a_terminal_gets_a_status_line_rewritten_in_place(tmp_path):
    args = _files(tmp_path)
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    env.pop("CI", None)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:locust", "-p", "no:cacheprovider", "-q", *args],
                            cwd=tmp_path, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    assert "\r[1/5  20%] 0:00" in text and "test_mine REQ-1@site-a" in text, text[:2000]
    assert "FAIL         REQ-2 site-a: value = 5" in text


def test_without_q_pytest_keeps_its_dots_and_the_reasons_are_added(pytester):
    args = _files(pytester.path)
    result = pytester.runpytest_inprocess("-p", "no:locust", *FAST, *args)
    result.stdout.fnmatch_lines(["edge-conformance: 4 requirement@site checks and 1 other tests to run",
                                 "test_mine.py ..F", "  FAIL         REQ-2 site-a: value = 5*",
                                 "*= 1 failed, 3 passed, 1 not-measured in *"])


def test_bring_up_progress_lines_come_before_the_ready_line(capsys):
    lines = [{"progress": {"phase": "started", "done": 1, "total": 3, "topology": "t"}},
             {"progress": {"phase": "healthy", "done": 3, "total": 3, "topology": "t"}},
             {"ready": True, "control_url": "http://127.0.0.1:1"}]
    code = "import sys\nfor line in sys.argv[1:]: print(line, flush=True)\n"
    proc = subprocess.Popen([sys.executable, "-c", code, *map(json.dumps, lines)], stdout=subprocess.PIPE)
    seen = []
    try:
        assert _read_ready(proc, 30.0, seen.append) == lines[-1]
    finally:
        proc.stdout.close()
        proc.wait(timeout=30)
    assert seen == [lines[0]["progress"], lines[1]["progress"]]
    show = bring_up_printer(sys.stderr)  # not a terminal: a line per phase and at the end
    for p in seen:
        show(p)
    assert capsys.readouterr().err.splitlines() == ["edge-conformance: bringing up t: 1/3 sites started",
                                                    "edge-conformance: bringing up t: 3/3 sites healthy"]


def test_interleaved_suites_under_xdist_print_one_line_each_not_one_per_check(monkeypatch):
    from types import SimpleNamespace

    from conformance.report.progress import LiveProgress

    lines = []
    tr = SimpleNamespace(write_line=lines.append, rewrite=lambda *a, **k: None)
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: tr),
                             option=SimpleNamespace(verbose=-1))
    monkeypatch.setattr(sys, "stdout", open(os.devnull, "w"))  # not a terminal: plain lines
    progress = LiveProgress(config)
    progress.pytest_xdist_node_collection_finished(None, [f"s/test.py::t[R{i}@s{i}]" for i in range(100)])
    for i in range(100):
        progress.pytest_runtest_logstart(f"{('security', 'functional')[i % 2]}/test_x.py::t[R@s{i}]", ("", 0, ""))
        progress.pytest_runtest_logreport(SimpleNamespace(when="teardown", nodeid="x", outcome="passed"))
    assert [line.split("] ")[-1] for line in lines[1:]] == ["0:00 security", "0:00 functional"]


def test_a_long_checks_checkpoints_are_printed_as_it_goes(monkeypatch):
    from types import SimpleNamespace

    from conformance.report.progress import LiveProgress

    lines = []
    tr = SimpleNamespace(write_line=lines.append, rewrite=lambda *a, **k: None)
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: tr),
                             option=SimpleNamespace(verbose=-1))
    monkeypatch.setattr(sys, "stdout", open(os.devnull, "w"))  # not a terminal: plain lines
    progress = LiveProgress(config)
    progress.pytest_xdist_node_collection_finished(None, ["resilience/test_r.py::t[RTL-LONG-01@store-1]"])
    progress.pytest_runtest_logstart("resilience/test_r.py::t[RTL-LONG-01@store-1]", ("", 0, ""))
    progress.checkpoint("RTL-LONG-01@store-1: cut 40 % (48 min of 2 h), 5760 sales, 2 token renewals")
    assert lines[-1].startswith("edge-conformance: [0/1   0%]")
    assert lines[-1].endswith("resilience RTL-LONG-01@store-1: cut 40 % (48 min of 2 h), 5760 sales, 2 token renewals")
