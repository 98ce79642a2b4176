"""The load suite against a real (non-emulated) target: a small aiohttp server on 127.0.0.1
(tests/helpers/servers/loopback.py), described by a target file, checked through `edge-conformance run
--suite load`.

One run, several requirements on the one site:
* a weighted endpoint mix (GET /health x3, POST /echo with a JSON body x1) is delivered and judged, and
  the server's own counts agree with what the suite reports;
* /flaky answers 503 to one request in 20: the error ratio fails its bound, and the p99 falls among
  the failed requests (recorded as the request timeout);
* /limited serves one request at a time for 12 ms (capacity ~80/s): the capacity sweep 10, 40, 160/s
  (budget p99 <= 1 s, loose so that a stall of the shared test machine cannot decide it) finds the knee
  at 40/s: at 160/s the queue grows by ~80 requests a second, and the sweep stops there;
* a must asking 20,000 requests/s of one generator process with 20 users cannot be delivered: the
  saturation guard makes it inconclusive (never pass or fail), and the run is incomplete (exit 3);
* a capacity sweep whose second step (20,000/s) the generator cannot deliver ends there: max_rps is a
  lower bound, inconclusive because the expectation asks for more than the last delivered step;
* so is a sweep whose max_rate is below what the expectation asks (it never tried that rate).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.cli import run_edge_watched, write_profile, write_target
from tests.helpers.results import entry, measured
from tests.helpers.servers import script_server
from tests.helpers.waits import wait_gone

HERE = Path(__file__).resolve().parent
SITE = "lab-1"


@pytest.fixture(scope="module")
def server():
    with script_server("loopback") as url:
        yield url


@pytest.fixture(scope="module")
def run(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loopback")
    target = tmp / "target.yaml"
    write_target(target, {"api": f"{server}/"}, site=SITE, name="loopback-lab")
    profile = write_profile(tmp / "profile.yaml", [
        {"id": "T-MIX", "level": "must", "check": "load.sustained",
         "params": {"rate": 200, "duration": "3 s", "endpoints": [
             {"name": "health", "path": "/health", "weight": 3},
             {"name": "echo", "method": "POST", "path": "echo", "weight": 1, "body": {"till": 7, "sku": "x"}}]},
         "expect": "achieved >= 190 rps and error_ratio <= 0.1 % and p99 <= 1 s"},
        {"id": "T-FLAKY", "check": "load.sustained",
         "params": {"rate": 200, "duration": "2 s", "timeout": "2 s",
                    "endpoints": [{"name": "flaky", "path": "/flaky"}]},
         "expect": "error_ratio <= 1 %"},
        {"id": "T-KNEE", "check": "load.capacity",
         "params": {"start": 10, "factor": 4, "max_rate": 640, "step_duration": "3 s", "p99_budget": "1 s",
                    "error_budget": "1 %", "endpoints": [{"name": "limited", "path": "/limited"}]},
         "expect": "max_rps >= 40 rps"},
        {"id": "T-STARVED", "level": "must", "check": "load.sustained",
         "params": {"rate": 20000, "duration": "3 s", "users": 20},
         "expect": "achieved >= 19000 rps and error_ratio <= 1 %"},
        {"id": "T-CAP-SAT", "check": "load.capacity",
         "params": {"start": 500, "factor": 40, "max_rate": 20000, "step_duration": "2 s", "users": 20,
                    "p99_budget": "1 s"},
         "expect": "max_rps >= 10000 rps"},
        {"id": "T-CAP-TOP", "check": "load.capacity",
         "params": {"start": 50, "max_rate": 50, "step_duration": "2 s", "p99_budget": "1 s"},
         "expect": "max_rps >= 100 rps"},
    ])
    return run_edge_watched("--profile", profile, "--target", target, "--suite", "load", out=tmp / "out")


def _stats(server: str) -> dict:
    with urllib.request.urlopen(f"{server}/stats", timeout=5) as reply:
        return json.loads(reply.read())


def test_a_weighted_mix_reaches_a_real_target(run, server):
    r = entry(run.results, "T-MIX", SITE)
    assert r["status"] == "pass", r["message"]
    load = r["raw"]["load"]
    eps = load["endpoints"]
    assert set(eps) == {"health", "echo"} and eps["echo"]["method"] == "POST" and eps["health"]["method"] == "GET"
    total = eps["health"]["requests"] + eps["echo"]["requests"]
    assert total == measured(r, "requests") == 600  # 200/s for 3 s
    assert 0.6 <= eps["health"]["requests"] / total <= 0.9  # weights 3 : 1
    assert eps["echo"]["failures"] == 0 and load["url"] == f"{server}"  # the trailing slash is not doubled
    seen = _stats(server)  # the target's own count of what it served
    assert seen.get("GET /health", 0) >= eps["health"]["requests"]
    assert seen.get("POST /echo", 0) >= eps["echo"]["requests"]
    assert not any(key.startswith(("GET //", "POST //")) for key in seen), seen


def test_errors_fail_the_error_bound_and_rank_last_in_the_percentiles(run):
    r = entry(run.results, "T-FLAKY", SITE)
    assert r["status"] == "fail", r["message"]
    assert 4 <= measured(r, "error_ratio") <= 6, r["message"]  # one request in 20
    assert r["raw"]["load"]["errors"].get("http_503", 0) > 0
    assert measured(r, "p99") == 2000  # beyond the answered requests: the 2 s timeout
    assert measured(r, "p50") < 100
    assert any("p99 fall among the failed requests" in n for n in r["notes"]), r["notes"]


def test_the_capacity_knee_of_a_limited_endpoint(run):
    r = entry(run.results, "T-KNEE", SITE)
    assert r["status"] == "pass", r["message"]
    assert measured(r, "max_rps") == 40 and measured(r, "steps") == 3
    rows = r["raw"]["sweep"]["rows"]
    assert [(row["value"], row["held"]) for row in rows] == [(10, True), (40, True), (160, False)]
    assert rows[0]["duration_s"] < 0.5 and rows[-1]["duration_s"] > 1  # p99 in s: the queue grew past the budget
    cap = r["raw"]["capacity"]
    assert cap["rates"] == [10, 40, 160, 640] and cap["broke_at"] == 160 and cap["stopped"] == "budget"
    assert any("held the budget" in n and "up to 40/s; 160/s broke it" in n for n in r["notes"]), r["notes"]
    assert {row["step"] for row in r["raw"]["timeseries"]} == {0, 1, 2}


def test_a_starved_generator_gives_inconclusive(run):
    r = entry(run.results, "T-STARVED", SITE)
    assert r["status"] == "inconclusive", r["message"]
    assert "load generator saturated" in r["message"]
    assert r["raw"]["load"]["valid"] is False and r["raw"]["timeseries"]  # the evidence is still kept
    assert measured(r, "achieved") < 19000  # it would have failed: not delivered decides nothing
    assert run.code == 3 and run.results["verdict"] == "incomplete", run.output[-3000:]


def test_a_sweep_the_generator_cannot_finish_gives_a_lower_bound(run):
    r = entry(run.results, "T-CAP-SAT", SITE)
    assert r["status"] == "inconclusive", r["message"]
    assert "max_rps is only a lower bound (500 rps, the last step delivered)" in r["message"]
    assert {"kind": "lower_bound", "metric": "max_rps", "reason": "the last step delivered"} in r["validity"]
    assert measured(r, "max_rps") == 500 and measured(r, "steps") == 2
    cap = r["raw"]["capacity"]
    assert cap["stopped"] == "generator" and cap["saturated_at"] == 20000
    assert cap["steps"][-1]["valid"] is False and "load generator saturated" in cap["steps"][-1]["invalid_reason"]
    assert [row["value"] for row in r["raw"]["sweep"]["rows"]] == [500]  # an undelivered step is no data point


def test_a_sweep_that_stops_below_the_bound_cannot_decide_it(run):
    r = entry(run.results, "T-CAP-TOP", SITE)
    assert r["status"] == "inconclusive", r["message"]
    assert ("max_rps is only a lower bound (50 rps, max_rate reached; raise max_rate): max_rps >= 100 rps "
            "cannot be decided") in r["message"]
    assert measured(r, "max_rps") == 50 and r["raw"]["capacity"]["stopped"] == "max_rate"


def test_no_load_process_outlives_the_run(run):
    assert run.saw_load
    assert wait_gone(run.tag, timeout=5) == []
