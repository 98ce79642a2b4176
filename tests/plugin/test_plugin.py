"""The pytest plugin: a user's own check, parametrized by requirement × site, turned into verdicts."""

from __future__ import annotations

import datetime as dt
import json

import jsonschema
import pytest

from conformance.model.paths import schemas_dir

from tests.plugin.sandbox import FAST, req


def results_schema():
    return json.loads((schemas_dir() / "results.schema.json").read_text(encoding="utf-8"))


def test_ids_are_requirement_at_site_and_pass(edge_run):
    run = edge_run([req("REQ-1", "pass", applies_to=("edge",))])
    run.result.assert_outcomes(passed=3)  # two edge sites and test_plain
    run.result.stdout.fnmatch_lines(["PASSED *::test_x[[]REQ-1@site-a[]]", "PASSED *::test_x[[]REQ-1@site-b[]]"])
    e = run.entry("REQ-1")
    assert e["status"] == "pass" and e["advisory"] is False
    assert e["measured"] == {"value": {"value": 2.0, "unit": ""}}
    assert e["message"] == "REQ-1 site-a: value = 2 (expected <= 3)"
    assert e["notes"] == ["mode pass"] and e["raw"] == {"samples": [1, 2, 3]}
    assert e["duration"] >= 0 and e["role"] == "edge" and e["suite"] == "custom"
    assert run.data["verdict"] == "conformant" and run.data["state"] == "finished"
    assert run.result.ret == 0


def test_fail_message(edge_run):
    run = edge_run([req("REQ-1", "fail")])
    assert run.result.ret == 1
    run.result.assert_outcomes(passed=1, failed=1)
    run.result.stdout.fnmatch_lines(["*REQ-1 site-a: value = 5, expected <= 3*"])
    e = run.entry("REQ-1")
    assert e["status"] == "fail"
    assert e["message"].startswith("REQ-1 site-a: value = 5, expected <= 3")
    assert e["measured"]["value"] == {"value": 5.0, "unit": ""}
    assert run.data["verdict"] == "non-conformant"


def test_assertion_in_the_check_is_a_fail(edge_run):
    run = edge_run([req("REQ-1", "assert")])
    e = run.entry("REQ-1")
    assert e["status"] == "fail" and "custom assertion" in e["message"]


@pytest.mark.parametrize(("mode", "text"), [("raise", "could not measure: RuntimeError: boom"),
                                            ("error", "could not measure: endpoint unreachable"),
                                            ("nothing", "value not measured, expected <= 3"),
                                            ("nan", "value is not a finite number")])
def test_error_when_the_check_cannot_measure(edge_run, mode, text):
    run = edge_run([req("REQ-1", mode)])
    e = run.entry("REQ-1")
    assert e["status"] == "error", e
    assert text in e["message"]
    assert e["message"].startswith("REQ-1 site-a: ")
    assert run.data["verdict"] == "incomplete"
    assert run.result.ret == 3  # pytest exits with the verdict's code
    run.result.assert_outcomes(passed=1, errors=1)


def test_inconclusive(edge_run):
    run = edge_run([req("REQ-1", "inconclusive")])
    e = run.entry("REQ-1")
    assert e["status"] == "inconclusive"
    assert e["message"] == "REQ-1 site-a: inconclusive: too few samples (mode inconclusive)"
    assert run.data["verdict"] == "incomplete"


@pytest.mark.parametrize(("mode", "reason"), [("skip", "feature absent at this site"),
                                              ("pytest-skip", "no tool here")])
def test_a_skipped_must_is_not_measured_and_never_conformant(edge_run, mode, reason):
    run = edge_run([req("REQ-1", mode), req("REQ-2", "pass")])
    e = run.entry("REQ-1")
    assert e["status"] == "not-measured" and e["ended"] == {"how": "not-measured", "reason": reason}
    assert e["message"] == f"REQ-1 site-a: not measured: {reason}"
    assert run.data["verdict"] == "incomplete" and run.result.ret == 3
    run.result.stdout.fnmatch_lines(["*= 2 passed, 1 not-measured in *"])  # pytest counts what the record counts


