"""./edge-results/latest follows the newest run; a user's own `latest` is left alone."""

from __future__ import annotations

import os

from conformance.engine.outdir import default_out_dir, point_latest


def test_latest_points_at_the_newest_run_and_is_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = default_out_dir("run-1"), default_out_dir("run-2")
    for d in (first, second):
        d.mkdir(parents=True)
        (d / "results.json").write_text(d.name)
    point_latest(first)
    assert (tmp_path / "edge-results" / "latest" / "results.json").read_text() == "run-1"
    point_latest(second)
    latest = tmp_path / "edge-results" / "latest"
    assert os.readlink(latest) == "run-2" and (latest / "results.json").read_text() == "run-2"
    assert sorted(p.name for p in latest.parent.iterdir()) == ["latest", "run-1", "run-2"]  # no temporary left


def test_a_real_directory_called_latest_is_not_replaced(tmp_path):
    (tmp_path / "latest").mkdir()
    (tmp_path / "latest" / "mine.txt").write_text("keep")
    (tmp_path / "run-1").mkdir()
    point_latest(tmp_path / "run-1")
    assert not (tmp_path / "latest").is_symlink() and (tmp_path / "latest" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "run-1"]
