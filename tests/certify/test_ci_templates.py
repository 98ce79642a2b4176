"""ci/: the CI templates parse, and every edge-conformance command they run exists with those options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from conformance.cli import main

CI = Path(__file__).resolve().parents[2] / "ci"
GITHUB_WORKFLOW = CI / "github" / "workflow.yml"
GITHUB_ACTION = CI / "github" / "action.yml"
GITLAB = CI / "gitlab" / ".gitlab-ci.yml"
JENKINS = CI / "jenkins" / "Jenkinsfile"
SHARDED = (CI / "github" / "sharded.yml", CI / "gitlab" / "sharded.gitlab-ci.yml")
JENKINS_SHARDED = CI / "jenkins" / "Jenkinsfile.sharded"
JENKINS_STAGES = ("Install", "Validate", "Conformance", "Bundle", "Compare", "Gate")
SCRIPT_KEYS = ("run", "script", "before_script", "after_script")


def _yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _scripts_in_yaml(node, key=None) -> list[str]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _scripts_in_yaml(v, k)
    elif isinstance(node, list):
        for v in node:
            out += _scripts_in_yaml(v, key)
    elif isinstance(node, str) and key in SCRIPT_KEYS:
        out.append(node)
    return out


def _scripts_in_jenkinsfile(text: str) -> list[str]:
    blocks = re.findall(r"'''(.*?)'''", text, flags=re.S)
    blocks += re.findall(r"\bsh\s*\(?\s*'([^'\n]+)'", text)
    return blocks


def _commands(script: str) -> list[list[str]]:
    """edge-conformance command lines in a shell script, as argument lists (after the program name)."""
    script = re.sub(r"\$\{\{.*?\}\}", "GH_EXPRESSION", script)  # GitHub expressions contain spaces
    script = script.replace("\\\n", " ")
    out = []
    for line in script.splitlines():
        # in command position: first on the line, after ; && || | then, or as a path (".../bin/edge-conformance")
        for m in re.finditer(r"(?:^\s*|[;&|]\s*|\bthen\s+|/)edge-conformance\"?\s+(?=[a-z])", line):
            lexer = shlex.shlex(line[m.end():], posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            tokens = []
            for token in lexer:  # up to the end of this command: ; && || | > ...
                if token and set(token) <= set(";&|<>"):
                    break
                tokens.append(token)
            if tokens and re.fullmatch(r"\d", tokens[-1]) and ">" in line:  # 2> redirection
                tokens.pop()
            # $ARGS is split into extra options on purpose (action.yml): not a positional argument
            out.append([t for t in tokens if t != "$ARGS"])
    return out


def _all_commands() -> dict[str, list[list[str]]]:
    found = {}
    for path in (GITHUB_WORKFLOW, GITHUB_ACTION, GITLAB, *SHARDED):
        found[path.name + ":" + path.parent.name] = [c for s in _scripts_in_yaml(_yaml(path)) for c in _commands(s)]
    for path in (JENKINS, JENKINS_SHARDED):
        found[path.name] = [c for s in _scripts_in_jenkinsfile(path.read_text()) for c in _commands(s)]
    return found


def test_templates_and_docs_are_there():
    readme = (CI / "README.md").read_text(encoding="utf-8")
    for path in (GITHUB_WORKFLOW, GITHUB_ACTION, GITLAB, JENKINS, *SHARDED, JENKINS_SHARDED):
        assert path.is_file(), path
        assert str(path.relative_to(CI)) in readme, f"ci/README.md does not document {path.name}"
    assert (CI.parent / "docs" / "certification.md").is_file()


def test_github_workflow_and_action():
    wf = _yaml(GITHUB_WORKFLOW)
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    steps = wf["jobs"]["conformance"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"].startswith("always()") and "report.html" in upload["with"]["path"]
    # JUnit as a check run, pip's cache, the output directory only through $EDGE_OUT
    junit = next(s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report@"))
    assert junit["if"].startswith("always()") and junit["with"]["report_paths"] == "${{ env.EDGE_OUT }}/junit.xml"
    assert wf["permissions"]["checks"] == "write"
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip"
    text = GITHUB_WORKFLOW.read_text(encoding="utf-8")
    assert text.count("edge-results") == 1  # its one definition: EDGE_OUT
    # the comparison gates: no pipe that would hide compare's exit code, and the last step reads it
    compare = next(s for s in steps if s.get("id") == "compare")
    assert "| tee" not in compare["run"] and "exit-code=$code" in compare["run"]
    assert "steps.compare.outputs.exit-code" in str(steps[-1]) and "exit 1" in steps[-1]["run"]

    action = _yaml(GITHUB_ACTION)
    assert action["runs"]["using"] == "composite"
    assert {"profile", "target", "args"} <= set(action["inputs"])
    for step in action["runs"]["steps"]:
        assert "uses" in step or step.get("shell") == "bash", step  # composite run steps need a shell


def test_gitlab_reports():
    ci = _yaml(GITLAB)
    job = ci["edge-conformance"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"] == {"junit": "$EDGE_OUT/junit.xml", "metrics": "$EDGE_OUT/metrics.txt"}
    assert job["script"][0] == 'rm -rf "$EDGE_OUT"'  # never an older run's reports
    assert GITLAB.read_text(encoding="utf-8").count("edge-results") == 1
    assert set(ci["stages"]) >= {job["stage"], ci["edge-conformance-compare"]["stage"]}


def test_jenkinsfile_structure():
    text = JENKINS.read_text(encoding="utf-8")
    code = re.sub(r"//[^\n]*", "", text)
    depth = 0
    for ch in code:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "a } closes more than was opened"
    assert depth == 0, "unbalanced braces"
    assert re.search(r"^pipeline \{", code, flags=re.M)
    assert "stages {" in code and "post {" in code
    assert re.findall(r"stage\('([^']+)'\)", code) == list(JENKINS_STAGES)
    for step in ("junit(", "archiveArtifacts(", "publishHTML("):
        assert step in code
    assert "NoSuchMethodError" in code  # works without the HTML Publisher plugin
    # the output directory is emptied before the run: a refused run (exit 2) publishes no older junit.xml
    assert code.index("dir(env.EDGE_OUT) { deleteDir() }") < code.index("edge-conformance\" run")
    assert code.count("edge-results") == 1


def test_every_command_the_templates_run_exists():
    found = _all_commands()
    for name, commands in found.items():
        assert commands, f"{name}: no edge-conformance command found"
    used = {c[0] for cmds in found.values() for c in cmds}
    assert {"run", "bundle", "compare", "metrics", "profiles", "merge"} <= used
    runner = CliRunner()
    for name, commands in found.items():
        for args in commands:
            result = runner.invoke(main, [*args, "--help"])
            assert result.exit_code == 0, f"{name}: edge-conformance {' '.join(args)}: {result.output}"
            # stricter than --help (which stops before checking arguments): parse them for real
            cmd, rest, ctx = main, list(args), None
            while isinstance(cmd, click.Group):
                cmd, rest = cmd.get_command(click.Context(cmd), rest[0]), rest[1:]
            try:
                ctx = cmd.make_context(args[0], rest)
            except click.UsageError as e:  # pragma: no cover - the assertion explains
                pytest.fail(f"{name}: edge-conformance {' '.join(args)}: {e}")
            assert ctx is not None


def test_sharded_templates_run_every_shard_then_merge_and_gate_on_the_merged_verdict():
    for path in SHARDED:
        commands = [c for s in _scripts_in_yaml(_yaml(path)) for c in _commands(s)]
        runs = [c for c in commands if c[0] == "run"]
        assert runs and all("--shard" in c for c in runs), (path, runs)
        assert any(c[0] == "merge" for c in commands) and any(c[0] == "bundle" for c in commands), path
    gh = _yaml(SHARDED[0])
    assert gh["jobs"]["shard"]["strategy"]["fail-fast"] is False and gh["jobs"]["merge"]["needs"] == "shard"
    assert gh["jobs"]["merge"]["steps"][-1]["run"] == "exit ${{ steps.merge.outputs.code }}"
    gl = _yaml(SHARDED[1])
    assert gl["edge-conformance-shard"]["parallel"] == 3 and gl["edge-conformance-merge"]["needs"] == [
        "edge-conformance-shard"]
    assert gl["edge-conformance-merge"]["artifacts"]["reports"]["junit"] == "merged/junit.xml"
    text = JENKINS_SHARDED.read_text(encoding="utf-8")
    assert "parallel branches" in text and "stash(" in text and "unstash(" in text and "junit(" in text
    assert re.findall(r"stage\('([^']+)'\)", text) == ["Shards", "Merge"]