def test_not_measured_names_the_remedy(edge_run):
    run = edge_run([req("REQ-1", "unmeasured"), req("REQ-2", "unmeasured", level="should")])
    e = run.entry("REQ-1")
    assert e["status"] == "not-measured" and e["advisory"] is False
    assert e["message"] == "REQ-1 site-a: not measured: site has no hosts; to measure it: give the site a host"
    assert run.entry("REQ-2")["advisory"] is True
    assert run.data["verdict"] == "incomplete"
    # the reason is on the terminal without -v
    run.result.stdout.fnmatch_lines(["*REQ-1 site-a: not measured: site has no hosts; to measure it: give the site a host*"])


def test_not_applicable_does_not_block(edge_run):
    run = edge_run([req("REQ-1", "not-applicable"), req("REQ-2", "pass")])
    e = run.entry("REQ-1")
    assert e["status"] == "not-applicable" and e["message"] == "REQ-1 site-a: not applicable: nothing asks for credentials"
    assert run.data["verdict"] == "conformant" and run.result.ret == 0


def test_a_tail_miss_on_a_starved_machine_is_inconclusive(edge_run):
    run = edge_run([req("REQ-1", "starved", expect="p99 <= 20 ms"), req("REQ-2", "starved", expect="p50 <= 2 ms")])
    tail, median = run.entry("REQ-1"), run.entry("REQ-2")
    assert tail["status"] == "inconclusive" and "CPU 35 %" in tail["message"], tail["message"]
    assert "rerun on a quieter machine" in tail["message"]
    assert tail["validity"][0]["kind"] == "pressure"
    assert median["status"] == "fail"  # the median moved: the site's doing, whatever the machine
    assert run.data["verdict"] == "non-conformant"


def test_too_few_samples_is_inconclusive(edge_run):
    run = edge_run([req("REQ-1", "samples", expect="p99 <= 3 ms")])
    e = run.entry("REQ-1")
    assert e["status"] == "inconclusive", e
    assert e["message"] == "REQ-1 site-a: inconclusive: p99 needs at least 1000 samples, got 3 (mode samples)"


def test_units_are_converted_for_custom_metrics(edge_run):
    run = edge_run([req("REQ-1", "ms", expect="wait <= 2 s"), req("REQ-2", "ms", expect="wait <= 1 s")])
    assert run.entry("REQ-1")["status"] == "pass"
    e = run.entry("REQ-2")
    assert e["status"] == "fail" and e["message"].startswith("REQ-2 site-a: wait = 1.5 s, expected <= 1 s")
    assert e["measured"]["wait"] == {"value": 1500.0, "unit": "ms"}


def test_should_failure_is_advisory(edge_run):
    run = edge_run([req("REQ-1", "pass"), req("REQ-2", "fail", level="should")])
    assert run.result.ret == 0
    run.result.assert_outcomes(passed=2, failed=1)  # pytest counts what the record counts
    run.result.stdout.fnmatch_lines(["*FAILED (advisory)*REQ-2@site-a*"])
    e = run.entry("REQ-2")
    assert e["status"] == "fail" and e["advisory"] is True
    assert run.data["verdict"] == "conformant"


def test_should_failure_fails_with_strict(edge_run):
    run = edge_run([req("REQ-1", "pass"), req("REQ-2", "fail", level="should")], "--edge-strict")
    assert run.result.ret == 1
    run.result.assert_outcomes(passed=2, failed=1)
    assert run.entry("REQ-2")["status"] == "fail"
    assert run.data["verdict"] == "non-conformant" and run.data["options"]["strict"] is True


def test_waivers_active_and_expired(edge_run):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    past = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    waivers = [
        {"id": "REQ-1", "site": "all", "reason": "vendor fix in 4.2", "who": "jane@example.com", "expires": future},
        {"id": "REQ-2", "site": "site-a", "reason": "old excuse", "who": "joe@example.com", "expires": past},
    ]
    run = edge_run([req("REQ-1", "fail"), req("REQ-2", "fail")], waivers=waivers)
    waived, failed = run.entry("REQ-1"), run.entry("REQ-2")
    assert waived["status"] == "waived"
    assert waived["waiver"]["who"] == "jane@example.com" and waived["waiver"]["expires"] == future
    assert "waived until" in waived["message"] and "vendor fix in 4.2" in waived["message"]
    assert failed["status"] == "fail" and failed["waiver"] is None  # the expired waiver is ignored
    assert [w["id"] for w in run.data["waivers"]["applied"]] == ["REQ-1"]
    assert run.data["waivers"]["applied"][0]["site"] == "site-a"
    assert [w["id"] for w in run.data["waivers"]["expired"]] == ["REQ-2"]
    assert run.data["verdict"] == "non-conformant"
    run.result.stdout.fnmatch_lines(["*= 1 failed, 1 passed, 1 waived in *"])


