"""compare: per requirement x site x metric changes, regressions beyond tolerance, CI exit codes."""

from __future__ import annotations

import copy
import math
import json

import pytest

from conformance.model.errors import ConfigError
from conformance.certify import compare as C

from tests.helpers.certify import cli


def _req(rid, site="store-1", status="pass", level="must", expect="p99 <= 20 ms", **measured):
    return {"id": rid, "site": site, "profile": "p", "level": level, "status": status, "expect": expect,
            "check": "custom.x", "measured": {k: {"value": v[0], "unit": v[1]} for k, v in measured.items()}}


def _results(*reqs, run_id="r1"):
    return {"run_id": run_id, "verdict": "conformant", "profiles": [{"id": "p", "version": "1", "sha256": "a" * 64}],
            "target": {"name": "lab"}, "requirements": list(reqs)}


def test_identical_run_passes(run_dir):
    # the run is narrowed (--suite functional): the musts it left out are regressions of a partial NEW ...
    proc = cli("compare", "out", "out/results.json", cwd=run_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSION (left out) | BASE-SEC-01@store-1 | must" in proc.stdout
    assert "count as regressions (--accept-partial accepts a partial run)" in proc.stdout
    # ... unless a partial run is accepted: then nothing changed
    proc = cli("compare", "out", "out/results.json", "--accept-partial", cwd=run_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression" in proc.stdout and "left out (accepted) | BASE-SEC-01@store-1" in proc.stdout


def test_injected_latency_regression_fails(work):
    data = json.loads((work / "out" / "results.json").read_text())
    e = next(r for r in data["requirements"] if r["id"] == "BASE-FUN-03")
    e["measured"]["latency"] = {"value": 1.5, "unit": "s"}  # limit: latency <= 2 s
    (work / "new.json").write_text(json.dumps(data))
    proc = cli("compare", "out/results.json", "new.json", "--accept-partial", cwd=work)  # the run is narrowed
    assert proc.returncode == 1, proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| REGRESSION | BASE-FUN-03@store-1 | should | latency |"), rows
    assert "1500 ms" in rows[1] and "<= 2 s" in rows[1]
    out = json.loads(cli("compare", "out/results.json", "new.json", "--format", "json", "--accept-partial",
                         cwd=work).stdout)
    assert out["regressions"] == 1 and out["rows"][0]["regression"] is True
    # a generous tolerance lets it through
    assert cli("compare", "out/results.json", "new.json", "--tolerance", "latency=200000%", "--accept-partial",
               cwd=work).returncode == 0


def test_bundles_compare_too(work):
    assert cli("bundle", "out", "--out", "b.tar.gz", cwd=work).returncode == 0
    assert cli("compare", "b.tar.gz", "out", "--accept-partial", cwd=work).returncode == 0


def test_direction_comes_from_the_expectation():
    base = _results(_req("LAT", p99=(10.0, "ms")), _req("TPUT", expect="throughput >= 100 rps", throughput=(150, "rps")))
    new = copy.deepcopy(base)
    new["requirements"][0]["measured"]["p99"]["value"] = 8.0  # down: better
    new["requirements"][1]["measured"]["throughput"]["value"] = 120  # down: worse (-20 %)
    c = C.compare_runs(base, new)
    kinds = {(r.id, r.metric): r.kind for r in c.rows}
    assert kinds == {("LAT", "p99"): "improvement", ("TPUT", "throughput"): "regression"}
    assert [r.id for r in c.regressions] == ["TPUT"]


def test_tolerances_relative_absolute_per_metric_and_noise():
    base = _results(_req("LAT", p99=(10.0, "ms"), p50=(4.0, "ms"), expect="p99 <= 20 ms and p50 <= 10 ms"))
    new = copy.deepcopy(base)
    new["requirements"][0]["measured"]["p99"] = {"value": 10800, "unit": "us"}  # +8 %, other unit
    new["requirements"][0]["measured"]["p50"]["value"] = 4.3  # +7.5 %
    assert not C.compare_runs(base, new).regressions  # default 10 %
    c = C.compare_runs(base, new, ["p99=5%"])
    assert [(r.metric, r.new) for r in c.regressions] == [("p99", "10.8 ms")]
    assert [r.metric for r in C.compare_runs(base, new, ["5%"]).regressions] == ["p99", "p50"]
    assert not C.compare_runs(base, new, ["1 ms"]).regressions  # absolute: +0.8 ms, +0.3 ms
    assert not C.compare_runs(base, new, ["5%"], noise="10%").regressions  # both under 10 % of their limit
    with pytest.raises(ConfigError):
        C.parse_tolerances(["p99=5"])
    with pytest.raises(ConfigError):
        C.parse_tolerances(["fast"])


def test_flips_new_and_removed():
    base = _results(_req("A", p99=(5.0, "ms")), _req("B", p99=(5.0, "ms")), _req("GONE", p99=(1.0, "ms")))
    new = _results(_req("A", status="fail", p99=(25.0, "ms")), _req("B", status="error"),
                   _req("NEW", p99=(1.0, "ms")), run_id="r2")
    c = C.compare_runs(base, new)
    # a result the new run does not have is a regression: it cannot show that it still holds
    assert [(r.kind, r.id) for r in c.rows[:4]] == [("worse", "A"), ("worse", "B"), ("removed", "GONE"),
                                                    ("regression", "A")]
    assert {(r.kind, r.id) for r in c.rows} >= {("new", "NEW"), ("metric-removed", "B")}
    assert [r.regression for r in c.rows[:4]] == [True] * 4
    better = C.compare_runs(new, base)
    assert {(r.kind, r.id) for r in better.rows if r.metric is None} >= {("better", "A"), ("better", "B")}
    md = C.render_markdown(c)
    assert md.startswith("# Edge conformance comparison: 4 regressions") and "| pass -> fail |" in md
    assert "| REGRESSION (missing) | GONE@store-1 | must |" in md


def test_hostile_text_cannot_break_the_table():
    base = _results(_req("A|<b>x</b>", p99=(5.0, "ms")))
    new = _results(_req("A|<b>x</b>", p99=(50.0, "ms")))
    md = C.render_markdown(C.compare_runs(base, new))
    assert "A\\|&lt;b>x&lt;/b>@store-1" in md


def _latency_run(seed, scale=1.0, n=1300, run_id="r"):
    """A latency result as the latency suite records it: percentiles, samples and the raw histogram of a
    healthy store (a log-normal around 3 ms with a tail), `scale` times slower."""
    import random

    from conformance.measure.latency.histogram import encode, new_histogram

    rnd, hist = random.Random(seed), new_histogram()
    for _ in range(n):
        hist.record_value(int(scale * rnd.lognormvariate(math.log(3000), 0.45)))
    ms = {m: hist.get_value_at_percentile(q) / 1000.0 for m, q in (("p50", 50.0), ("p99", 99.0))}
    entry = _req("LAT-01", expect="p50 <= 10 ms and p99 <= 20 ms", p50=(ms["p50"], "ms"), p99=(ms["p99"], "ms"),
                 samples=(n, ""))
    entry["raw"] = {"latency": {"histogram": encode(hist), "unit": "us"}}
    return _results(entry, run_id=run_id)


def test_a_percentile_that_moves_within_the_runs_own_noise_is_not_a_regression():
    runs = {seed: _latency_run(seed, run_id=f"r{seed}") for seed in range(12)}
    p99 = {seed: r["requirements"][0]["measured"]["p99"]["value"] for seed, r in runs.items()}
    base, new = min(p99, key=p99.get), max(p99, key=p99.get)  # the two healthy runs furthest apart
    assert p99[new] > 1.1 * p99[base]  # beyond the default 10 %: a regression by tolerance alone
    c = C.compare_runs(runs[base], runs[new])
    row = next(r for r in c.rows if r.metric == "p99")
    assert row.kind == "noise" and not c.regressions, row
    assert "within noise: 95 % intervals from 1300 and 1300 samples overlap" in row.change
    assert "| within noise | LAT-01@store-1 | must | p99 |" in C.render_markdown(c)
    # the CLI reads the runs slimmed (raw measurements dropped as they are parsed): the histograms stay
    slim = [json.loads(json.dumps(runs[seed]), object_hook=C._slim_result) for seed in (base, new)]
    assert [r.kind for r in C.compare_runs(*slim).rows if r.metric == "p99"] == ["noise"]
    # without the histograms only the tolerance is left: the same pair is a regression
    for run in slim:
        del run["requirements"][0]["raw"]
    assert [r.metric for r in C.compare_runs(*slim).regressions] == ["p99"]


def test_a_real_slowdown_is_still_a_regression_and_no_histogram_means_tolerance_alone():
    base, slower = _latency_run(1), _latency_run(2, scale=1.5)
    c = C.compare_runs(base, slower)
    assert {r.metric for r in c.regressions} == {"p50", "p99"}  # intervals far apart
    for run in (base, slower):
        del run["requirements"][0]["raw"]
    no_raw = C.compare_runs(base, slower)
    assert {r.metric for r in no_raw.regressions} == {"p50", "p99"}
