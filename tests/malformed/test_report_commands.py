"""Bad input to compare and report, through the real CLI in a child process (issue 15): exit 2, one line
`file[:line]: field: what is wrong`, no traceback, within 5 s and 200 MB, and the input left as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers.cli import cli_env

V2 = "edge-conformance/results/v2"
MAX_SECONDS = 5.0
MAX_RSS_MB = 200


def _results(**changes) -> dict:
    entry = {"id": "A", "title": "t", "profile": "p", "site": "store-1", "role": "edge", "level": "must",
             "check": "functional.http", "suite": "functional", "status": "pass", "advisory": False,
             "expect": "latency <= 500 ms", "measured": {"latency": {"value": 12.3, "unit": "ms"}},
             "message": "", "ended": {"how": "measured"}, "validity": [], "source": "", "rationale": "",
             "duration": 0.1, "params": {}, "waiver": None, "notes": [], "raw": {}}
    doc = {"schema": V2, "harness": {"name": "edge-conformance", "version": "0"}, "run_id": "r",
           "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:01:00Z", "state": "finished",
           "host": {"hostname": "h", "platform": "p", "python": "3", "cpus": 1, "memory_bytes": 1},
           "profiles": [{"id": "p", "version": "1", "title": "p", "sha256": "a" * 64, "source": "p.yaml",
                         "extends": []}],
           "target": {"name": "lab", "kind": "real", "sites": [{"name": "store-1", "role": "edge"}]},
           "options": {}, "scope": {"full": True, "narrowed_by": [], "changed_by": []}, "verdict": "conformant",
           "counts": {s: 0 for s in ("pass", "fail", "error", "inconclusive", "not-applicable", "not-measured",
                                     "waived", "not-run")} | {"pass": 1},
           "calibration": None, "requirements": [entry], "waivers": {"applied": [], "expired": []}}
    doc.update(changes)
    return doc


def _line(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


_NAN = json.dumps(_results(), indent=2).replace("12.3", "NaN")
_INF = json.dumps(_results(), indent=2).replace("12.3", "1e999")
_PROFILES = json.dumps(_results(profiles="edge-baseline"), indent=2)
CASES = {
    # name: (file text, expected substring of the one line: the line numbers are those of the field)
    "stub.json": (json.dumps({"schema": V2, "verdict": "conformant", "requirements": []}),
                  "stub.json:1: run_id: missing"),
    "nan.json": (_NAN, f"nan.json:{_line(_NAN, 'NaN')}: invalid JSON: NaN is not a number JSON allows"),
    "inf.json": (_INF, f"inf.json:{_line(_INF, '1e999')}: requirements[0].measured.latency.value: expected a "
                       "finite number"),
    "profiles-string.json": (_PROFILES, f"profiles-string.json:{_line(_PROFILES, 'edge-baseline')}: profiles: "
                                        "'edge-baseline' is not of type 'array'"),
    "not-json.json": ("{\"schema\": ", "not-json.json:1: invalid JSON"),
    "list.json": ("[]", "list.json:1: not a results.json: expected a JSON object"),
    "v9.json": (json.dumps({"schema": "edge-conformance/results/v9"}), 'unknown results schema'),
}


_LAST_RSS_MB = [0.0]

# Runs the CLI and writes its own peak RSS (VmHWM of its own address space) at exit. Not the rusage
# figures: Linux carries the forking parent's high-water mark into a child's ru_maxrss, so a child of a
# big pytest process would be charged with pytest's memory.
CHILD = """
import atexit, runpy, sys
report = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(report, "w") as f:
        f.write(kb)
atexit.register(peak)
sys.argv[0] = "edge-conformance"
runpy.run_module("conformance.cli", run_name="__main__", alter_sys=True)
"""


def _run(args: list[str], cwd: Path) -> tuple[int, str, str, float]:
    """The CLI in a child process; its peak RSS is kept for _rss_of_child_mb()."""
    env = cli_env()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "peak"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(report), *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=60)
        elapsed = time.perf_counter() - started
        _LAST_RSS_MB[0] = int(report.read_text()) / 1024 if report.exists() else float("inf")
    return proc.returncode, proc.stdout, proc.stderr, elapsed


def _rss_of_child_mb() -> float:
    """The peak RSS of the last CLI child."""
    return _LAST_RSS_MB[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report-commands")
    (d / "base.json").write_text(json.dumps(_results(), indent=2), encoding="utf-8")
    for name, (text, _) in CASES.items():
        (d / name).write_text(text, encoding="utf-8")
    os.mkfifo(d / "fifo.json")
    return d


def _assert_one_line(code: int, err: str, expected: str, seconds: float) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("edge-conformance: error: ") and expected in lines[0], lines[0]
    assert seconds < MAX_SECONDS, f"{seconds:.1f} s"


@pytest.mark.parametrize("name", sorted(CASES))
def test_compare_refuses_in_one_line(corpus, name):
    before = (corpus / name).read_bytes()
    code, out, err, seconds = _run(["compare", "base.json", name], corpus)
    _assert_one_line(code, err, CASES[name][1], seconds)
    assert out == "" and (corpus / name).read_bytes() == before
    assert _rss_of_child_mb() < MAX_RSS_MB


@pytest.mark.parametrize("path,expected", [
    ("fifo.json", "is not a regular file (a FIFO, device or socket)"),
    ("/dev/zero", "is not a regular file"),
    ("missing.json", "file not found"),
])
def test_compare_special_files(corpus, path, expected):
    code, _, err, seconds = _run(["compare", "base.json", path], corpus)
    _assert_one_line(code, err, expected, seconds)


@pytest.mark.parametrize("args,expected", [
    (["--format", "md", "--out", "."], "is a directory"),
    (["--format", "all", "--out", "base.json"], "is not a directory"),
    (["--format", "md", "--out", "base.json"], "is the results file being rendered"),
    (["--format", "md", "--out", "stub.json/x.md"], "a part of the path is a file, not a directory"),
])
def test_report_out_refuses_in_one_line(corpus, args, expected):
    before = (corpus / "base.json").read_bytes()
    code, _, err, seconds = _run(["report", "base.json", *args], corpus)
    _assert_one_line(code, err, expected, seconds)
    assert (corpus / "base.json").read_bytes() == before
