"""compare (issue 15): a broken or partial NEW never passes, bad input is one located line, big runs are fast."""

from __future__ import annotations

import copy
import gzip
import io
import json
import tarfile
import time

import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.model.errors import ConfigError
from conformance.certify import compare as C

from tests.report.samples import not_measured, req, results

V2 = "edge-conformance/results/v2"


def _run(*args) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["compare", *map(str, args)], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _write(path, doc, indent=2):
    path.write_text(json.dumps(doc, indent=indent) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def _base() -> dict:
    return results([req("A"), req("B"), req("C", level="should")], "conformant")


def _one_line_error(code: int, err: str, *must: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for m in must:
        assert m in lines[0], lines[0]


# ------------------------------------------------------------------------------- 1. broken NEW runs


def test_a_result_missing_from_new_is_a_regression(tmp_path):
    base = _base()
    new = copy.deepcopy(base)
    new["requirements"] = [r for r in new["requirements"] if r["id"] != "B"]
    code, out, _ = _run(_write(tmp_path / "b.json", base), _write(tmp_path / "n.json", new))
    assert code == 1, out
    assert out.startswith("# Edge conformance comparison: 1 regression")
    assert "| REGRESSION (missing) | B@store-1 | must |" in out and "missing from the new run" in out
    assert "1 result of the base run is missing from the new run: each is a regression" in out


def test_every_must_removed_is_a_regression_each(tmp_path):
    base = _base()
    new = copy.deepcopy(base)
    new["requirements"] = [r for r in new["requirements"] if r["level"] != "must"]
    c = C.compare_runs(C.load_run(_write(tmp_path / "b.json", base)), C.load_run(_write(tmp_path / "n.json", new)))
    assert sorted((r.kind, r.id) for r in c.regressions) == [("removed", "A"), ("removed", "B")]
    # even with --accept-partial: a result the new run does not have at all is not "left out"
    assert len(C.compare_runs(base, new, accept_partial=True).regressions) == 2


@pytest.mark.parametrize("stub", [
    {"schema": V2, "verdict": "conformant", "requirements": []},
    {"schema": V2, "verdict": "conformant"},
    {"schema": V2},
])
def test_a_stub_is_not_a_run(tmp_path, stub):
    code, out, err = _run(_write(tmp_path / "b.json", _base()), _write(tmp_path / "stub.json", stub))
    _one_line_error(code, err, "stub.json:1: run_id: missing", "is this a whole results.json?")
    assert out == ""


def test_a_status_gone_is_not_better(tmp_path):
    new = _base()
    del new["requirements"][1]["status"]
    code, _, err = _run(_write(tmp_path / "b.json", _base()), _write(tmp_path / "n.json", new))
    _one_line_error(code, err, "requirements[1].status: missing")
    new["requirements"][1]["status"] = "passed"
    code, _, err = _run(_write(tmp_path / "b.json", _base()), _write(tmp_path / "n.json", new))
    _one_line_error(code, err, 'requirements[1].status: unknown status "passed" (one of: pass, ')
    # the Python API, given such a dict, does not call it better either
    row = C._status_row(("B", "store-1"), "pass", "None", {})
    assert row.kind == "worse" and row.regression


def test_a_partial_new_run_does_not_pass_silently(tmp_path):
    base = _base()
    left = not_measured("B", reason="left out of this run (--requirement A)", remedy="run it without --requirement")
    new = results([req("A"), left, req("C", level="should")], "incomplete",
                  scope={"full": False, "narrowed_by": ["--requirement A"], "changed_by": []})
    bp, np_ = _write(tmp_path / "b.json", base), _write(tmp_path / "n.json", new)
    code, out, _ = _run(bp, np_)
    assert code == 1, out
    assert "| REGRESSION (left out) | B@store-1 | must |" in out and "pass -> not-measured: left out of the new run" in out
    assert "the new run was partial (narrowed by --requirement A)" in out
    assert "--accept-partial accepts a partial run" in out
    # a partial base narrowed the same way: the must it left out is still not shown to hold
    code, out, _ = _run(np_, np_)
    assert code == 1 and "| REGRESSION (left out) | B@store-1 | must |" in out
    # accepted: shown, noted, not a regression
    code, out, _ = _run(bp, np_, "--accept-partial")
    assert code == 0, out
    assert "no regression" in out and "| left out (accepted) | B@store-1 |" in out
    assert "shown, not counted as regressions (--accept-partial)" in out
    data = json.loads(_run(bp, np_, "--accept-partial", "--format", "json")[1])
    row = next(r for r in data["rows"] if r["id"] == "B" and r["metric"] is None)
    assert row["kind"] == "left-out" and row["accepted"] is True and row["regression"] is False


def test_a_left_out_should_that_was_not_measured_before_is_no_row():
    left = not_measured("C", level="should", reason="left out of this run (--requirement A)")
    base = results([req("A"), copy.deepcopy(left)], "conformant")
    new = results([req("A"), left], "conformant", scope={"full": False, "narrowed_by": ["--requirement A"],
                                                          "changed_by": []})
    c = C.compare_runs(base, new)
    assert not c.regressions and not [r for r in c.rows if r.id == "C"]


def test_a_verdict_its_statuses_do_not_give_is_noted():
    new = results([req("A", status="fail")], "conformant")
    c = C.compare_runs(results([req("A")], "conformant"), new)
    assert "the new run says conformant, but its statuses give non-conformant: the file was edited" in c.notes


# ------------------------------------------------------------------------------- 3. what compare reads


def test_nan_in_a_file_is_one_located_line(tmp_path):
    text = json.dumps(_base(), indent=2).replace('"value": 12.3', '"value": NaN', 1)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "NaN" in s)
    code, _, err = _run(_write(tmp_path / "b.json", _base()), _write(tmp_path / "nan.json", text))
    _one_line_error(code, err, f"nan.json:{line}: invalid JSON: NaN is not a number JSON allows")


def test_an_overflowing_number_is_one_located_line(tmp_path):
    new = _base()
    new["requirements"][2]["measured"]["latency"]["value"] = 1.5
    text = json.dumps(new, indent=2)
    at = text.index('"value": 1.5')
    text = text[:at] + '"value": 1e999' + text[at + len('"value": 1.5'):]  # json reads it as infinity
    line = text[:at].count("\n") + 1
    code, _, err = _run(_write(tmp_path / "b.json", _base()), _write(tmp_path / "inf.json", text))
    _one_line_error(code, err, f"inf.json:{line}: requirements[2].measured.latency.value: expected a finite "
                               "number, not Infinity")


def test_nan_in_a_bundle_is_one_line(tmp_path):
    text = json.dumps(_base(), indent=2).replace('"value": 12.3', '"value": NaN', 1).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("edge-conformance-x/results.json")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    bundle = tmp_path / "nan.tar.gz"
    bundle.write_bytes(gzip.compress(buf.getvalue()))
    code, _, err = _run(_write(tmp_path / "b.json", _base()), bundle)
    _one_line_error(code, err, "nan.tar.gz[results.json]", "NaN is not a number JSON allows")


@pytest.mark.parametrize("change,expected", [
    (lambda d: d.update(profiles="edge-baseline"), "profiles: 'edge-baseline' is not of type 'array'"),
    (lambda d: d.update(profiles=["edge-baseline"]), "profiles[0]"),
    (lambda d: d.update(target="lab"), "target: "),
    (lambda d: d.update(requirements={"A": 1}), "requirements: expected a list"),
    (lambda d: d["requirements"].append("A"), 'requirements[3]: expected a result (an object), not "A"'),
    (lambda d: d["requirements"][0].update(measured={"p99": 20}), "requirements[0].measured.p99: expected"),
    (lambda d: d["requirements"][0].update(measured={"p99": {"value": "20", "unit": "ms"}}),
     'requirements[0].measured.p99.value: expected a finite number, not "20"'),
    (lambda d: d["requirements"][0].update(measured={"p99": {"value": True, "unit": "ms"}}),
     "requirements[0].measured.p99.value: expected a finite number, not true"),
    (lambda d: d["requirements"][0].update(measured={"a\nb\x1b[2J": {"value": None, "unit": ""}}),
     'requirements[0].measured."a\\nb\\u001b[2J".value'),
    (lambda d: d["requirements"][0].update(level="MUST"), 'requirements[0].level: unknown level "MUST"'),
    (lambda d: d["requirements"][0].update(site=None), "requirements[0].site: expected a string, not null"),
    (lambda d: d["requirements"][0].pop("ended"), "requirements[0].ended: missing"),
    (lambda d: d["requirements"].append(copy.deepcopy(d["requirements"][0])),
     '"A@store-1" (profile "edge-baseline") appears twice in the file (also requirements[0])'),
    (lambda d: d.update(scope={"full": "yes", "narrowed_by": [], "changed_by": []}), "scope.full"),
    (lambda d: d.update(run_id=7), "run_id: 7 is not of type 'string'"),
])
def test_what_compare_reads_is_checked(tmp_path, change, expected):
    new = _base()
    change(new)
    code, out, err = _run(_write(tmp_path / "b.json", _base()), _write(tmp_path / "n.json", new))
    _one_line_error(code, err, "n.json:", expected)
    assert out == ""


def test_an_older_v2_file_without_counts_still_compares(tmp_path, interrupted):
    """What compare does not read (counts, waivers, calibration) may be missing, as renderers allow."""
    path = _write(tmp_path / "old.json", interrupted)
    assert _run(path, path)[0] == 0


def test_v1_files_still_compare(tmp_path, legacy_v1):
    path = _write(tmp_path / "v1.json", legacy_v1)
    assert _run(path, path)[0] == 0
    legacy_v1["requirements"][0]["status"] = "unknown"
    code, _, err = _run(path, _write(tmp_path / "v1b.json", legacy_v1))
    _one_line_error(code, err, 'requirements[0].status: unknown status "unknown"')


def test_locate_finds_the_line_of_a_field():
    text = '{\n  "a": [\n    {"x": 1},\n    {\n      "y": [1,\n 2]\n    }\n  ],\n  "b": "\\"}{["\n}\n'
    assert C.locate(text, ("a", 1, "y")) == 5
    assert C.locate(text, ("a", 0)) == 3
    assert C.locate(text, ("b",)) == 9
    assert C.locate(text, ("a", 1, "missing")) == 4  # the object that should hold it
    assert C.locate("not json", ("a",)) == 1 and C.locate('{"a": [', ("a", 5)) is None


# ------------------------------------------------------------------------------- 2. linear in the results


def _fleet(sites: int, per_site: int) -> dict:
    one = req("X", measured={"p99": {"value": 9.0, "unit": "ms"}, "latency": {"value": 12.3, "unit": "ms"}},
              expect="p99 <= 20 ms and latency <= 500 ms")
    reqs = []
    for s in range(sites):
        for k in range(per_site):
            e = dict(one, measured={m: dict(v) for m, v in one["measured"].items()})
            e["id"], e["site"] = f"R-{k:02d}", f"store-{s:04d}"
            reqs.append(e)
    return results(reqs, "conformant")


def test_a_fleet_compares_in_linear_time():
    """20,000 results: quadratic indexing took minutes (about 4e8 steps); linear is about a second."""
    base = _fleet(1000, 20)
    new = copy.deepcopy(base)
    new["requirements"][123]["measured"]["p99"]["value"] = 19.0
    started = time.perf_counter()
    c = C.compare_runs(base, new)
    C.render_markdown(c)
    assert time.perf_counter() - started < 20
    assert [(r.id, r.site, r.metric) for r in c.regressions] == [("R-03", "store-0006", "p99")]


def test_json_output_is_json_and_has_every_row(tmp_path):
    base = _base()
    new = copy.deepcopy(base)
    new["requirements"][0]["measured"]["latency"]["value"] = 400.0
    code, out, _ = _run(_write(tmp_path / "b.json", base), _write(tmp_path / "n.json", new), "--format", "json")
    data = json.loads(out)
    c = C.compare_runs(base, new)
    assert code == 1 and data == json.loads(json.dumps(c.to_dict()))
    assert data["regressions"] == 1 and len(data["rows"]) == len(c.rows) == 6
    empty = C.compare_runs(results([], "conformant"), results([], "conformant"))
    assert json.loads(C.render_json(empty))["rows"] == []


def test_slim_loading_keeps_what_compare_reads(tmp_path, with_raw):
    path = _write(tmp_path / "r.json", with_raw)
    slim, full = C.load_run(path, slim=True), C.load_run(path)
    # what compare reads, and of the raw measurements only a latency histogram (its noise band)
    assert [set(e) - {"raw"} for e in slim["requirements"]] == \
        [set(C.RESULT_FIELDS) & set(e) for e in full["requirements"]]
    for s, f in zip(slim["requirements"], full["requirements"]):
        hist = ((f.get("raw") or {}).get("latency") or {}).get("histogram")
        assert s.get("raw") == ({"latency": {"histogram": hist, "unit": f["raw"]["latency"].get("unit", "us")}}
                                if isinstance(hist, str) else None)
    assert C.compare_runs(slim, slim).rows == C.compare_runs(full, full).rows


def test_too_deep_is_refused_by_the_bounded_parser(tmp_path):
    deep = _base()
    deep["options"] = {"x": json.loads("[" * 100 + "]" * 100)}
    code, _, err = _run(_write(tmp_path / "b.json", _base()), _write(tmp_path / "deep.json", deep, indent=None))
    _one_line_error(code, err, "deep.json: is nested more than 64 levels deep")


def test_python_api_load_run_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"stub.json:1: run_id: missing"):
        C.load_run(_write(tmp_path / "stub.json", {"schema": V2, "requirements": []}))
