"""write_reports writes the contract's files atomically; load_results turns bad input into ConfigError."""

from __future__ import annotations

import json
import os

import pytest

from conformance.model.errors import ConfigError
from conformance.report import writer
from conformance.report.writer import load_results, write_reports


def test_writes_the_three_contract_files(tmp_path, non_conformant):
    written = write_reports(non_conformant, tmp_path / "out")
    assert written == {"junit": tmp_path / "out" / "junit.xml", "md": tmp_path / "out" / "summary.md",
                       "html": tmp_path / "out" / "report.html", "css": tmp_path / "out" / "report.css"}
    assert written["junit"].read_text().startswith("<?xml")
    assert written["md"].read_text().startswith("# Edge conformance: NON-CONFORMANT")
    assert "<!DOCTYPE html>" in written["html"].read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["junit.xml", "report.css", "report.html",
                                                                    "summary.md"]


def test_only_requested_formats(tmp_path, conformant):
    assert list(write_reports(conformant, tmp_path, formats=["md"])) == ["md"]
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_unknown_format_is_a_config_error_before_writing(tmp_path, conformant):
    with pytest.raises(ConfigError, match='unknown report format "hmtl" \\(did you mean "html"\\?\\)'):
        write_reports(conformant, tmp_path, formats=["md", "hmtl"])
    assert list(tmp_path.iterdir()) == []


def test_atomic_replace_keeps_old_file_when_rendering_fails(tmp_path, conformant, monkeypatch):
    write_reports(conformant, tmp_path, formats=["md"])
    before = (tmp_path / "summary.md").read_text()

    def boom(path, text):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", lambda *a: boom(*a))
    with pytest.raises(ConfigError, match="summary.md: cannot write: disk full"):  # one line, exit 2
        write_reports({**conformant, "verdict": "non-conformant"}, tmp_path, formats=["md"])
    assert (tmp_path / "summary.md").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]  # no temp file left behind


def test_written_files_are_readable_by_others(tmp_path, conformant):
    path = write_reports(conformant, tmp_path, formats=["junit"])["junit"]
    assert path.stat().st_mode & 0o044 == 0o044


def test_round_trip_through_load_results(tmp_path, with_raw):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(with_raw))
    assert load_results(path) == with_raw


@pytest.mark.parametrize("content,line,field,match", [
    ("{not json", 1, None, "invalid JSON"),
    ('{\n  "schema": "edge-conformance/results/v1",\n  "verdict": oops\n}', 3, None, "invalid JSON"),
    ("[1, 2]", 1, None, "expected a JSON object"),
    ('{"verdict": "conformant"}', None, "schema", "missing"),
    ('{"schema": "edge-conformance/results/v9"}', None, "schema",
     'unknown results schema "edge-conformance/results/v9"'),
    ('{"schema": "edge-conformance/results/v2", "requirements": {}}', None, "requirements", "expected a list"),
])
def test_load_results_errors(tmp_path, content, line, field, match):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        load_results(path)
    err = info.value
    assert (err.source, err.line, err.field) == (str(path), line, field)
    assert "\n" not in str(err) and str(err).startswith(str(path))


def test_old_results_load_and_render(tmp_path, legacy_v1):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(legacy_v1))
    loaded = load_results(path)
    assert loaded == legacy_v1
    written = write_reports(loaded, tmp_path / "out")
    assert "| BASE-SEC-01 | store-1 | must | skip |" in written["md"].read_text()
    assert 'data-status="skip"' in written["html"].read_text()
    assert writer.render(loaded, "terminal", color=False).startswith("Scope not recorded")


def test_old_results_refused_where_they_would_be_written_back(tmp_path, legacy_v1):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(legacy_v1))
    with pytest.raises(ConfigError, match="from an older harness") as info:
        load_results(path, legacy=False)
    assert info.value.field == "schema"


def test_every_v2_sample_is_valid_against_the_shipped_schema(any_results):
    """The samples the renderers are tested with are what the harness writes (v1: what it wrote)."""
    import jsonschema

    from conformance.model.paths import schemas_dir

    if any_results["schema"] != "edge-conformance/results/v2" or "counts" not in any_results:
        pytest.skip("an older or partial file: not what this harness writes")
    schema = json.loads((schemas_dir() / "results.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(any_results)


def test_load_results_unreadable(tmp_path):
    with pytest.raises(ConfigError, match="cannot read results") as info:
        load_results(tmp_path / "missing.json")
    assert info.value.source == str(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="cannot read results"):
        load_results(tmp_path)  # a directory


def test_load_results_not_utf8(tmp_path):
    path = tmp_path / "results.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_results(path)


def test_formats_match_the_run_contract():
    # the run's contract files, and report.html's stylesheet beside it (for strict Content-Security-Policies)
    assert writer.FILES == {"junit": "junit.xml", "md": "summary.md", "html": "report.html", "css": "report.css"}


@pytest.mark.parametrize("fmt,start", [("junit", "<?xml"), ("md", "# Edge conformance"), ("html", "<!DOCTYPE html>"),
                                       ("terminal", "Full run")])
def test_render_one_format_as_text(non_conformant, fmt, start):
    assert writer.render(non_conformant, fmt, color=False).startswith(start)


def test_render_terminal_colour_follows_tty(non_conformant, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    assert "\x1b[" not in writer.render(non_conformant, "terminal")
    assert "\x1b[" in writer.render(non_conformant, "terminal", color=True)


def test_render_unknown_format(conformant):
    with pytest.raises(ConfigError, match="unknown report format"):
        writer.render(conformant, "pdf")