def test_waiver_alone_makes_the_run_conformant(edge_run):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    run = edge_run([req("REQ-1", "fail")], waivers=[
        {"id": "REQ-1", "site": "site-a", "reason": "r", "who": "w", "expires": future}])
    assert run.entry("REQ-1")["status"] == "waived"
    assert run.data["verdict"] == "conformant" and run.result.ret == 0


def test_applies_to_by_role_and_by_name(edge_run):
    run = edge_run([req("BY-ROLE", applies_to=("edge",)), req("BY-NAME", applies_to=("central", "site-b")),
                    req("ALL", applies_to=())])
    assert run.statuses() == {
        "BY-ROLE@site-a": "pass", "BY-ROLE@site-b": "pass",
        "BY-NAME@central": "pass", "BY-NAME@site-b": "pass",
        "ALL@central": "pass", "ALL@site-a": "pass", "ALL@site-b": "pass",
    }


def test_site_filter(edge_run):
    run = edge_run([req("ALL", applies_to=())], "--edge-site", "site-b", "--edge-site", "central")
    assert run.statuses() == {"ALL@central": "pass", "ALL@site-b": "pass", "ALL@site-a": "not-measured"}
    left_out = run.entry("ALL", "site-a")
    assert left_out["message"] == ("ALL site-a: not measured: left out of this run (--edge-site site-b central); "
                                   "to measure it: run it without --edge-site")
    assert run.data["verdict"] == "incomplete" and run.result.ret == 3
    assert run.data["scope"]["full"] is False and run.data["scope"]["narrowed_by"] == ["--edge-site site-b central"]
    run = edge_run([req("ALL", applies_to=())], "--edge-site", "edge")
    assert run.statuses() == {"ALL@site-a": "pass", "ALL@site-b": "pass", "ALL@central": "not-measured"}


def test_requirement_filter_leaves_the_rest_not_measured(edge_run):
    run = edge_run([req("REQ-1"), req("REQ-2")], "--edge-requirement", "REQ-1")
    assert run.statuses() == {"REQ-1@site-a": "pass", "REQ-2@site-a": "not-measured"}
    assert run.data["verdict"] == "incomplete" and run.data["scope"]["narrowed_by"] == ["--edge-requirement REQ-1"]


def test_keyword_deselection_is_recorded_and_never_a_pass(edge_run):
    run = edge_run([req("REQ-1", applies_to=("edge",))], "-k", "site-b")
    assert run.statuses() == {"REQ-1@site-a": "not-measured", "REQ-1@site-b": "pass"}
    e = run.entry("REQ-1")
    assert e["message"] == "REQ-1 site-a: not measured: deselected (-k site-b); to measure it: run it without -k site-b"
    assert run.data["scope"]["keyword"] == "site-b" and run.data["scope"]["narrowed_by"] == ["-k site-b"]
    assert run.data["options"]["keyword"] == "site-b"
    assert run.data["verdict"] == "incomplete" and run.result.ret == 3


def test_a_requirement_for_a_role_the_target_lacks_is_not_measured(edge_run):
    run = edge_run([req("REQ-1", applies_to=("gateway",)), req("REQ-2")])
    e = run.entry("REQ-1", "(none)")
    assert e["status"] == "not-measured"
    assert e["message"] == ("REQ-1 (none): not measured: the target has no site with role or name gateway; "
                            "to measure it: add a gateway site to the target")
    assert run.data["verdict"] == "incomplete"


def test_xdist_workers_record_through_the_controller(pytester, edge_run):
    pytest.importorskip("xdist")
    edge_run([req("REQ-1"), req("REQ-2", "fail")])  # writes profile.yaml, target.yaml and the checks
    result = pytester.runpytest_subprocess("-p", "no:locust", "-n", "2", "--edge-profile", "profile.yaml",
                                           "--edge-target", "target.yaml", "--edge-out", "out-x", "test_mine.py")
    data = json.loads((pytester.path / "out-x" / "results.json").read_text())
    assert result.ret == 1 and data["verdict"] == "non-conformant"
    assert {e["id"]: e["status"] for e in data["requirements"]} == {"REQ-1": "pass", "REQ-2": "fail"}
    assert data["scope"]["parallel"] == {"workers": 2, "dist": "loadgroup"}
    assert data["state"] == "finished"


