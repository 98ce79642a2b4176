"""A site's `ca_file` in the target file: the CA bundle that verifies its https endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.model.errors import ConfigError
from conformance.model.target import load_target

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"  # only the marker is checked here


def target(tmp_path: Path, ca_line: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""\
        name: lab
        sites:
          - name: central
            role: central
            endpoints: {{api: "http://127.0.0.1:8080"}}
          - name: store-1
            role: edge
            endpoints: {{mgmt: "https://127.0.0.1:8443"}}
            {ca_line}
        """), encoding="utf-8")
    return path


def test_relative_ca_file_resolves_against_the_target_file(tmp_path, monkeypatch):
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.pem").write_text(PEM)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the cwd: the target file's directory
    t = load_target(target(tmp_path, "ca_file: pki/ca.pem"))
    assert t.site("store-1").ca_file == str((tmp_path / "pki" / "ca.pem").resolve())
    assert t.site("central").ca_file is None


def test_absolute_ca_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    assert load_target(target(tmp_path, f"ca_file: {ca}")).site("store-1").ca_file == str(ca.resolve())


@pytest.mark.parametrize("line, prepare, message", [
    ("ca_file: missing.pem", None, "missing.pem: No such file or directory"),
    ("ca_file: dir", "dir", "is a directory"),
    ("ca_file: junk.pem", "junk", "holds no PEM certificate"),
    ('ca_file: ""', None, "ca_file"),
    ("ca_file: 42", None, "ca_file"),
])
def test_bad_ca_file_is_one_located_line(tmp_path, line, prepare, message):
    if prepare == "dir":
        (tmp_path / "dir").mkdir()
    elif prepare == "junk":
        (tmp_path / "junk.pem").write_text("not a certificate\n")
    path = target(tmp_path, line)
    with pytest.raises(ConfigError) as info:
        load_target(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:9:"), text  # the file and the line of the field
    assert "sites[1].ca_file" in text, text
    assert message in text, text


def test_cli_reports_a_missing_ca_file_with_exit_2(tmp_path):
    path = target(tmp_path, "ca_file: nowhere/ca.pem")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", str(path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{path}:9:" in lines[0] and "ca_file" in lines[0] and "No such file" in lines[0], lines[0]
    assert not (tmp_path / "out").exists()
