"""model/secrets.py (the known secret values of a target, the one redaction) and RunRecord's use of it."""

from __future__ import annotations

import json

import pytest

from conformance.engine.record import RunRecord
from conformance.model import secrets as S
from conformance.model.errors import ConfigError
from conformance.model.target import Hook, Site, Target

TOKEN = "tok-3f9a1c7e55"
PASS = 'p"w\\d-ü-1234'  # quotes, a backslash and non-ASCII: written differently in JSON and HTML


def target() -> Target:
    return Target(name="lab", path="lab.yaml", sites=[
        Site(name="store-1", role="edge", credentials={"api_token": "EDGE_T_TOKEN"},
             hooks={"partition": Hook("partition", "fw --user ops --pass-env ${EDGE_T_PASS} on", 10),
                    "kill": Hook("kill", ["systemctl", "kill", "edge"], 10)}),
        Site(name="store-2", role="edge", credentials={"api_token": "EDGE_T_TOKEN", "db": "EDGE_T_SHORT"}),
    ])


ENV = {"EDGE_T_TOKEN": TOKEN, "EDGE_T_PASS": PASS, "EDGE_T_SHORT": "abc", "OTHER": "not-referred-to"}


def test_the_known_values_are_those_of_every_variable_the_target_refers_to():
    assert S.target_variables(target()) == {
        "EDGE_T_TOKEN": "credentials.api_token of site store-1", "EDGE_T_SHORT": "credentials.db of site store-2",
        "EDGE_T_PASS": "hook partition of site store-1"}
    # set and long enough; the unset and the short ones are not known values
    assert S.known_secret_values(target(), ENV) == {"EDGE_T_TOKEN": TOKEN, "EDGE_T_PASS": PASS}
    assert S.known_secret_values(target(), {}) == {}


def test_a_credential_too_short_to_redact_is_refused_without_its_value():
    with pytest.raises(ConfigError) as err:
        S.check_lengths(target(), ENV)
    text = str(err.value)
    assert text.startswith("lab.yaml: sites[1].credentials.db: the value of ${EDGE_T_SHORT} is shorter than 6 "
                           "characters"), text
    assert "abc" not in text
    S.check_lengths(target(), {**ENV, "EDGE_T_SHORT": "long-enough"})
    S.check_lengths(target(), {"EDGE_T_SHORT": ""})  # empty: nothing to leak


def test_profile_params_references_count_for_a_run():
    class Req:
        params = {"headers": {"Authorization": "Bearer ${EDGE_T_HEADER}"}, "path": "/x"}

    class Profile:
        requirements = [Req()]

    env = {**ENV, "EDGE_T_HEADER": "header-secret-1"}
    assert S.run_secret_values(target(), [Profile()], env)["EDGE_T_HEADER"] == "header-secret-1"


def test_redact_replaces_every_form_of_every_value_by_its_reference():
    known = S.known_secret_values(target(), ENV)
    text = f"a {TOKEN} b {json.dumps(PASS)} c {PASS} d &lt;{S.forms(PASS)[-1]}"
    out = S.redact(text, known)
    assert TOKEN not in out and PASS not in out and all(f not in out for f in S.forms(PASS))
    assert out.startswith("a ${EDGE_T_TOKEN} b \"${EDGE_T_PASS}\" c ${EDGE_T_PASS} d")
    assert S.find(out, known) is None and S.find(f"x {json.dumps(PASS)}".encode(), known) == "EDGE_T_PASS"
    # a value inside another goes with the longer one, whole
    assert S.redact("xx-secret-value-yy", {"A": "secret-value", "B": "xx-secret-value-yy"}) == "${B}"
    # short values are never redacted blindly, even when asked
    assert S.redact("admin administrator", {"U": "admin"}) == "admin administrator"
    assert S.redact("anything", {}) == "anything"


def test_redact_data_walks_strings_in_place_and_leaves_numbers():
    known = {"T": "123456789"}
    inner = ["id 123456789", 123456789]
    data = {"note": inner, "k 123456789": {"v": 0.123456789}, "t": ("123456789",)}
    assert S.redact_data(data, known) is data
    assert data == {"note": ["id ${T}", 123456789], "k ${T}": {"v": 0.123456789}, "t": ("${T}",)}
    assert data["note"] is inner


def test_the_record_never_writes_a_known_value_and_its_memory_is_redacted_too(tmp_path):
    known = S.known_secret_values(target(), ENV)
    rec = RunRecord(tmp_path / "results.json", "run-1", [], target().redacted(), {"strict": False},
                    secrets=known)
    entry = {"profile": "p", "id": "R-1", "site": "store-1", "status": "not-run", "level": "must",
             "advisory": False, "message": "not run", "notes": [], "raw": {}, "measured": {}}
    rec.plan(entry)
    rec.update("p", "R-1", "store-1", status="error", message=f"could not measure: RuntimeError: 401 for {TOKEN}",
               notes=[f"pass was {PASS}"], raw={"echo": {"body": f"token={TOKEN}"}, "n": [1, 2]})
    text = (tmp_path / "results.json").read_text(encoding="utf-8")
    assert S.find(text, known) is None
    assert "401 for ${EDGE_T_TOKEN}" in text
    data = json.loads(text)
    assert data["requirements"][0]["notes"] == ["pass was ${EDGE_T_PASS}"]
    assert data["requirements"][0]["raw"] == {"echo": {"body": "token=${EDGE_T_TOKEN}"}, "n": [1, 2]}
    # what the reports render from (the record in memory) is redacted as well
    assert S.find(json.dumps(rec.data), known) is None
    rec.finish("finished")
    assert S.find((tmp_path / "results.json").read_text(encoding="utf-8"), known) is None


def test_a_record_without_known_values_is_written_as_is(tmp_path):
    rec = RunRecord(tmp_path / "results.json", "run-1", [], None, {"strict": False})
    rec.set("calibration", {"note": TOKEN})
    assert TOKEN in (tmp_path / "results.json").read_text(encoding="utf-8")