def test_a_distribution_that_would_run_checks_twice_is_refused_at_start(pytester, edge_run):
    pytest.importorskip("xdist")
    edge_run([req("REQ-1")])
    result = pytester.runpytest_subprocess("-p", "no:locust", "-n", "2", "--dist", "each", "--edge-profile",
                                           "profile.yaml", "--edge-target", "target.yaml", "--edge-out", "out-x",
                                           "test_mine.py")
    assert result.ret == 2
    result.stderr.fnmatch_lines(["*--dist each: checks are spread by site*"])
    assert not (pytester.path / "out-x").exists()  # nothing started, nothing written


def test_unimplemented_check_is_not_measured_with_a_reason(edge_run):
    run = edge_run([req("REQ-1", "pass"), req("REQ-9", check="custom.missing", expect="x <= 1")])
    e = run.entry("REQ-9")
    assert e["status"] == "not-measured"
    assert e["message"] == ("REQ-9 site-a: not measured: no collected test implements check custom.missing; "
                            "to measure it: add the test file that implements custom.missing to the pytest command")
    assert run.entry("REQ-1")["status"] == "pass"
    assert run.data["verdict"] == "incomplete"


def test_a_check_no_requirement_names_is_deselected(edge_run):
    run = edge_run([req("REQ-1", check="custom.other", expect="x <= 1")])
    run.result.assert_outcomes(passed=1, deselected=1)  # test_plain runs, test_x is deselected
    assert run.entry("REQ-1")["status"] == "not-measured"


def test_results_json_contract_and_schema(edge_run):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    run = edge_run([req("R-PASS"), req("R-FAIL", "fail"), req("R-ERR", "raise"), req("R-INC", "inconclusive"),
                    req("R-SKIP", "skip"), req("R-WAIVE", "fail"), req("R-SHOULD", "fail", level="should"),
                    req("R-NA", "not-applicable"), req("R-NONE", check="custom.none", expect="x <= 1")],
                   waivers=[{"id": "R-WAIVE", "site": "site-a", "reason": "r", "who": "w", "expires": future}])
    data = run.data
    assert data["schema"] == "edge-conformance/results/v2"
    assert data["verdict"] in ("conformant", "non-conformant", "incomplete")
    for e in data["requirements"]:
        for key in ("id", "site", "level", "status", "expect", "message", "measured"):
            assert key in e, key
        for metric in e["measured"].values():
            assert isinstance(metric["value"], (int, float)) and isinstance(metric["unit"], str)
    assert {e["status"] for e in data["requirements"]} == {"pass", "fail", "error", "inconclusive", "not-measured",
                                                            "not-applicable", "waived"}
    for e in data["requirements"]:
        assert e["ended"]["how"] in ("measured", "assertion", "error", "not-measured", "not-applicable")
        assert isinstance(e["validity"], list)
    assert data["scope"]["full"] is True
    assert sum(data["counts"].values()) == len(data["requirements"])
    jsonschema.Draft202012Validator(results_schema()).validate(data)


def test_results_schema_rejects_broken_records(edge_run):
    run = edge_run([req("REQ-1")])
    validator = jsonschema.Draft202012Validator(results_schema())
    validator.validate(run.data)
    broken = json.loads(json.dumps(run.data))
    broken["requirements"][0]["status"] = "passed"
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(run.data))
    broken["requirements"][0]["measured"] = {"value": 2}
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(run.data))
    del broken["verdict"]
    assert not validator.is_valid(broken)


def test_results_are_written_before_the_end(pytester, edge_run):
    """Each verdict is in results.json as soon as it is known (a later check sees the earlier one)."""
    checks = '''
import json, pathlib, pytest

@pytest.mark.edge_check("custom.first")
def test_a(edge):
    edge.record("value", 1)

@pytest.mark.edge_check("custom.second")
def test_b(edge):
    data = json.loads((pathlib.Path("out") / "results.json").read_text())
    status = {r["id"]: r["status"] for r in data["requirements"]}
    edge.record("first_done", status["R-A"] == "pass")
    edge.record("second_planned", status["R-B"] == "not-run")
'''
    run = edge_run([req("R-A", check="custom.first", expect="value == 1"),
                    req("R-B", check="custom.second", expect="first_done == true and second_planned == true")],
                   checks=checks)
    assert run.statuses() == {"R-A@site-a": "pass", "R-B@site-a": "pass"}, run.data["requirements"]


