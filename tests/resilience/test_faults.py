"""conformance.faults: faults_for, the Faults interface (always undo), and hook commands."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from conformance.model.errors import NotMeasured
from conformance.faults import NOT_ALLOWED, EmulatedSiteFaults, FaultError, Faults, faults_for
from conformance.faults.hooks import HookError, HookFaults, placeholder_values, render, run_hook
from conformance.model.target import Hook, Site, Target


def site(hooks: dict[str, str | list[str]] | None = None, name: str = "edge-1", timeout: float = 10) -> Site:
    return Site(name=name, role="edge", hooks={k: Hook(k, v, timeout) for k, v in (hooks or {}).items()})


def real(s: Site, path: str = "") -> Target:
    return Target(name="real", sites=[s], path=path)


# --- faults_for -------------------------------------------------------------------------------


def test_real_target_without_permission_is_skipped_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    s = site({"partition": f"touch {marker}", "heal": f"touch {marker}"})
    with pytest.raises(NotMeasured, match="fault hooks not allowed") as err:
        faults_for(real(s), s, allow_real=False)
    assert err.value.remedy.startswith("pass --allow-faults")
    assert NOT_ALLOWED == "fault hooks not allowed"
    assert not marker.exists()


def test_real_target_with_permission_gets_hooks_and_missing_hooks_skip(tmp_path):
    s = site({"partition": "true"})
    faults = faults_for(real(s), "edge-1", allow_real=True)  # a name works too
    assert isinstance(faults, HookFaults) and faults.kind == "hooks"
    assert faults.supports("partition") and not faults.supports("heal")
    assert faults.supports("reset") is False  # reset is the degrade hook with zeros
    with pytest.raises(NotMeasured, match="no fault hook: heal"):
        faults.require("partition", "heal")
    with pytest.raises(NotMeasured, match="no fault hook: kill"):
        faults.kill()
    with pytest.raises(ValueError, match="unknown fault action"):
        faults.supports("explode")


def test_emulated_target_uses_the_control_api():
    s = site()
    t = Target(name="emu", sites=[s], emulation={"run_id": "r", "backend": "local",
                                                 "control_url": "http://127.0.0.1:9"})
    faults = faults_for(t, s, allow_real=False)  # no permission needed for our own emulator
    assert isinstance(faults, EmulatedSiteFaults)
    assert all(faults.supports(a) for a in ("partition", "heal", "degrade", "reset", "kill", "stop", "pause"))
    with pytest.raises(FaultError, match="no control_url"):
        faults_for(Target(name="x", sites=[s], emulation={"run_id": "r"}), s)


class Recording(Faults):
    """A Faults whose actions are recorded; `fail` names actions that raise."""

    kind = "test"

    def __init__(self, fail=(), interrupt=()):
        super().__init__(None, site(), allow_real=True)
        self.done: list[str] = []
        self.fail, self.interrupt = set(fail), set(interrupt)

    def _supports(self, action):
        return True

    def _do(self, action, **params):
        self.done.append(action)
        if action in self.interrupt:
            raise KeyboardInterrupt
        if action in self.fail:
            raise FaultError(f"{action} broke")


def test_heal_runs_after_success_failure_and_ctrl_c():
    f = Recording()
    with f.partitioned():
        pass
    assert f.done == ["partition", "heal"]

    f = Recording()
    with pytest.raises(AssertionError):
        with f.partitioned():
            raise AssertionError("measured badly")
    assert f.done == ["partition", "heal"]

    f = Recording()
    with pytest.raises(KeyboardInterrupt):
        with f.partitioned():
            raise KeyboardInterrupt
    assert f.done == ["partition", "heal"]


def test_a_fault_that_fails_half_way_is_undone_and_a_failing_undo_never_hides_the_first_error():
    f = Recording(fail={"partition"})
    with pytest.raises(FaultError, match="partition broke"):
        with f.partitioned():
            pytest.fail("the body must not run")
    assert f.done == ["partition", "heal"]

    f = Recording(fail={"heal"})
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C stays Ctrl-C even when heal fails too
        with f.partitioned():
            raise KeyboardInterrupt
    assert f.done == ["partition", "heal"] and "heal on edge-1 after KeyboardInterrupt failed" in f.log[0]

    f = Recording(fail={"reset"})
    with pytest.raises(FaultError, match="reset broke"):  # a failed undo after success is an error
        with f.degraded(delay_ms=5):
            pass
    assert f.done == ["degrade", "reset"]


def test_degrade_needs_a_parameter():
    with pytest.raises(ValueError):
        Recording().degrade()


# --- hook commands ------------------------------------------------------------------------------


def test_placeholders_are_filled_and_env_refs_expanded_only_to_run(monkeypatch):
    monkeypatch.setenv("EDGE_TEST_TOKEN", "s3cr3t-value")
    values = placeholder_values("store-1", {"delay_ms": 25.0, "loss": 0.05})
    assert values == {"site": "store-1", "delay_ms": "25", "jitter_ms": "0", "loss": "0.05", "loss_pct": "5",
                      "bandwidth_bps": "0", "cut_mode": ""}
    shown, real_cmd = render("wan.sh {site} {delay_ms} {loss_pct} ${EDGE_TEST_TOKEN} awk '{print $1}'", values)
    assert shown == "wan.sh store-1 25 5 ${EDGE_TEST_TOKEN} awk '{print $1}'"
    assert real_cmd == "wan.sh store-1 25 5 s3cr3t-value awk '{print $1}'"
    shown, argv = render(["wan.sh", "{site}", "{bandwidth_bps}", "--token=${EDGE_TEST_TOKEN}"],
                         placeholder_values("a b", {"bandwidth_bps": 256000}))
    assert argv == ["wan.sh", "a b", "256000", "--token=s3cr3t-value"]
    assert "s3cr3t" not in shown and "'a b'" in shown


def test_hook_success_output_and_environment(tmp_path):
    hook = Hook("degrade", 'echo "$EDGE_HOOK $EDGE_SITE $EDGE_DELAY_MS {loss}"; pwd', 10)
    run = run_hook(hook, placeholder_values("s1", {"delay_ms": 7, "loss": 0.01}), cwd=tmp_path)
    assert run.exit_code == 0
    assert run.stdout.splitlines() == ["degrade s1 7 0.01", str(tmp_path)]


def test_failing_hook_names_hook_exit_code_and_last_stderr_line_without_secrets(monkeypatch):
    monkeypatch.setenv("EDGE_TEST_TOKEN", "s3cr3t-value")
    hook = Hook("partition", 'echo first >&2; echo "denied for ${EDGE_TEST_TOKEN}" >&2; exit 3', 10)
    with pytest.raises(HookError) as err:
        run_hook(hook, placeholder_values("s1"))
    text = str(err.value)
    assert "hook partition failed with exit code 3" in text
    assert "last stderr line: denied for ${EDGE_TEST_TOKEN}" in text
    assert "s3cr3t" not in text and text.count("last stderr line") == 1 and text.endswith("${EDGE_TEST_TOKEN}")


def test_missing_env_var_and_missing_program_are_hook_errors(monkeypatch):
    monkeypatch.delenv("EDGE_TEST_NOT_SET", raising=False)
    with pytest.raises(HookError, match="hook heal: environment variable EDGE_TEST_NOT_SET is not set"):
        run_hook(Hook("heal", "ssh ${EDGE_TEST_NOT_SET}", 5), placeholder_values("s"))
    with pytest.raises(HookError, match="hook kill could not start"):
        run_hook(Hook("kill", ["/nonexistent/edge-kill"], 5), placeholder_values("s"))
    with pytest.raises(HookError, match="exit code 127"):
        run_hook(Hook("kill", "/nonexistent/edge-kill", 5), placeholder_values("s"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hook_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    hook = Hook("heal", f'sleep 60 & echo $! > "{pidfile}"; echo waiting >&2; wait', 1.0)
    started = time.monotonic()
    with pytest.raises(HookError, match=r"hook heal timed out after 1 s .*last stderr line: waiting"):
        run_hook(hook, placeholder_values("s"))
    assert time.monotonic() - started < 8
    child = int(pidfile.read_text())
    assert not _alive(child), "the hook's background child survived the timeout"


def test_ctrl_c_during_a_hook_kills_its_group_and_propagates(tmp_path):
    pidfile = tmp_path / "child.pid"
    hook = Hook("partition", f'sleep 60 & echo $! > "{pidfile}"; wait', 30)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            run_hook(hook, placeholder_values("s"))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert not _alive(int(pidfile.read_text()))


def test_hook_faults_run_the_hooks_with_placeholders_and_reset_is_degrade_with_zeros(tmp_path):
    log = tmp_path / "log"
    s = site({"partition": f'echo "partition {{site}} {{cut_mode}} $EDGE_CUT_MODE" >> "{log}"',
              "heal": [sys.executable, "-c", f"open({str(log)!r}, 'a').write('heal {{site}} {{cut_mode}}\\n')"],
              "degrade": f'echo "degrade {{site}} {{delay_ms}} {{jitter_ms}} {{loss}} {{loss_pct}} {{bandwidth_bps}}" >> "{log}"'},
             name="store-9")
    target_file = tmp_path / "target.yaml"
    target_file.write_text("placeholder")
    faults = faults_for(real(s, str(target_file)), s, allow_real=True)
    assert faults.cwd == tmp_path
    with faults.partitioned():
        pass
    with faults.partitioned(mode="drop"):  # the hook is told which cut to make, and heal which to undo
        pass
    with faults.degraded(delay_ms=30, bandwidth_bps=512000):
        pass
    assert log.read_text().splitlines() == [
        "partition store-9 hold hold", "heal store-9 hold", "partition store-9 drop drop", "heal store-9 drop",
        "degrade store-9 30 0 0 0 512000", "degrade store-9 0 0 0 0 0"]
    assert len(faults.runs) == 6 and all("exit 0" in line for line in faults.log)
    with pytest.raises(ValueError, match="unknown cut mode 'cut'"):
        faults.partition(mode="cut")


def test_hook_failure_is_an_error_and_heal_still_runs(tmp_path):
    marker = tmp_path / "healed"
    s = site({"partition": "echo no route >&2; exit 4", "heal": f'touch "{marker}"'})
    faults = faults_for(real(s), s, allow_real=True)
    with pytest.raises(HookError, match="hook partition failed with exit code 4.*no route"):
        with faults.partitioned():
            pytest.fail("the body must not run")
    assert marker.exists()
    assert isinstance(HookError("x"), FaultError)
