"""Every command documents itself with an example."""

from __future__ import annotations

import shutil
import subprocess

import click
import pytest

from conformance import cli as cli_module
from tests.helpers.cli import cli_env, run_cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append(prefix + (name,))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, prefix + (name,))
    return out


COMMANDS = [()] + _commands(cli_module.main)


def test_the_contract_commands_exist():
    names = {" ".join(c) for c in COMMANDS}
    assert {"run", "profiles", "profiles list", "profiles show", "profiles validate", "profiles explain",
            "profiles checks", "report"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "edge-conformance")
def test_help_shows_an_example(command):
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Usage:" in proc.stdout
    assert "Example" in proc.stdout, f"{' '.join(command) or 'main'} --help has no example"
    example = "edge-conformance " + " ".join(command)
    assert example.strip() in proc.stdout


def test_console_script_and_version():
    exe = shutil.which("edge-conformance")
    assert exe, "the edge-conformance console script is not installed"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert proc.returncode == 0 and "edge-conformance run" in proc.stdout
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert proc.returncode == 0 and "edge-conformance" in proc.stdout


def test_bad_arguments_exit_2():
    proc = run_cli("run", "--no-such-option")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("run", "--suite", "nosuch", "--target", "emulated")
    assert proc.returncode == 2 and 'unknown suite "nosuch"' in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
