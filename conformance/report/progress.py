"""Live progress of a run, through pytest's own terminal reporter.

Instead of pytest's dots, the user sees where the run is and why a result did not pass, as it happens:

- on a terminal, one status line rewritten in place (done/total, elapsed, an estimate of the time
  left, the current suite and requirement@site), with a line above it for every result that is not a
  pass;
- when the output is not a terminal, or in CI (`CI` set), plain lines: one when a suite first starts,
  one for every result that is not a pass, and a progress line at most every PLAIN_EVERY_S seconds.

This is with -q, as `edge-conformance run` calls pytest. Without -q, pytest's own file names and dots
(or its -v lines) stay, and the header and the reason lines are added to them. Bring-up of an emulated
deployment reports the sites started and healthy out of the total (`bring_up_printer`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import pytest

from . import view as V

PLAIN_EVERY_S = 10.0  # plain mode: a progress line at most this often (a CI log of a fleet run stays short)
ESTIMATE_AFTER = 0.03  # no estimate of the time left before this share of the run is done
WORDS = {"fail": "FAIL", "error": "ERROR", "inconclusive": "INCONCLUSIVE", "not-measured": "NOT MEASURED",
         "not-run": "NOT RUN"}  # the statuses that get a line as they happen (pass, waived, n/a do not)


def live_terminal(stream: TextIO) -> bool:
    """A person watching a terminal (status line rewritten in place), not a CI log or a file."""
    return stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def where(nodeid: str) -> tuple[str, str]:
    """(suite, requirement@site) of a check's node id, e.g. 'latency/test_latency.py::test_x[R@s]'."""
    path, _, rest = nodeid.partition("::")
    parts = path.replace("\\", "/").split("/")
    suite = parts[-2] if len(parts) >= 2 else parts[0].removesuffix(".py")
    case = rest[rest.index("[") + 1:-1] if "[" in rest and rest.endswith("]") else rest
    return suite, case


class Estimate:
    """Done out of total, and the time left at the rate so far (the whole run's, so that slow and quick
    checks average out; none until ESTIMATE_AFTER of the run is done)."""

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self.now = now
        self.started = now()
        self.total = 0
        self.done = 0

    @property
    def elapsed(self) -> float:
        return self.now() - self.started

    def left(self) -> float | None:
        if not self.total or self.done < max(1, ESTIMATE_AFTER * self.total):
            return None
        return self.elapsed / self.done * (self.total - self.done)

    def text(self) -> str:
        share = f" {100 * self.done // self.total:3d}%" if self.total else ""
        left = self.left()
        rest = f", ~{clock(left)} left" if left is not None else ""
        return f"[{self.done}/{self.total or '?'}{share}] {clock(self.elapsed)}{rest}"


class LiveProgress:
    """The pytest plugin object (registered by the run's plugin on the controller, never on a worker)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.tr = config.pluginmanager.get_plugin("terminalreporter")
        self.live = live_terminal(sys.stdout)
        # -q (as `run` calls pytest): our lines replace pytest's letters. Otherwise pytest's own file
        # names and dots (or -v lines) stay, and only the header and the reasons are added.
        self.quiet = config.option.verbose < 0
        self.estimate = Estimate()
        self.suite = ""
        self.suites_seen: set[str] = set()
        self.current = ""
        self.last_plain = 0.0
        self.status_shown = False
        self.deselected = 0

    @property
    def letters_hidden(self) -> bool:
        return self.quiet

    # -- pytest hooks ------------------------------------------------------------------------------
    def pytest_deselected(self, items: list) -> None:
        self.deselected += len(items)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:  # on an xdist controller the workers collect (below)
            self._collected([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's, when it is loaded
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.estimate.total:
            self._collected(ids)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple) -> None:
        suite, case = where(nodeid)
        self.current = case
        self.suite = suite
        if suite not in self.suites_seen:  # once per suite (under -n the workers' suites interleave)
            self.suites_seen.add(suite)
            if self.quiet and not self.live:
                self._line(f"edge-conformance: {self.estimate.text()} {suite}")
        self._status()

    @pytest.hookimpl(trylast=True)  # after pytest's own letter for it, when those are shown
    def pytest_runtest_logreport(self, report) -> None:
        status = getattr(report, "edge_status", None)
        if status in WORDS and (report.when == "call" or report.outcome != "passed"):
            # the run's plugin put it there redacted; it names the requirement and site
            message = getattr(report, "edge_message", "") or where(report.nodeid)[1]
            self._line(f"  {WORDS[status]:<12} {V.clean(' '.join(message.split()))}")
        if report.when == "teardown":
            self.estimate.done += 1
            self._status()

    def pytest_sessionfinish(self) -> None:
        self._clear()

    def checkpoint(self, text: str) -> None:
        """A long check's own progress ('RTL-LONG-01@store-1: cut 40 % ...'), as the status line on a
        terminal, else as a plain line (the check calls it every twentieth of its cut)."""
        line = f"{self.estimate.text()} {self.suite} {V.clean(text)}"
        if self.live and self.quiet:
            width = self.config.get_terminal_writer().fullwidth
            self.tr.rewrite(line[: max(width - 1, 10)], erase=True)
            self.status_shown = True
        else:
            self._line(f"edge-conformance: {line}")

    # -- output ------------------------------------------------------------------------------------
    def _collected(self, nodeids: list[str]) -> None:
        self.estimate.total = len(nodeids)
        checks = sum(1 for n in nodeids if "@" in where(n)[1])
        others = f" and {len(nodeids) - checks} other tests" if checks < len(nodeids) else ""
        why = (f"; {self.deselected} tests deselected (checks these profiles do not ask for, or left out by "
               "-k/-m/--deselect)") if self.deselected else ""
        self._line(f"edge-conformance: {checks} requirement@site checks{others} to run{why}")

    def _status(self) -> None:
        if not self.quiet:
            return
        text = f"{self.estimate.text()} {self.suite} {self.current}".rstrip()
        if self.live:
            width = self.config.get_terminal_writer().fullwidth
            self.tr.rewrite(text[: max(width - 1, 10)], erase=True)
            self.status_shown = True
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S and self.estimate.done:
            self._line(f"edge-conformance: {text}")

    def _line(self, text: str) -> None:
        self._clear()
        self.tr.write_line(text)
        self.last_plain = time.monotonic()

    def _clear(self) -> None:
        if self.status_shown:
            self.tr.rewrite("", erase=True)
            self.status_shown = False


def register(config: pytest.Config, name: str) -> None:
    """Show the run's progress (not with --collect-only, nor without pytest's terminal output)."""
    if config.pluginmanager.get_plugin("terminalreporter") is None or config.option.collectonly:
        return
    config.pluginmanager.register(LiveProgress(config), name)


def bring_up_printer(stream: TextIO = sys.stderr) -> Callable[[dict], None]:
    """A start_deployment progress callback: sites started, then healthy, out of the total."""
    live = live_terminal(stream)
    last = [0.0, ""]

    def show(progress: dict) -> None:
        phase, done, total = progress.get("phase", ""), progress.get("done", 0), progress.get("total", 0)
        what = progress.get("topology", "the deployment")
        text = f"edge-conformance: bringing up {what}: {done}/{total} sites {phase}"
        if live:
            stream.write("\r\033[K" + text + ("\n" if phase == "healthy" and done == total else ""))
            stream.flush()
        elif phase != last[1] or time.monotonic() - last[0] >= PLAIN_EVERY_S or done == total:
            stream.write(text + "\n")
            stream.flush()
            last[0], last[1] = time.monotonic(), phase

    return show
