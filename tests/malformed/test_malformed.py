"""The malformed-input corpus, run through the real CLI.

Every file here is wrong in one way, and records the error it must produce on its first line:

    # expect: :14: requirements[3].expect: unknown unit "msec" (did you mean "ms"?)

The substring follows the file name directly, so it pins the line number and the field path. Each
file is run in a subprocess (profiles with `profiles validate`, targets with `run --target`, waivers
with `run --waivers`, topologies with `run --target emulated:FILE`); the CLI must exit 2 with exactly
one line on stderr and no traceback, before anything is started.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.cli import cli_env

CORPUS = Path(__file__).resolve().parent
KINDS = ("profiles", "targets", "waivers", "topologies")
FILES = sorted(p for kind in KINDS for p in (CORPUS / kind).glob("*.yaml"))
SECRETS = ("hunter2", "s3cr3t-t0ken")  # literal secrets some files contain: never echoed back

GOOD_TARGET = """\
name: loopback
sites:
  - name: store-1
    role: edge
    endpoints: {api: "http://127.0.0.1:9"}
"""


def expectation(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: <substring>'"
    return first.removeprefix("# expect: ").strip()


def command(path: Path, out: Path, good_target: Path) -> list[str]:
    cli = [sys.executable, "-m", "conformance.cli"]
    kind = path.parent.name
    if kind == "profiles":
        return cli + ["profiles", "validate", path.name]
    if kind == "targets":
        return cli + ["run", "--target", path.name, "--profile", "edge-baseline", "--out", str(out)]
    if kind == "topologies":
        return cli + ["run", "--target", f"emulated:{path.name}", "--profile", "edge-baseline", "--out", str(out)]
    return cli + ["run", "--waivers", path.name, "--target", str(good_target), "--profile", "edge-baseline",
                  "--out", str(out)]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Run the whole corpus once, a few files at a time."""
    tmp = tmp_path_factory.mktemp("malformed")
    good_target = tmp / "good-target.yaml"
    good_target.write_text(GOOD_TARGET, encoding="utf-8")
    env = cli_env()

    def run(path: Path):
        out = tmp / f"out-{path.parent.name}-{path.stem}"
        proc = subprocess.run(command(path, out, good_target), cwd=path.parent, env=env,
                              capture_output=True, text=True, timeout=60)
        return path, proc, out

    with ThreadPoolExecutor(max_workers=4) as pool:
        return {path: (proc, out) for path, proc, out in pool.map(run, FILES)}


def test_corpus_is_complete():
    assert len(FILES) >= 24
    counts = {kind: sum(p.parent.name == kind for p in FILES) for kind in KINDS}
    assert counts["profiles"] >= 20 and counts["targets"] >= 9 and counts["waivers"] >= 2, counts
    for path in FILES:
        expected = expectation(path)
        assert expected.startswith(":") and expected.split(":")[1].isdigit(), \
            f"{path.name}: the expectation must start with :LINE:"


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_malformed_file(path, outcomes):
    proc, out = outcomes[path]
    expected = expectation(path)
    stderr = proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"stderr must be one line, got:\n{stderr}"
    line = lines[0]
    assert path.name in line
    assert f"{path.name}{expected}" in line, f"expected {path.name}{expected!r}\n got {line!r}"
    for secret in SECRETS:
        assert secret not in stderr + proc.stdout
    assert not (out / "results.json").exists(), "nothing may run on bad input"
