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


def test_placeholders_are_filled_and_env_refs_are_left_to_the_shell(monkeypatch):
    monkeypatch.setenv("EDGE_TEST_TOKEN", "s3cr3t-value")
    values = placeholder_values("store-1", {"delay_ms": 25.0, "loss": 0.05})
    assert values == {"site": "store-1", "delay_ms": "25", "jitter_ms": "0", "loss": "0.05", "loss_pct": "5",
                      "bandwidth_bps": "0", "cut_mode": "", "backup": ""}
    shown, real_cmd = render("wan.sh {site} {delay_ms} {loss_pct} ${EDGE_TEST_TOKEN} awk '{print $1}'", values)
    assert shown == "wan.sh store-1 25 5 ${EDGE_TEST_TOKEN} awk '{print $1}'"
    assert real_cmd == shown  # the value is never put in the command line: sh expands it from the environment
    # inside single quotes the shell would not expand it: it is handed over as '"${VAR}"'
    shown, real_cmd = render("""curl -H 'Authorization: Bearer ${EDGE_TEST_TOKEN}' "a'b" \\' x""", values)
    assert real_cmd == """curl -H 'Authorization: Bearer '"${EDGE_TEST_TOKEN}"'' "a'b" \\' x"""
    shown, argv = render(["wan.sh", "{site}", "{bandwidth_bps}"], placeholder_values("a b", {"bandwidth_bps": 256000}))
    assert argv == ["wan.sh", "a b", "256000"] and "'a b'" in shown
    # a list has no shell: a reference could only go into the program's argv
    with pytest.raises(ValueError, match=r"\$\{EDGE_TEST_TOKEN\} in a list command would be put in the program's "
                                         r"arguments, which any local user can read \(ps\)"):
        render(["wan.sh", "--token=${EDGE_TEST_TOKEN}"], values)
    with pytest.raises(HookError, match=r"^hook degrade: \$\{EDGE_TEST_TOKEN\} in a list command"):
        run_hook(Hook("degrade", ["wan.sh", "${EDGE_TEST_TOKEN}"], 5), values)


def _cmdlines() -> dict[int, bytes]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    out[int(entry)] = f.read()
            except OSError:  # gone, or not ours to read
                pass
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_secret_reaches_the_hook_through_its_environment_and_is_in_no_process_argv(tmp_path, monkeypatch):
    """Issue 15: `${LAB_TOKEN}` was expanded into the command line, so `ps` showed it for the hook's
    lifetime. While the hook runs, no process on the machine has the value in its argv."""
    token = "lab-" + os.urandom(8).hex()
    monkeypatch.setenv("LAB_TOKEN", token)
    got, marker = tmp_path / "got", f"edge-hook-{os.urandom(4).hex()}"
    # printf is a shell builtin: the value goes nowhere but the file; sleep is a process of the hook
    hook = Hook("resume", f"""printf '%s\\n' "Authorization: Bearer ${{LAB_TOKEN}}" 'Bearer ${{LAB_TOKEN}}' """
                          f'> "{got}"; sleep 3 # {marker}', 20)
    seen, errors = [], []

    def run():
        try:
            seen.append(run_hook(hook, placeholder_values("s1")))
        except BaseException as exc:  # noqa: BLE001 # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        hook_seen, scans = False, 0
        deadline = time.monotonic() + 15
        while worker.is_alive() and time.monotonic() < deadline:
            cmdlines = _cmdlines()
            scans += 1
            leaked = [pid for pid, cmd in cmdlines.items() if token.encode() in cmd]
            assert not leaked, f"the secret is in the argv of {leaked}: {[cmdlines[p] for p in leaked]}"
            hook_seen = hook_seen or any(marker.encode() in cmd and b"${LAB_TOKEN}" in cmd for cmd in cmdlines.values())
            time.sleep(0.05)
    finally:
        worker.join(20)
    assert not errors, errors
    assert hook_seen and scans > 5, "the hook's shell was never seen running: nothing was proven"
    # the hook did get the value, from its environment, also inside single quotes
    assert got.read_text().splitlines() == [f"Authorization: Bearer {token}", f"Bearer {token}"]
    assert token not in seen[0].command and token not in seen[0].describe()


