"""The renderer registry (report/writer.py RENDERERS): every format is one entry, and `render`,
`write_reports` and the bundle's reports all go through it."""

from __future__ import annotations

import json

import pytest

from conformance.model.errors import ConfigError
from conformance.report import writer
from conformance.report.writer import RENDERERS, Renderer


def test_the_registry_holds_the_run_contract_and_the_terminal():
    assert list(RENDERERS) == ["junit", "md", "html", "css", "terminal"]
    assert {name: r.file for name, r in RENDERERS.items()} == {
        "junit": "junit.xml", "md": "summary.md", "html": "report.html", "css": "report.css", "terminal": None}
    assert writer.FILES == {name: r.file for name, r in RENDERERS.items() if r.file}
    assert writer.DEFAULT_FORMATS == ("junit", "md", "html", "css")


@pytest.mark.parametrize("fmt", ["junit", "md", "html"])
def test_each_entry_renders_what_write_reports_writes(tmp_path, non_conformant, fmt):
    path = writer.write_reports(non_conformant, tmp_path, formats=[fmt])[fmt]
    assert path.name == RENDERERS[fmt].file
    if fmt != "html":  # the HTML report has a fresh CSP nonce each time
        assert path.read_text(encoding="utf-8") == RENDERERS[fmt](non_conformant)


def test_adding_a_format_is_one_entry(tmp_path, conformant, monkeypatch):
    monkeypatch.setitem(RENDERERS, "json", Renderer("results-copy.json", "json", "dumps"))
    assert writer.render(conformant, "json") == json.dumps(conformant)
    written = writer.write_reports(conformant, tmp_path, formats=["json", "md"])
    assert written == {"json": tmp_path / "results-copy.json", "md": tmp_path / "summary.md"}
    assert json.loads(written["json"].read_text()) == conformant
    assert oct(written["json"].stat().st_mode & 0o777) == "0o644"


def test_the_terminal_is_rendered_but_never_written(tmp_path, conformant):
    assert writer.render(conformant, "terminal", color=False)
    with pytest.raises(ConfigError, match='unknown report format "terminal"'):
        writer.write_reports(conformant, tmp_path, formats=["terminal"])
