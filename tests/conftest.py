"""The harness's own tests: which are slow.

`python -m pytest -n auto` (the README's test command, the fast lane) runs everything but the `slow` and
`mutation` tests; CI runs the slow ones in a step of their own (`python -m pytest -m "slow and not
mutation"`, .ci/run). A test is slow, automatically (no `pytest.mark.slow` written by hand), when

* its module's file name says it goes end to end:
  - `*emulated*.py`: it brings up emulated deployments (through the CLI or `start_deployment`);
  - `*real_target*.py`: it runs the real CLI end to end against a real target of our own (a loopback
    server, a stand-in deployment of local processes, or an installed wheel);
* or it is marked `docker` (containers and images).

So a new end-to-end test goes in a module named that way (tests/suites/latency/test_emulated.py,
tests/emulation/test_supervisor_emulated.py, tests/suites/resilience/test_real_target.py ...); a test in
any other module stays in the fast lane and should take well under 5 s. The mutation campaign
(tests/profiles/test_mutation.py) keeps its own marks, `mutation` and `slow` (docs/profiles.md).

CI runs the slow tests two at a time (pytest-xdist, one module per worker) except the `serial` ones,
which run alone afterwards: the latency suite's end-to-end modules (they judge measured latency
against a known delay, which a neighbour test would stretch) and tests marked `serial` by hand (image
builds that others would race).
"""

from __future__ import annotations

import pytest

END_TO_END_NAMES = ("emulated", "real_target")
SERIAL_FOLDERS = ("tests/suites/latency",)


def slow_reason(item: pytest.Item) -> str | None:
    """Why `item` is slow under the rule above, or None."""
    name = item.path.name
    for word in END_TO_END_NAMES:
        if word in name:
            return f"module name has {word!r}"
    if item.get_closest_marker("docker") is not None:
        return "marked docker"
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        if item.get_closest_marker("slow") is None and slow_reason(item):
            item.add_marker(pytest.mark.slow)
        folder = item.path.parent.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if folder in SERIAL_FOLDERS and item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.serial)
