"""The probe's keeper: the reference workload's supervisor on a site, doing for it what a platform's own
supervisor does for a service (systemd's Restart=on-failure), so that a crash, a stop and a start of the
probe can be injected and the probe's recovery measured (docs/real-targets.md, "Probes").

    python3 probe.pyz --keep [--pid-file FILE] [--listen ADDR] ARGS     (conformance/probes/zipapp.py)

* It starts the workload (`python3 probe.pyz --serve [--listen ADDR] ARGS`) as its child, whose stdin
  is a pipe the keeper holds: the workload's life-line, so the workload ends when the keeper does.
* The child's first ready line goes to the keeper's stdout (the runtime reads it), with "keeper_pid";
  later ones (restarts) go to stderr, the probe's log. A restart reuses the first port.
* The first child ends before its ready line: the keeper ends with its status (nothing to keep).
* The child ends with status 0 or by SIGTERM (a stop): it stays down until SIGUSR1. It ends any other way
  (a crash, SIGKILL): it is started again after a backoff (RESTART_DELAY_S, doubling up to
  MAX_DELAY_S, back to the first after STABLE_S of life).
* SIGUSR2: stop the child (SIGTERM, SIGKILL after STOP_GRACE_S) and hold it down, a pending restart
  cancelled, until SIGUSR1 (a `stop`: whatever ends it then, it is not restarted).
* SIGUSR1: start the child if it is not running (a `start` after a `stop`). The keeper's pid is in
  FILE (--pid-file) for that: a pattern would also match the shell that started the keeper.
* EOF on stdin (the harness gone, or done), SIGTERM, SIGINT, SIGHUP: the child gets SIGTERM, then
  SIGKILL after STOP_GRACE_S, and the keeper exits.

Standard library only: it runs from the zipapp with the site's python. Its command line carries
`--keep`, the child's `--serve`: a fault's pattern tells them apart (engine/probes.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

RESTART_DELAY_S = 0.2
MAX_DELAY_S = 5.0
STABLE_S = 10.0
STOP_GRACE_S = 5.0
POLL_S = 0.05


def log(text: str) -> None:
    sys.stderr.write(f"probe keeper: {text}\n")
    sys.stderr.flush()


def with_port(args: list[str], port: int) -> list[str]:
    """ARGS with `--port N` set to `port` (the first run's, so a restart answers where it did)."""
    out = list(args)
    if "--port" in out[:-1]:
        out[out.index("--port") + 1] = str(port)
    else:
        out += ["--port", str(port)]
    return out


def stays_down(returncode: int) -> bool:
    """Restart=on-failure: a clean exit (0) and a stop (SIGTERM) are not failures."""
    return returncode in (0, -signal.SIGTERM)


class Keeper:
    def __init__(self, serve_argv: list[str]):
        self.argv = list(serve_argv)   # the child's command line (its --port replaced after the first run)
        self.child: subprocess.Popen | None = None
        self.started_at = 0.0
        self.delay = RESTART_DELAY_S
        self.restart_at: float | None = None  # when a crashed child is started again
        self.announced = False
        self.done = threading.Event()
        self.start_wanted = threading.Event()
        self.stop_wanted = threading.Event()
        self.held = False  # stopped on purpose (SIGUSR2): not restarted until started (SIGUSR1)
        self.restarts = 0
        self.failed = 0  # the exit status when the first workload never became ready

    # -- the child

    def start(self) -> None:
        self.child = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.started_at = time.monotonic()
        threading.Thread(target=self._read_ready, args=(self.child,), daemon=True).start()

    def _read_ready(self, child: subprocess.Popen) -> None:
        assert child.stdout is not None
        for raw in child.stdout:
            line = raw.decode(errors="replace").strip()
            try:
                ready = json.loads(line)
            except ValueError:
                log(f"workload said: {line[:200]}")
                continue
            if not isinstance(ready, dict):
                continue
            if ready.get("ready") and ready.get("port"):
                self.argv = with_port(self.argv, int(ready["port"]))
            if not self.announced:
                self.announced = True
                sys.stdout.write(json.dumps({**ready, "keeper_pid": os.getpid()}) + "\n")
                sys.stdout.flush()
            else:
                log(f"workload ready again (pid {ready.get('pid')}, restart {self.restarts})")

    def stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(STOP_GRACE_S)

    # -- the loop

    def watch_stdin(self) -> None:
        try:  # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts interpreter exit
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        log("stdin closed; stopping the workload")
        self.done.set()

    def step(self) -> None:
        """One turn: stop it when asked, notice the child's end, restart it when due, start it when asked."""
        if self.stop_wanted.is_set():
            self.stop_wanted.clear()
            self.held, self.restart_at = True, None
            log("stop asked: stopping the workload and holding it down until started (SIGUSR1)")
            self.stop_child()
            self.child = None
        now = time.monotonic()
        child = self.child
        if child is not None and child.poll() is not None:
            code = child.returncode
            self.child = None
            if not self.announced:  # never came up: a bad argument or a missing module, not a crash
                log(f"workload ended with {code} before it was ready")
                self.failed = code if code > 0 else 1
                self.done.set()
                return
            if self.held or stays_down(code):
                log(f"workload ended with {code}: stays down until started (SIGUSR1)")
                self.restart_at = None
            else:
                if now - self.started_at >= STABLE_S:
                    self.delay = RESTART_DELAY_S
                log(f"workload died ({code}); restarting in {self.delay:g} s")
                self.restart_at = now + self.delay
                self.delay = min(self.delay * 2, MAX_DELAY_S)
        if self.child is not None and self.start_wanted.is_set():
            self.start_wanted.clear()  # running already: nothing to start
        if self.child is None and self.start_wanted.is_set():
            self.start_wanted.clear()
            self.held, self.restart_at = False, now
        if self.child is None and self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.restarts += 1
            self.start()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: self.done.set())
        signal.signal(signal.SIGUSR1, lambda *_: self.start_wanted.set())
        signal.signal(signal.SIGUSR2, lambda *_: self.stop_wanted.set())
        threading.Thread(target=self.watch_stdin, daemon=True).start()
        self.start()
        try:
            while not self.done.wait(POLL_S):
                self.step()
        finally:
            self.stop_child()
        return self.failed


def main(serve_argv: list[str], pid_file: str | None = None) -> int:
    if pid_file:
        with open(pid_file, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
    return Keeper(serve_argv).run()