def test_a_hook_reference_that_is_not_set_fails_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_TEST_NOT_SET", raising=False)
    ran = tmp_path / "ran"
    with pytest.raises(HookError, match="hook heal: environment variable EDGE_TEST_NOT_SET is not set"):
        run_hook(Hook("heal", f'touch "{ran}"; echo ${{EDGE_TEST_NOT_SET}}', 5), placeholder_values("s"))
    assert not ran.exists()


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


def test_hook_output_is_scrubbed_of_every_known_value_of_the_target(monkeypatch, tmp_path):
    """Not only the hook's own references: a credential of the target echoed by a hook is hidden too."""
    monkeypatch.setenv("EDGE_TEST_CRED", "cred-value-4711")
    s = Site(name="s1", role="edge", credentials={"api": "EDGE_TEST_CRED"},
             hooks={"kill": Hook("kill", 'echo "ok cred-value-4711"; echo "no: cred-value-4711" >&2; exit 2', 10)})
    faults = faults_for(real(s), s, allow_real=True)
    with pytest.raises(HookError) as err:
        faults.kill()
    assert str(err.value).endswith("last stderr line: no: ${EDGE_TEST_CRED}")
    assert "cred-value-4711" not in " ".join(faults.log)
    s.hooks["kill"] = Hook("kill", 'echo "ok cred-value-4711"; echo "err cred-value-4711" >&2', 10)
    faults.kill()
    assert (faults.runs[-1].stdout, faults.runs[-1].stderr) == ("ok ${EDGE_TEST_CRED}\n", "err ${EDGE_TEST_CRED}\n")


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

    def interrupt_once_the_child_runs():
        # not after a fixed second: on a busy machine the shell may not have started its child yet
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pidfile.read_text(errors="replace").strip() if pidfile.exists() \
                else time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.2, interrupt_once_the_child_runs)
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


def test_backup_wipe_and_restore_hooks_pass_the_backups_reference(tmp_path):
    """The backup hook's last printed line is the reference; restore gets it as {backup} and $EDGE_BACKUP."""
    log = tmp_path / "log"
    s = site({"backup": 'echo "taking a backup of {site}"; echo "snap-{site}-7"',
              "wipe": f'echo "wipe {{site}}" >> "{log}"',
              "restore": f'echo "restore {{site}} {{backup}} $EDGE_BACKUP" >> "{log}"'}, name="store-9")
    faults = faults_for(real(s), s, allow_real=True)
    assert faults.supports("backup") and faults.supports("wipe") and faults.supports("restore")
    reference = faults.backup()
    assert reference == "snap-store-9-7"
    faults.wipe()
    faults.restore(reference)
    assert log.read_text().splitlines() == ["wipe store-9", "restore store-9 snap-store-9-7 snap-store-9-7"]


def test_a_backup_hook_that_prints_nothing_gives_no_reference_and_missing_hooks_skip(tmp_path):
    s = site({"backup": "true"})
    faults = faults_for(real(s), s, allow_real=True)
    with pytest.raises(FaultError, match="backup of edge-1 gave no reference"):
        faults.backup()
    with pytest.raises(NotMeasured, match="no fault hook: restore"):
        faults.restore("x")


def test_the_emulators_data_actions_need_the_local_backend():
    s = site()
    for backend, supported in (("local", True), ("docker", False)):
        t = Target(name="emu", sites=[s], emulation={"run_id": "r", "backend": backend,
                                                     "control_url": "http://127.0.0.1:9"})
        faults = faults_for(t, s)
        assert [faults.supports(a) for a in ("backup", "wipe", "restore")] == [supported] * 3
    with pytest.raises(NotMeasured, match="docker backend cannot backup") as err:
        faults.require("backup", "wipe", "restore")
    assert "--backend local" in err.value.remedy
