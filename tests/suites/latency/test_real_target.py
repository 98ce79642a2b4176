"""The latency suite against a real (non-emulated) target: a tiny aiohttp server on 127.0.0.1 with a known
delay, described by a target file, checked through `edge-conformance run --suite latency`.

One run, several requirements on the one site:
* /slow answers after 20 ms: the measured p50 must be at least 20 ms (and not absurdly more);
* /flaky answers 503 to one request in 20: the p99 falls among the failed requests, so it is recorded
  as the timeout and a `p99 <= 50 ms` requirement fails although every answer came at once;
* a prober whose self-check cannot hold (lag_limit 1 us) gives an inconclusive verdict with its reason;
* a run without latency checks does not calibrate (the floor is measured lazily).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import run_edge, write_profile, write_target
from tests.helpers.results import entry, measured
from tests.helpers.servers import script_server

HERE = Path(__file__).resolve().parent
DELAY_MS = 20


@pytest.fixture(scope="module")
def server():
    with script_server("delay", DELAY_MS) as url:
        yield url


@pytest.fixture(scope="module")
def target_file(server, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("target") / "target.yaml"
    return write_target(path, {"api": server}, site="shop", name="delay-server")


@pytest.fixture(scope="module")
def results(target_file, tmp_path_factory) -> tuple[int, dict, str]:
    tmp = tmp_path_factory.mktemp("real")
    profile = write_profile(tmp / "profile.yaml", [
        {"id": "R-SLOW", "level": "must", "check": "latency.request",
         "params": {"path": "/slow", "rate": 200, "duration": "2 s"}, "expect": "p50 <= 200 ms"},
        {"id": "R-FLAKY", "level": "must", "check": "latency.request",
         "params": {"path": "/flaky", "rate": 500, "count": 1000, "warmup": "0 s"},
         "expect": "p99 <= 50 ms"},
        {"id": "R-LAG", "check": "latency.request",
         "params": {"path": "/health", "rate": 200, "count": 100, "lag_limit": "1 us"},
         "expect": "p50 <= 1 s"},
    ])
    return run_edge("--profile", profile, "--target", target_file, "--suite", "latency", out=tmp / "out")


def test_a_known_delay_is_measured(results):
    code, data, output = results
    r = entry(data, "R-SLOW", "shop")
    assert r["status"] == "pass", r["message"]
    p50 = measured(r, "p50")
    assert DELAY_MS - 1 <= p50 <= DELAY_MS + 15, f"p50 {p50} ms for a {DELAY_MS} ms delay"
    assert r["measured"]["samples"]["value"] == 400  # 200/s for 2 s, none failed
    assert r["raw"]["latency"]["unit"] == "us" and r["raw"]["latency"]["histogram"]


def test_failed_requests_count_as_slower_than_any_answer(results):
    code, data, output = results
    r = entry(data, "R-FLAKY", "shop")
    assert r["status"] == "fail", r["message"]
    assert measured(r, "error_ratio") == pytest.approx(5.0, abs=0.2)  # in %
    assert measured(r, "p50") < 50  # the answers themselves are fast
    assert measured(r, "p99") == pytest.approx(2000.0)  # among the 5 % failed: the 2 s timeout
    assert "p99 = 2000 ms, expected <= 50 ms" in r["message"]
    assert any("fall among the failed requests" in n for n in r["notes"]), r["notes"]
    assert any("http_503" in n for n in r["notes"]), r["notes"]
    assert code == 1, output[-2000:]  # a must failed: non-conformant


def test_a_prober_that_falls_behind_is_inconclusive(results):
    code, data, output = results
    r = entry(data, "R-LAG", "shop")
    assert r["status"] == "inconclusive", r["message"]
    assert "prober self-check: " in r["message"] and "> 1 us" in r["message"], r["message"]
    assert r["measured"]["p50"]["value"] > 0  # what was measured is kept for audit


def test_calibration_is_recorded_and_named_in_the_notes(results):
    code, data, output = results
    cal = data["calibration"]
    assert isinstance(cal, dict) and cal["protocol"] == "http" and cal["p50_us"] > 0, cal
    assert cal["histogram"]
    r = entry(data, "R-SLOW", "shop")
    assert f"measurement floor p50 {cal['p50_us']} us" in " ".join(r["notes"]), r["notes"]


def test_no_latency_check_no_calibration(target_file, tmp_path):
    profile = write_profile(tmp_path / "profile.yaml", [
        {"id": "F-01", "check": "functional.http", "params": {"path": "/health"}, "expect": "status == 200"}])
    code, data, output = run_edge("--profile", profile, "--target", target_file, "--suite", "functional",
                                  out=tmp_path / "out")
    assert entry(data, "F-01", "shop")["status"] == "pass", output[-2000:]
    assert data["calibration"] is None
