"""A non-editable install ships the suites, the profiles and the schemas inside the wheel."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from tests.helpers.cli import cli_env, write_target

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_install_works_without_a_checkout(tmp_path, http_url):
    # build from a copy, so the build sees only what is in the project (and writes nothing into it)
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "edge-results")
    src.mkdir()
    for name in ("pyproject.toml", "README.md", ".gitignore"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for name in ("conformance", "suites", "profiles"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    env = {**cli_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTEST_ADDOPTS")  # exactly what a user gets
    pip = [str(py), "-m", "pip", "install", "--no-deps", "--quiet"]
    if importlib.util.find_spec("hatchling") is not None:
        pip.append("--no-build-isolation")
    proc = subprocess.run([*pip, str(src)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(py), "-c", "import conformance, conformance.model.paths as p; "
                            "print(conformance.__file__); print(p.suites_dir()); print(p.profiles_dir()); "
                            "print(p.schemas_dir())"],
                           cwd=elsewhere, capture_output=True, text=True, env=env, timeout=60, check=True)
    package, suites, profiles, schemas = map(Path, where.stdout.split("\n")[:4])
    assert venv in package.parents, f"imported {package}, not the installed wheel"
    assert venv in suites.parents and (suites / "functional").is_dir()
    assert venv in profiles.parents and (profiles / "edge-baseline.yaml").is_file()
    assert {"profile.schema.json", "target.schema.json", "results.schema.json"} <= {p.name for p in schemas.iterdir()}

    exe = str(bindir / "edge-conformance")
    proc = subprocess.run([exe, "profiles", "list"], cwd=elsewhere, capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("edge-baseline ") for line in proc.stdout.splitlines())
    assert "sources" not in [line.split()[0] for line in proc.stdout.splitlines()]  # the bibliography is no profile

    # The bibliography ships too: every requirement of every profile explained with its full citation.
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    for name in names:
        proc = subprocess.run([exe, "profiles", "explain", name], cwd=elsewhere, capture_output=True, text=True,
                              env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        blocks = [b for b in proc.stdout.split("\n\n") if b.strip()]
        for block in blocks:
            assert "  cites:     " in block and "             = " in block, block
            assert "  basis:     " in block and "basis not stated" not in block, block

    target = write_target(elsewhere / "T.yaml", {"api": http_url})
    proc = subprocess.run([exe, "run", "--target", "T.yaml", "--out", "out"], cwd=elsewhere, capture_output=True,
                          text=True, env=env, timeout=120)
    assert target.exists()
    data = json.loads((elsewhere / "out" / "results.json").read_text(encoding="utf-8"))
    assert data["profiles"][0]["id"] == "edge-baseline" and data["state"] == "finished"
    status = {r["id"]: r["status"] for r in data["requirements"]}
    # the functional suite was found and ran against the loopback server
    for rid in ("BASE-FUN-01", "BASE-FUN-02", "BASE-FUN-03"):
        assert status[rid] == "pass", (rid, status, proc.stdout)
    # and every shipped suite the profile needs was there
    for r in data["requirements"]:
        assert "not selected" not in r["message"] and "no collected test implements" not in r["message"], r
    assert proc.returncode in (0, 1, 3), proc.stdout + proc.stderr
    assert "PytestAssertRewriteWarning" not in proc.stdout + proc.stderr, proc.stdout
