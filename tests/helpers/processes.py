"""Child processes of a test that print one JSON ready line when they serve and stop at stdin EOF (our
workloads, linkd, the servers of tests.helpers.servers)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path
from typing import Any


def stop_at_eof(proc: subprocess.Popen, grace: float = 5) -> None:
    """Stop a child that exits at stdin EOF: resumed first (a paused child cannot read its EOF), stdin
    closed, killed if it is still there `grace` s later."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    try:
        proc.stdin.close()
    except (OSError, AttributeError):
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class ReadyChild:
    """`argv` started with its stderr in `log` (appended; None: inherited); `ready` is the JSON line it
    printed within `ready_timeout` s, else the child is stopped and the test fails with the log's tail."""

    def __init__(self, argv: list[Any], log: Path | None = None, *, ready_timeout: float = 30,
                 grace: float = 5, **popen: Any):
        self.log_path, self.grace = log, grace
        self.log = open(log, "ab") if log is not None else None
        self.proc = subprocess.Popen([*map(str, argv)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, **popen)
        readable, _, _ = select.select([self.proc.stdout], [], [], ready_timeout)
        line = self.proc.stdout.readline() if readable else b""
        if not line:
            self.stop()
            tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
            raise AssertionError(f"{[str(a) for a in argv[:4]]} did not become ready: {tail}")
        self.ready: dict = json.loads(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT of a child whose ready line has its `port`."""
        return f"http://127.0.0.1:{self.ready['port']}"

    def stop(self) -> None:
        stop_at_eof(self.proc, self.grace)
        if self.log is not None:
            self.log.close()
