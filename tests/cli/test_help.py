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
    for flag in ("--version", "-V"):
        proc = subprocess.run([exe, flag], capture_output=True, text=True, env=cli_env(), timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("edge-conformance, version"), (flag, proc.stderr)


def _complete(*words: str) -> list[tuple[str, str]]:
    """What the shell's completion gets for the last word (click's bash protocol: "type,value" lines)."""
    env = {**cli_env(), "_EDGE_CONFORMANCE_COMPLETE": "bash_complete",
           "COMP_WORDS": " ".join(("edge-conformance",) + words), "COMP_CWORD": str(len(words))}
    proc = subprocess.run([shutil.which("edge-conformance")], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [tuple(line.split(",", 1)) for line in proc.stdout.splitlines()]


def test_shell_completion_offers_profiles_topologies_and_suites():
    assert ("plain", "retail") in _complete("run", "--profile", "ret")
    assert ("plain", "naas") in _complete("profiles", "explain", "n")
    assert ("file", "my") in _complete("run", "--profile", "my")  # the user's own YAML: the shell's files
    assert ("plain", "emulated:satcom") in _complete("run", "--target", "emulated:s")
    assert {("plain", "satcom"), ("plain", "ssh-lab")} <= set(_complete("emulate", "up", "s"))
    assert _complete("run", "--suite", "lat") == [("plain", "latency")]


def test_bad_arguments_exit_2():
    proc = run_cli("run", "--no-such-option")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("run", "--suite", "nosuch", "--target", "emulated")
    assert proc.returncode == 2 and 'unknown suite "nosuch"' in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
