"""Hostile input files (issue 15): FIFOs, devices, huge files, alias bombs and deep nesting are one
located line and exit 2 within seconds, never a hang, a MemoryError or a RecursionError traceback."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from conformance.model import boundedio
from conformance.model.errors import ConfigError
from tests.helpers.cli import CLI, cli_env


def _cli(cwd, *args):
    env = cli_env()
    started = time.monotonic()
    proc = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    return proc, time.monotonic() - started


def _one_line_exit_2(proc, elapsed, *expected):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert elapsed < 20  # generous: the budget is 5 s on a quiet machine


def test_a_fifo_as_target_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "target.yaml")
    proc, elapsed = _cli(tmp_path, "run", "--target", "target.yaml", "--out", "out")
    _one_line_exit_2(proc, elapsed, "target.yaml: is not a regular file")
    assert not (tmp_path / "out" / "results.json").exists()


def test_dev_zero_as_target(tmp_path):
    proc, elapsed = _cli(tmp_path, "run", "--target", "/dev/zero", "--out", "out")
    _one_line_exit_2(proc, elapsed, "/dev/zero: is not a regular file")


def test_a_fifo_as_topology(tmp_path):
    os.mkfifo(tmp_path / "topo.yaml")
    proc, elapsed = _cli(tmp_path, "emulate", "up", "topo.yaml", "--detach")
    _one_line_exit_2(proc, elapsed, "topo.yaml: is not a regular file")


def test_a_fifo_as_a_sites_ca_file(tmp_path):
    os.mkfifo(tmp_path / "ca.pem")
    (tmp_path / "t.yaml").write_text("name: t\nsites:\n  - name: s\n    role: edge\n"
                                     "    endpoints: {api: 'https://127.0.0.1:9'}\n    ca_file: ca.pem\n")
    proc, elapsed = _cli(tmp_path, "run", "--target", "t.yaml", "--out", "out")
    _one_line_exit_2(proc, elapsed, "t.yaml:6: sites[0].ca_file:", "ca.pem is not a regular file")


def test_a_huge_target_is_refused_by_size(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("name: big\nsites:\n")
        i = 0
        while f.tell() < boundedio.MAX_YAML_BYTES + 1024:
            f.write(f"  - {{name: s{i}, role: edge, endpoints: {{api: 'http://127.0.0.1:9'}}}}\n")
            i += 1
    proc, elapsed = _cli(tmp_path, "run", "--target", "big.yaml", "--out", "out")
    _one_line_exit_2(proc, elapsed, "big.yaml: is 4.0 MiB, more than a YAML file may be (4.0 MiB)")


def test_an_alias_bomb_target(tmp_path):
    rows = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for name, prev in zip("bcdefgh", "abcdefg"):
        rows.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    (tmp_path / "t.yaml").write_text("name: t\n" + "\n".join(rows) + "\nsites: [{name: s, role: edge, x: *h}]\n")
    proc, elapsed = _cli(tmp_path, "run", "--target", "t.yaml", "--out", "out")
    _one_line_exit_2(proc, elapsed, "expands to more than 500000 values (YAML aliases?)")


def test_json_limits():
    with pytest.raises(ConfigError, match="nested more than 64 levels deep"):
        boundedio.parse_json("[" * 100_000 + "]" * 100_000, "deep.json")
    with pytest.raises(ConfigError, match="nested more than 64 levels deep"):
        boundedio.parse_json("[" * 70 + "]" * 70, "deep.json")
    assert boundedio.parse_json("[" * 60 + "]" * 60, "ok.json") is not None
    with pytest.raises(ConfigError, match="NaN is not a number JSON allows"):
        boundedio.parse_json('{"value": NaN}', "nan.json")
    with pytest.raises(ConfigError, match=r"^big.json: is 1022 bytes, more than it may be \(100 bytes\)"):
        boundedio.parse_json(json.dumps("x" * 1020), "big.json", limit=100)
    with pytest.raises(ConfigError, match=r"^bad.json:1: invalid JSON: Expecting value \(column 1\)"):
        boundedio.parse_json("nope", "bad.json")
