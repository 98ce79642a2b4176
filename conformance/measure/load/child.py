"""The Locust child process: `python -m conformance.measure.load.child ...` (never imported by the harness).

    --config CFG.json --out RESULT.json      run the config: one local process, or (workers > 1 or
                                             remote_workers > 0) a Locust master that starts its local
                                             workers and waits for the remote ones
    --worker --master-host H --master-port P a worker; it receives the config from the master

How results travel: every generating process builds one *report* (counts, encoded HDR histograms,
per-second rows, CPU and loop-lag samples). A worker sends it to the master as a Locust custom message
(`conformance_report`) over the ZeroMQ connection it already has, which works for workers on other
machines too, needs no shared file system, and arrives before the worker's own "client_stopped".
The master (or the local process) writes all reports into --out atomically; the driver merges them.
The master itself generates no load.
"""

import locust  # noqa: F401  -- FIRST statement: importing locust runs gevent.monkey.patch_all()

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust.env import Environment

from ...model.atomicfile import PRIVATE, write_atomic
from . import users
from .config import LoadConfig
from .monitor import Monitor
from .pacer import Pacer
from .recorder import Recorder
from .scenarios import scenario_spec

MSG_CONFIG = "conformance_config"
MSG_ACK = "conformance_config_ack"
CONFIG_TIMEOUT_S = 15.0  # every worker acknowledges the config within this
CONFIG_RESEND_S = 0.5    # the config again to those that have not (a worker joining drops the first)
MSG_REPORT = "conformance_report"

log = logging.getLogger("conformance.load.child")


# ---- one measurement window in one generating process --------------------------------------------


class Session:
    """The pacer, recorder and monitor of one generating process, installed before users spawn."""

    def __init__(self, env: Environment, config: LoadConfig):
        self.config = config
        self.recorder = Recorder()
        self.pacer = Pacer(config.duration_s, config.start_tolerance_s,
                           on_arrival=self.recorder.note_arrival, on_drop=self.recorder.note_dropped,
                           on_start=self.recorder.note_start)
        self.monitor = Monitor()
        self.started = False
        env.events.request.add_listener(self.recorder.on_request)
        for cls in users.USER_CLASSES.values():  # read when a user is created
            cls.network_timeout = cls.connection_timeout = config.request_timeout_s
        users.RUNTIME = users.Runtime(config.to_dict(), self.pacer, self.recorder)

    def measure(self, runner: Any, iterations_per_s: float, role: str, index: int) -> dict[str, Any]:
        """Run the paced window, wait for iterations in flight, return this process's report.
        Callers set `started` first so that a repeated spawning_complete cannot measure twice."""
        self.started = True
        self.recorder.recording = True
        self.monitor.start()
        sampler = gevent.spawn(self._sample_users, runner)
        try:
            self.pacer.run(iterations_per_s)
            unfinished = self.pacer.drain(self.config.request_timeout_s + 1.0)
        finally:
            sampler.kill(block=False)
            self.monitor.stop()
            self.recorder.stop()
        return {
            "role": role,
            "index": index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "window_start": self.pacer.started_at,
            "window_end": self.pacer.ended_at,
            "iteration_rate": iterations_per_s,
            "requests_per_iteration": self.config.requests_per_iteration,
            "arrivals": self.pacer.arrivals,
            "dropped": self.pacer.dropped,
            "unfinished": unfinished,
            "users": runner.user_count,
            **self.recorder.report(),
            "monitor": self.monitor.report(),
        }

    def _sample_users(self, runner: Any) -> None:
        while True:
            self.recorder.note_users(runner.user_count, self.pacer.active)
            gevent.sleep(0.2)


def _spawn_rate(user_count: int) -> float:
    return float(max(1, user_count))  # all users within about a second; pacing starts after


def _user_class(config: LoadConfig) -> type:
    return users.USER_CLASSES[scenario_spec(config.scenario).user_class]


