"""results.run_verdict: the rules that turn per-requirement statuses into the run's verdict."""

import pytest

from conformance.model import results as R
from conformance.model import verdict as V


def r(status, level="must"):
    return {"status": status, "level": level}


def test_all_must_pass_is_conformant():
    assert R.run_verdict([r("pass"), r("pass")]) == R.CONFORMANT
    assert R.run_verdict([]) == R.CONFORMANT


def test_must_fail_is_non_conformant():
    assert R.run_verdict([r("pass"), r("fail")]) == R.NON_CONFORMANT
    # a failure beats undecided results
    assert R.run_verdict([r("error"), r("fail"), r("not-run")]) == R.NON_CONFORMANT


@pytest.mark.parametrize("status", ["error", "inconclusive", "not-measured", "not-run"])
def test_must_undecided_is_incomplete(status):
    assert R.run_verdict([r("pass"), r(status)]) == R.INCOMPLETE


@pytest.mark.parametrize("level", ["should", "may"])
def test_should_failure_is_advisory_unless_strict(level):
    reqs = [r("pass"), r("fail", level)]
    assert R.run_verdict(reqs) == R.CONFORMANT
    assert R.run_verdict(reqs, strict=True) == R.NON_CONFORMANT


@pytest.mark.parametrize("status", ["error", "inconclusive", "not-measured", "not-run"])
def test_should_undecided_only_matters_when_strict(status):
    reqs = [r("pass"), r(status, "should")]
    assert R.run_verdict(reqs) == R.CONFORMANT
    assert R.run_verdict(reqs, strict=True) == R.INCOMPLETE


def test_waived_counts_as_passed():
    assert R.run_verdict([r("waived"), r("pass")]) == R.CONFORMANT
    assert R.run_verdict([r("waived"), r("waived", "should")], strict=True) == R.CONFORMANT


def test_not_applicable_is_not_a_failure():
    assert R.run_verdict([r("pass"), r("not-applicable")]) == R.CONFORMANT
    assert R.run_verdict([r("pass"), r("not-applicable")], strict=True) == R.CONFORMANT


def test_legacy_skip_of_v1_files_is_not_a_failure():
    assert "skip" in R.LEGACY_STATUSES and "skip" not in R.STATUSES
    assert R.run_verdict([r("pass"), r("skip")]) == R.CONFORMANT


def test_counts_and_exit_codes():
    c = R.counts([r("pass"), r("pass"), r("fail"), r("not-run"), r("not-measured")])
    assert c == {"pass": 2, "fail": 1, "error": 0, "inconclusive": 0, "not-applicable": 0, "not-measured": 1,
                 "waived": 0, "not-run": 1}
    assert list(c) == list(R.STATUSES)
    assert R.exit_code(R.CONFORMANT) == 0
    assert R.exit_code(R.NON_CONFORMANT) == 1
    assert R.exit_code(R.INCOMPLETE) == 3
    assert R.EXIT_USAGE == 2


def test_shipped_json_schemas_are_valid_draft_2020_12():
    import json

    import jsonschema

    from conformance.model.paths import schemas_dir

    names = {p.name for p in schemas_dir().glob("*.schema.json")}
    assert {"profile.schema.json", "target.schema.json", "results.schema.json"} <= names
    for name in names:
        schema = json.loads((schemas_dir() / name).read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
    results = json.loads((schemas_dir() / "results.schema.json").read_text(encoding="utf-8"))
    assert results["properties"]["schema"]["const"] == R.SCHEMA
    assert results["$defs"]["result"]["properties"]["status"]["enum"] == list(R.STATUSES)
    assert results["properties"]["counts"]["required"] == list(R.STATUSES)
    assert {"ended", "validity"} <= set(results["$defs"]["result"]["required"])
    assert results["$defs"]["ended"]["properties"]["how"]["enum"] == list(V.ENDINGS)
    assert results["$defs"]["evidence"]["properties"]["kind"]["enum"] == list(V.VALIDITY_KINDS)
    assert {"full", "narrowed_by", "changed_by"} <= set(results["$defs"]["scope"]["required"])
