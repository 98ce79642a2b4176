"""The load master's config hand-out (conformance/measure/load/child.py configure_workers): a worker that
joins at the same moment as others is counted ready before its handler exists and drops the first config
("Unknown message type received: conformance_config"); the master sends it again to every worker that has
not acknowledged, until all have or the time is up. Run in a child process: importing the load child
imports Locust, which monkey-patches the process (gevent)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    from types import SimpleNamespace
    from conformance.measure.load import child

    drops = {"a": 0, "b": 1, "c": 2, "deaf": 10**6}  # configs each worker loses before it acknowledges
    want = [n for n in sys.argv[1].split(",")]

    class Runner:
        def __init__(self):
            self.clients = SimpleNamespace(ready=[SimpleNamespace(id=n) for n in want])
            self.sent, self.acks = [], set()
        def send_message(self, msg_type, data=None, client_id=None):
            assert msg_type == child.MSG_CONFIG and data == {"config": 1} and client_id is not None
            self.sent.append(client_id)
            if self.sent.count(client_id) > drops[client_id]:
                self.acks.add(client_id)

    runner = Runner()
    child.CONFIG_RESEND_S = 0.05
    ok = child.configure_workers(runner, {"config": 1}, runner.acks, len(want), float(sys.argv[2]))
    print(json.dumps({"ok": ok, "sent": runner.sent, "acks": sorted(runner.acks)}))
""")


def _configure(workers: str, timeout: float) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT, workers, str(timeout)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_workers_that_dropped_the_config_get_it_again_and_no_one_gets_it_after_acknowledging():
    out = _configure("a,b,c", 5)
    assert out["ok"] and out["acks"] == ["a", "b", "c"]
    assert out["sent"].count("a") == 1 and out["sent"].count("b") == 2 and out["sent"].count("c") == 3


def test_a_worker_that_never_acknowledges_fails_the_hand_out_in_time():
    out = _configure("a,deaf", 0.5)
    assert not out["ok"] and out["acks"] == ["a"] and out["sent"].count("a") == 1
    assert 3 <= out["sent"].count("deaf") <= 20  # resent every 0.05 s for 0.5 s, then given up
