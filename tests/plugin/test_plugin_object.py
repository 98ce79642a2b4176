"""The run's plugin object: registered by pytest_configure, unregistered by pytest_unconfigure, and the
target it opened is closed however the run ends (Ctrl-C, an error in the run, before the session)."""

from __future__ import annotations

import contextlib
import json
import textwrap

import pytest
import yaml

from conformance.engine import lifecycle
from conformance.pytest_plugin import PLUGIN_NAME, EdgePlugin, run_plugin

from tests.plugin.sandbox import CHECKS, FAST, SITES, req


@pytest.fixture
def target_events(monkeypatch):
    """Every enter and exit of the target the plugin opens (engine/lifecycle.open_target)."""
    events: list[str] = []
    real = lifecycle.open_target

    @contextlib.contextmanager
    def recording(*args, **kwargs):
        with real(*args, **kwargs) as target:
            events.append("enter")
            try:
                yield target
            finally:
                events.append("exit")

    monkeypatch.setattr(lifecycle, "open_target", recording)
    return events


def _inputs(pytester, checks: str = CHECKS, conftest: str = "") -> list[str]:
    profile = pytester.path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"id": "mine", "version": "1", "title": "Mine",
                                       "requirements": [req("REQ-1", "pass")]}, sort_keys=False))
    target = pytester.path / "target.yaml"
    target.write_text(yaml.safe_dump({"name": "lab", "sites": SITES}, sort_keys=False))
    test_file = pytester.path / "test_mine.py"
    test_file.write_text(textwrap.dedent(checks))
    if conftest:
        (pytester.path / "conftest.py").write_text(textwrap.dedent(conftest))
    return ["-p", "no:locust", *FAST, "--edge-profile", str(profile), "--edge-target", str(target),
            "--edge-out", str(pytester.path / "out"), "--edge-no-reports", str(test_file)]


def test_registered_in_configure_and_unregistered_in_unconfigure(pytester, target_events):
    config = pytester.parseconfigure(*_inputs(pytester))
    plugin = run_plugin(config)
    assert isinstance(plugin, EdgePlugin) and config.pluginmanager.get_plugin(PLUGIN_NAME) is plugin
    assert plugin.target.name == "lab" and target_events == ["enter"]
    assert [c.id for c in plugin.plan.cases_for("custom.thing")] == ["REQ-1@site-a"]
    config._ensure_unconfigure()
    assert run_plugin(config) is None and not config.pluginmanager.is_registered(plugin)
    assert target_events == ["enter", "exit"]
    plugin.close()  # closing again does nothing
    assert target_events == ["enter", "exit"]


def test_without_a_profile_there_is_no_run_plugin(pytester):
    config = pytester.parseconfigure("-p", "no:locust", *FAST)
    assert run_plugin(config) is None


def test_a_usage_error_while_opening_leaves_nothing_open(pytester, target_events):
    args = _inputs(pytester)
    result = pytester.runpytest(*args, "--edge-site", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert target_events == ["enter", "exit"]  # opened, then closed when the site selector was refused


CHECK_INTERRUPTED = '''
import pytest


@pytest.mark.edge_check("custom.thing")
def test_x(edge):
    raise KeyboardInterrupt
'''

RAISES_AFTER_COLLECTION = '''
def pytest_collection_finish(session):
    raise RuntimeError("a broken plugin")
'''

RAISES_BEFORE_THE_SESSION = '''
def pytest_sessionstart(session):
    raise RuntimeError("a broken plugin")
'''


@pytest.mark.parametrize(("checks", "conftest", "state"), [
    (CHECK_INTERRUPTED, "", "interrupted"),  # Ctrl-C (and SIGTERM, which the plugin turns into it)
    (CHECKS, RAISES_AFTER_COLLECTION, "finished"),  # an internal error: sessionfinish still runs
    (CHECKS, RAISES_BEFORE_THE_SESSION, "running"),  # no session: pytest_unconfigure closes it
], ids=["ctrl-c", "internal-error", "before-the-session"])
def test_the_target_is_closed_however_the_run_ends(pytester, target_events, checks, conftest, state):
    reprec = pytester.inline_run(*_inputs(pytester, checks, conftest), no_reraise_ctrlc=True)
    assert reprec.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
    assert target_events == ["enter", "exit"]
    data = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    assert data["state"] == state
