"""report --out (issue 15): a directory, a file in the way, the results file itself: one line, exit 2."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.model.errors import ConfigError
from conformance.report import writer


@pytest.fixture
def run(tmp_path, non_conformant):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(non_conformant, indent=2), encoding="utf-8")
    return path


def _report(*args):
    r = CliRunner().invoke(main, ["report", *map(str, args)], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _one_line(code, err, *must):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for m in must:
        assert m in lines[0], lines[0]


def test_a_single_report_at_a_directory(run, tmp_path):
    (tmp_path / "d").mkdir()
    _one_line(*_report(run, "--format", "md", "--out", tmp_path / "d")[::2],
              "d: is a directory: give a file name (or --format all --out DIR")
    assert list((tmp_path / "d").iterdir()) == []


def test_all_reports_at_a_file(run, tmp_path):
    (tmp_path / "f.txt").write_text("mine")
    _one_line(*_report(run, "--format", "all", "--out", tmp_path / "f.txt")[::2], "f.txt: is not a directory")
    _one_line(*_report(run, "--format", "all", "--out", tmp_path / "f.txt" / "sub")[::2],
              "cannot create the directory: a part of the path is a file, not a directory")
    _one_line(*_report(run, "--format", "md", "--out", tmp_path / "f.txt" / "x.md")[::2],
              "x.md: cannot write: a part of the path is a file, not a directory")
    assert (tmp_path / "f.txt").read_text() == "mine"


def test_never_over_what_was_measured(run, tmp_path, conformant):
    before = run.read_bytes()
    _one_line(*_report(run, "--format", "md", "--out", run)[::2], "is the results file being rendered")
    other = tmp_path / "other" / "results.json"
    other.parent.mkdir()
    other.write_text(json.dumps(conformant, indent=2))
    _one_line(*_report(run, "--format", "html", "--out", other)[::2], "is a run's results.json")
    assert run.read_bytes() == before and json.loads(other.read_text()) == conformant


def test_not_at_a_device(run):
    _one_line(*_report(run, "--format", "md", "--out", "/dev/null")[::2], "/dev/null: is not a regular file")


def test_an_existing_report_is_replaced(run, tmp_path):
    out = tmp_path / "summary.md"
    out.write_text("old")
    code, _, err = _report(run, "--format", "md", "--out", out)
    assert code == 0, err
    assert out.read_text().startswith("# Edge conformance: NON-CONFORMANT")
    code, stdout, _ = _report(run, "--format", "all", "--out", tmp_path / "new" / "reports")
    assert code == 0 and sorted(p.name for p in (tmp_path / "new" / "reports").iterdir()) == \
        ["junit.xml", "report.css", "report.html", "summary.md"]


def test_write_report_file_api(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        writer.write_report_file(tmp_path, "x")
    assert writer.write_report_file(tmp_path / "a" / "b.md", "x").read_text() == "x"


# ---- metrics --out: the same check as report --out (writer.check_report_path / write_report_file)


def _metrics(*args):
    r = CliRunner().invoke(main, ["metrics", *map(str, args)], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_metrics_at_a_directory(run, tmp_path):
    (tmp_path / "d").mkdir()
    _one_line(*_metrics(run, "--out", tmp_path / "d")[::2], "d: is a directory: give a file name")
    code, _, err = _metrics(run, "--out", tmp_path / "d")
    assert "--format all" not in err  # report's hint; metrics has no --format
    assert list((tmp_path / "d").iterdir()) == []


def test_metrics_at_a_fifo_or_device(run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _one_line(*_metrics(run, "--out", fifo)[::2], "fifo: is not a regular file")  # not a hang on open()
    _one_line(*_metrics(run, "--out", "/dev/null")[::2], "/dev/null: is not a regular file")


def test_metrics_below_a_file(run, tmp_path):
    (tmp_path / "f.txt").write_text("mine")
    _one_line(*_metrics(run, "--out", tmp_path / "f.txt" / "metrics.txt")[::2],
              "metrics.txt: cannot write: a part of the path is a file, not a directory")
    assert (tmp_path / "f.txt").read_text() == "mine"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc, where no file can be created")
def test_metrics_at_an_unwritable_path(run):
    _one_line(*_metrics(run, "--out", "/proc/edge-conformance-metrics.txt")[::2], "cannot write:")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_metrics_into_a_read_only_directory(run, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _one_line(*_metrics(run, "--out", ro / "metrics.txt")[::2], "metrics.txt: cannot write: Permission denied")
    finally:
        ro.chmod(0o755)


def test_metrics_never_over_what_was_measured(run, tmp_path, conformant):
    before = run.read_bytes()
    _one_line(*_metrics(run, "--out", run)[::2], "is the results file being rendered")
    _one_line(*_metrics(run.parent, "--out", run)[::2], "is the results file being rendered")  # RESULTS a run dir
    other = tmp_path / "other" / "results.json"
    other.parent.mkdir()
    other.write_text(json.dumps(conformant, indent=2))
    _one_line(*_metrics(run, "--out", other)[::2], "is a run's results.json")
    assert run.read_bytes() == before and json.loads(other.read_text()) == conformant


def test_metrics_out_writes_and_replaces(run, tmp_path):
    out = tmp_path / "new" / "metrics.txt"
    code, stdout, err = _metrics(run, "--out", out)
    assert code == 0 and stdout == "", err
    assert out.read_text().startswith("# TYPE edge_conformance_conformant gauge")
    out.write_text("old")
    assert _metrics(run, "--out", out)[0] == 0 and out.read_text().startswith("# TYPE")
    assert oct(out.stat().st_mode & 0o777) == "0o644"