def _base_url(config: LoadConfig) -> str:
    return config.url.rstrip("/")


# ---- modes ---------------------------------------------------------------------------------------


def run_local(config: LoadConfig) -> dict[str, Any]:
    env = Environment(user_classes=[_user_class(config)], host=_base_url(config))  # fresh Events
    session = Session(env, config)
    runner = env.create_local_runner()
    report = AsyncResult()

    def measure() -> None:
        try:
            report.set(session.measure(runner, config.iteration_rate, "local", 0))
        except BaseException as exc:  # noqa: BLE001 - surfaces in main() instead of waiting for the hard timeout
            report.set_exception(exc)

    def on_spawned(user_count: int, **_: Any) -> None:
        if not session.started:
            session.started = True  # claim it now: the event may fire again before measure() runs
            gevent.spawn(measure)

    env.events.spawning_complete.add_listener(on_spawned)
    runner.start(config.total_users, spawn_rate=_spawn_rate(config.total_users))
    try:
        return {"reports": [report.get(timeout=config.hard_timeout_s)], "errors": []}
    finally:
        runner.quit()


def run_master(config: LoadConfig) -> dict[str, Any]:
    env = Environment(user_classes=[_user_class(config)], host=_base_url(config))
    port = config.master_port or _free_port(config.master_bind_host)
    runner = env.create_master_runner(config.master_bind_host, port)
    expected = config.total_workers
    acks: set[str] = set()
    reports: dict[str, dict] = {}
    runner.register_message(MSG_ACK, lambda environment, msg, **_: acks.add(msg.node_id))
    runner.register_message(MSG_REPORT, lambda environment, msg, **_: reports.__setitem__(msg.node_id, msg.data))
    log.warning("master listening on %s:%d, waiting for %d workers", config.master_bind_host, port, expected)
    connect_host = _connect_host(config.master_bind_host)
    local = [_start_worker(connect_host, port) for _ in range(config.workers)]
    errors: list[str] = []
    try:
        def local_died() -> bool:
            return any(p.poll() is not None for p in local)

        if not _wait(lambda: len(runner.clients.ready) >= expected, config.connect_timeout_s, local_died):
            raise RuntimeError(f"only {len(runner.clients.ready)} of {expected} workers connected "
                               f"within {config.connect_timeout_s:g} s")
        payload = {"config": config.to_dict(), "total_users": config.total_users}
        if not configure_workers(runner, payload, acks, expected, CONFIG_TIMEOUT_S, local_died):
            raise RuntimeError(f"only {len(acks)} of {expected} workers accepted the config")
        runner.start(config.total_users, spawn_rate=_spawn_rate(config.total_users))
        window = config.duration_s + config.request_timeout_s + 15.0
        if not _wait(lambda: len(reports) >= expected, window, local_died):
            errors.append(f"worker report missing from {expected - len(reports)} of {expected} workers")
        return {"reports": list(reports.values()), "errors": errors, "expected_workers": expected}
    finally:
        runner.quit()  # sends "quit" to every worker
        deadline = time.monotonic() + 3.0
        for proc in local:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def configure_workers(runner: Any, payload: dict, acks: set[str], expected: int, timeout_s: float,
                      abort=lambda: False) -> bool:
    """Send the config to every ready worker that has not acknowledged it, again every CONFIG_RESEND_S,
    until `expected` have (or `timeout_s`). A worker that joins at the same moment as others is counted
    ready by the master before it has registered its handler (Locust registers handlers on a runner that
    is already connected), and drops a first config as "Unknown message type": it gets the next one."""
    deadline = time.monotonic() + timeout_s
    while True:
        for node in list(runner.clients.ready):
            if node.id not in acks:
                runner.send_message(MSG_CONFIG, payload, client_id=node.id)
        if _wait(lambda: len(acks) >= expected, CONFIG_RESEND_S, abort):
            return True
        if time.monotonic() >= deadline or abort():
            return len(acks) >= expected