def test_edge_fixture_without_profile_is_an_error(pytester):
    pytester.makepyfile('''
import pytest

@pytest.mark.edge_check("custom.thing")
def test_x(edge):
    pass
''')
    result = pytester.runpytest("-p", "no:locust", *FAST)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*only available to tests marked*"])


def test_bad_profile_is_a_usage_error(pytester):
    bad = pytester.path / "bad.yaml"
    bad.write_text("id: bad\nversion: '1'\ntitle: Bad\nrequirements:\n"
                   "  - {id: R, title: t, level: must, check: custom.x, expect: x <= 3 msec}\n")
    target = pytester.path / "t.yaml"
    target.write_text("name: t\nsites: [{name: s, role: edge}]\n")
    result = pytester.runpytest("-p", "no:locust", *FAST, "--edge-profile", str(bad), "--edge-target", str(target))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(['*bad.yaml:5: requirements[[]0[]].expect: unknown unit "msec"*'])


def test_locust_plugin_is_blocked_even_when_not_asked(pytester):
    pytester.makeconftest('''
def pytest_configure(config):
    pass
''')
    pytester.makepyfile('''
def test_locust_blocked(request):
    pm = request.config.pluginmanager
    assert pm.get_plugin("locust") is None
    assert pm.is_blocked("locust")
''')
    # in a child process, without -p no:locust: the plugin itself must block locust's
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_site_filter_typo_is_a_usage_error(edge_run, pytester):
    with pytest.raises(FileNotFoundError):  # nothing was planned, nothing written
        edge_run([req("ALL", applies_to=())], "--edge-site", "site-c")
    # and the reason is on stderr, with a suggestion
    result = pytester.runpytest("-p", "no:locust", *FAST, "--edge-profile", "profile.yaml", "--edge-target",
                                "target.yaml", "--edge-out", "out2", "--edge-site", "site-c", "test_mine.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(['*--edge-site: no site or role "site-c"*(did you mean "site-?"?)*central, site-a, site-b, edge)'])


def test_should_level_unit_mismatch_is_an_advisory_error(edge_run):
    run = edge_run([req("REQ-1", "ms", expect="wait <= 2 rps", level="should"),
                    req("REQ-2", "ms", expect="wait <= 2 rps")])
    should, must = run.entry("REQ-1"), run.entry("REQ-2")
    assert should["status"] == must["status"] == "error"
    assert "cannot compare with the expectation" in should["message"]
    assert should["advisory"] is True and must["advisory"] is False
    run.result.assert_outcomes(passed=1, errors=2)  # pytest counts what the record counts
    run.result.stdout.fnmatch_lines(["*ERROR (advisory)*REQ-1@site-a*"])


def test_a_check_module_that_cannot_be_imported_is_an_error_that_says_why(edge_run, pytester):
    run = edge_run([req("REQ-9", check="custom.gone", expect="x <= 1")], checks="import no_such_module_here\n")
    e = run.entry("REQ-9")
    assert e["status"] == "error", e
    assert "test_mine.py could not be collected" in e["message"] and "no_such_module_here" in e["message"]
    assert run.data["verdict"] == "incomplete"


def test_a_waiver_that_matches_nothing_is_said_and_refused_with_strict(edge_run):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    waivers = [{"id": "REQ-9", "site": "all", "reason": "r", "who": "w", "expires": future},
               {"id": "REQ-1", "site": "site-z", "reason": "r", "who": "w", "expires": future}]
    run = edge_run([req("REQ-1", "fail")], waivers=waivers)
    run.result.stderr.fnmatch_lines([
        '*waivers.yaml:2: waiver REQ-9@all matches nothing and waives nothing: no requirement "REQ-9" in *',
        '*waivers.yaml:7: waiver REQ-1@site-z matches nothing and waives nothing: no site "site-z" in target *'])
    assert [w["id"] for w in run.data["waivers"]["unmatched"]] == ["REQ-9", "REQ-1"]
    assert run.entry("REQ-1")["status"] == "fail"
    (run.out / "results.json").unlink()
    with pytest.raises(FileNotFoundError):  # refused before anything was planned or written
        edge_run([req("REQ-1", "fail")], "--edge-strict", waivers=waivers)