def run_worker(master_host: str, master_port: int) -> None:
    env = Environment(user_classes=list(users.USER_CLASSES.values()))
    runner = env.create_worker_runner(master_host, master_port)  # connects (retries for a while)
    state: dict[str, Any] = {}

    def on_config(environment: Any, msg: Any, **_: Any) -> None:
        if "session" in state:  # a resend that crossed our acknowledgement: acknowledge again
            runner.send_message(MSG_ACK, None)
            return
        config = LoadConfig.from_dict(msg.data["config"])
        _pin(config)
        state["config"], state["total_users"] = config, msg.data["total_users"]
        state["session"] = Session(env, config)
        runner.send_message(MSG_ACK, None)

    def on_spawned(user_count: int, **_: Any) -> None:
        session: Session | None = state.get("session")
        if session is None or session.started:
            return
        session.started = True
        config = state["config"]
        # Locust spreads users over workers; each worker offers the share of the rate its users have.
        share = runner.user_count / max(1, state["total_users"])

        def measure_and_send() -> None:
            report = session.measure(runner, config.iteration_rate * share, "worker", runner.worker_index)
            runner.send_message(MSG_REPORT, report)

        gevent.spawn(measure_and_send)

    runner.register_message(MSG_CONFIG, on_config)
    env.events.spawning_complete.add_listener(on_spawned)
    runner.greenlet.join()  # returns when the master sends "quit"


# ---- helpers -------------------------------------------------------------------------------------


def _start_worker(master_host: str, port: int) -> subprocess.Popen:
    # Inherits our process group: the driver's killpg reaches the workers too.
    return subprocess.Popen([sys.executable, "-m", "conformance.measure.load.child", "--worker",
                             "--master-host", master_host, "--master-port", str(port),
                             "--parent-pid", str(os.getpid())])


def _wait(condition, timeout_s: float, abort=lambda: False) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline or abort():
            return condition()
        gevent.sleep(0.05)
    return True


def _free_port(bind_host: str) -> int:
    host = "0.0.0.0" if bind_host in ("*", "") else bind_host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _connect_host(bind_host: str) -> str:
    return {"*": "127.0.0.1", "": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host)


def _pin(config: LoadConfig) -> None:
    """Pin to the configured CPUs that exist here (a remote worker may have fewer)."""
    if config.cpu_affinity:
        cpus = set(config.cpu_affinity) & os.sched_getaffinity(0)
        if cpus:
            os.sched_setaffinity(0, cpus)


def _exit_with_parent(parent_pid: int) -> None:
    """Die when the process that started us is gone (a SIGKILLed driver cannot kill our group).
    The spawner passes its pid: reading getppid() here could already see init if it died early."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(70)
        gevent.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.measure.load.child")
    parser.add_argument("--config")
    parser.add_argument("--out")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--master-host", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, default=5557)
    parser.add_argument("--parent-pid", type=int, help="exit as soon as this process is no longer our parent")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.parent_pid:
        gevent.spawn(_exit_with_parent, args.parent_pid)

    if args.worker:
        run_worker(args.master_host, args.master_port)
        return 0
    if not args.config or not args.out:
        parser.error("--config and --out are required (or --worker)")
    with open(args.config, encoding="utf-8") as fh:
        config = LoadConfig.from_dict(json.load(fh))
    _pin(config)
    try:
        output = run_master(config) if config.distributed else run_local(config)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the child's last resort: the driver reads why from the output file
        output = {"reports": [], "errors": [f"{type(exc).__name__}: {exc}"], "traceback": traceback.format_exc()}
        code = 1
    output["locust_version"] = locust.__version__
    # PRIVATE: the harness's own scratch file (the driver reads it back as the same user), never shared
    write_atomic(args.out, json.dumps(output), mode=PRIVATE)
    return code


if __name__ == "__main__":
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # do not wait for leftover greenlets or Locust's background threads
