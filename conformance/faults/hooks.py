"""Fault hooks: how the resilience suite breaks a REAL deployment, with commands its owner provides.

A target file may give a site hook commands (schemas/target.schema.json):

    hooks:
      partition: {command: "ssh edge1 sudo iptables -I OUTPUT -d 10.0.0.1 -j DROP", timeout: 20 s}
      heal:      {command: "ssh edge1 sudo iptables -D OUTPUT -d 10.0.0.1 -j DROP", timeout: 20 s}
      degrade:   {command: ["./wan.sh", "{site}", "{delay_ms}", "{loss_pct}", "{bandwidth_bps}"]}
      kill:      {command: "ssh edge1 sudo systemctl kill -s KILL edge-stack"}
      restart:   {command: "ssh edge1 sudo systemctl restart edge-stack"}
      pause:     {command: "ssh edge1 sudo systemctl kill -s STOP edge-stack"}
      resume:    {command: "ssh edge1 sudo systemctl kill -s CONT edge-stack"}
      stop:      {command: "ssh hub sudo systemctl stop hub-stack"}     # e.g. on central: a resync with
      start:     {command: "ssh hub sudo systemctl start hub-stack"}    # `outage: central` needs both
      backup:    {command: "ssh edge1 sudo edge-backup create"}          # prints the backup's reference
      wipe:      {command: "ssh edge1 sudo edge-reinstall --wipe-data"}
      restore:   {command: "ssh edge1 sudo edge-backup restore {backup}"}

* A string runs through the shell (`sh -c`), a list runs as argv without one.
* Placeholders, replaced before running: {site}; for degrade {delay_ms} (one-way, ms), {jitter_ms},
  {loss} (a fraction, 0.05), {loss_pct} (5), {bandwidth_bps} (bit/s, 0 = unlimited). Degrade always
  gets all of them: what a step does not change is 0 (no added impairment), and `reset` is the
  degrade hook with all zeros. For partition and heal, {cut_mode}: "hold" (a short cut: what was in
  flight may arrive after the heal, e.g. iptables DROP) or "drop" (a long outage: connections across
  the WAN must not survive it, e.g. DROP plus `conntrack -D` or `ss -K`, or REJECT with tcp-reset);
  heal gets the mode of the partition it undoes; other hooks get "". For restore, {backup}: the
  reference the backup hook printed (its last non-empty line of standard output). They are also in
  the environment as EDGE_SITE, EDGE_HOOK, EDGE_DELAY_MS, EDGE_JITTER_MS, EDGE_LOSS, EDGE_LOSS_PCT,
  EDGE_BANDWIDTH_BPS, EDGE_CUT_MODE, EDGE_BACKUP. Other braces (awk programs, shell `${VAR}`) are left alone.
* ${ENV} references are never expanded by the harness, so no secret value is ever in the argv of a
  process it starts (where any local user could read it with `ps`): the hook runs with the variables
  in its environment, and a string command's shell expands them (a `${VAR}` inside single quotes
  too: it is handed to the shell as `'"${VAR}"'`). A list command has no shell, so it cannot hold
  a reference (the target file is refused on load). A variable that is not set is a HookError
  before anything runs. Logs, notes and error messages show the command as written, and every known
  secret value (model/secrets.py) that appears in a hook's output is replaced by its ${ENV}
  reference before any of it is shown.
* Each hook runs in a new process group (session), in the target file's directory, with its
  timeout (default 60 s). On timeout or Ctrl-C the whole group is killed (SIGTERM, then SIGKILL).
* Exit status 0 is success. Anything else, a timeout, or a command that cannot start raises
  HookError (the verdict is `error`) naming the hook, its exit code and the last line of its stderr.
* A hook that leaves a background process behind (e.g. restart) is fine: its output goes to files,
  not pipes, so nothing waits for it, and a successful hook's process group is left alone.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..model import secrets as S
from ..model.target import ENV_REF, Hook, list_reference_message
from . import Faults, FaultError

# action -> the hook that performs it
HOOK_OF = {"partition": "partition", "heal": "heal", "degrade": "degrade", "reset": "degrade",
           "kill": "kill", "restart": "restart", "pause": "pause", "resume": "resume",
           "stop": "stop", "start": "start", "backup": "backup", "wipe": "wipe", "restore": "restore"}
PLACEHOLDERS = ("site", "delay_ms", "jitter_ms", "loss", "loss_pct", "bandwidth_bps", "cut_mode", "backup")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_KILL_GRACE_S = 2.0
_GROUP_GONE_S = 3.0  # how long a killed hook's group may take to be gone before we return anyway


class HookError(FaultError):
    """A hook failed, timed out or could not start."""


@dataclass
class HookRun:
    name: str
    command: str  # as written (placeholders filled, ${ENV} not expanded): safe to show
    exit_code: int
    elapsed: float
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"hook {self.name} ({self.command}): exit {self.exit_code} in {self.elapsed:.2f} s"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def placeholder_values(site: str, params: dict[str, Any] | None = None, cut_mode: str = "",
                       backup: str = "") -> dict[str, str]:
    """Every placeholder's text; degrade params that were not given are 0 (no impairment), cut_mode is
    "" except for partition and heal, backup "" except for restore."""
    p = params or {}
    loss = float(p.get("loss") or 0.0)
    bandwidth = p.get("bandwidth_bps")
    return {
        "site": site,
        "delay_ms": _number(float(p.get("delay_ms") or 0.0)),
        "jitter_ms": _number(float(p.get("jitter_ms") or 0.0)),
        "loss": _number(loss),
        "loss_pct": _number(round(loss * 100.0, 6)),
        "bandwidth_bps": str(int(bandwidth)) if bandwidth else "0",
        "cut_mode": cut_mode,
        "backup": backup,
    }


def _fill(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m[1]], text)


def render(command: str | list[str], values: dict[str, str]) -> tuple[str, str | list[str]]:
    """(command as shown, command as run), placeholders filled. ${ENV} references are NOT expanded: a
    string runs with `sh -c`, which expands them from the hook's environment, so their values are in no
    argv. Raises LookupError naming a variable that is not set, ValueError for a reference in a list
    command (without a shell it could only be put in the program's argv)."""
    if isinstance(command, str):
        shown = _fill(command, values)
        _require_set(shown)
        return shown, shell_form(shown)
    filled = [_fill(str(arg), values) for arg in command]
    for var in S.references(filled):
        raise ValueError(list_reference_message(var))
    return shlex.join(filled), filled


def _require_set(text: str) -> None:
    for var in ENV_REF.findall(text):
        if var not in os.environ:
            raise LookupError(f"environment variable {var} is not set")


def shell_form(command: str) -> str:
    """The command for `sh -c`: a `${VAR}` inside single quotes, which the shell would leave as it is,
    becomes `'"${VAR}"'` (close the quote, expand in double quotes, reopen), so every reference is
    expanded by the shell, in place, as written. Backslashes and double quotes are followed, so a
    single quote inside double quotes or after a backslash opens nothing."""
    out, quote, i = [], "", 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            m = ENV_REF.match(command, i)
            if m:
                out.append(f"'\"{m[0]}\"'")
                i = m.end()
                continue
            if c == "'":
                quote = ""
        elif c == "\\":
            out.append(command[i:i + 2])
            i += 2
            continue
        elif quote == '"':
            if c == '"':
                quote = ""
        elif c in "'\"":
            quote = c
        out.append(c)
        i += 1
    return "".join(out)


def _secrets(command: str | list[str]) -> dict[str, str]:
    """${VAR} references of a command -> their current values (to scrub them from output)."""
    return S.values_of(S.references(command))


def _scrub(text: str, secrets: Mapping[str, str]) -> str:
    return S.redact(text, secrets)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the hook's whole process group, then SIGKILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    try:  # the leader may be gone while members of its group remain
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        pass
    _await_group_gone(proc.pid, _GROUP_GONE_S)


def _await_group_gone(pgid: int, timeout: float) -> None:
    """Return once no live process of the group is left (or at the deadline): a SIGKILLed member
    still runs until the kernel schedules its exit, and on a busy machine that takes a while.
    Zombies waiting for their reaper count as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = [p for p in psutil.process_iter(["pid"]) if _in_group_and_live(p, pgid)]
        if not live:
            return
        time.sleep(0.02)


def _in_group_and_live(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False


def run_hook(hook: Hook, values: dict[str, str], *, cwd: str | Path | None = None,
             extra_env: dict[str, str] | None = None, secrets: Mapping[str, str] | None = None) -> HookRun:
    """Run one hook command with its timeout; raise HookError unless it exits 0. `secrets` (variable ->
    value: model.secrets.known_secret_values of the target) are replaced by their references in the
    hook's output; the command's own references always are."""
    name = hook.name
    try:
        shown, real = render(hook.command, values)
    except (LookupError, ValueError) as exc:  # a reference not set, or in a list: says which, never a value
        raise HookError(f"hook {name}: {exc.args[0]}") from None
    secrets = {**(secrets or {}), **_secrets(hook.command)}
    shown = _scrub(shown, secrets)  # a value written literally in the command is not shown either
    env = dict(os.environ)
    env.update({"EDGE_HOOK": name, "EDGE_SITE": values.get("site", "")})
    env.update({f"EDGE_{key.upper()}": value for key, value in values.items() if key != "site"})
    env.update(extra_env or {})
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(real, shell=isinstance(real, str), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, cwd=str(cwd) if cwd else None, env=env, start_new_session=True)
        except OSError as exc:
            raise HookError(f"hook {name} could not start: {exc.strerror or exc} (command: {shown})") from None
        try:
            code = proc.wait(timeout=hook.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stderr = _scrub(_read(err), secrets)
            tail = _last_line(stderr)
            raise HookError(f"hook {name} timed out after {hook.timeout:g} s and was killed (command: {shown})"
                            + (f"; last stderr line: {tail}" if tail else "")) from None
        except BaseException:  # Ctrl-C (KeyboardInterrupt) or anything else: never leave it running
            _kill_group(proc)
            raise
        elapsed = time.monotonic() - started
        stdout, stderr = _scrub(_read(out), secrets), _scrub(_read(err), secrets)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"failed with exit code {code}"
        tail = _last_line(stderr)
        raise HookError(f"hook {name} {how} (command: {shown})"
                        + (f"; last stderr line: {tail}" if tail else "; no stderr output"))
    return HookRun(name, shown, code, elapsed, stdout, stderr)


def _read(f) -> str:
    f.seek(0)
    return f.read(1 << 20).decode("utf-8", "replace")


class HookFaults(Faults):
    """A real site: each action runs the site's hook for it (see the module docstring)."""

    kind = "hooks"

    def __init__(self, target: Any, site: Any, allow_real: bool = True):
        super().__init__(target, site, allow_real=allow_real)
        self.runs: list[HookRun] = []
        path = getattr(target, "path", "") or ""
        self.cwd = Path(path).resolve().parent if path and Path(path).exists() else None

    def _supports(self, action: str) -> bool:
        return HOOK_OF[action] in self.site.hooks

    def _missing_reason(self, action: str) -> str:
        return f"no fault hook: {HOOK_OF[action]}" + self._where()

    def _missing_remedy(self, action: str) -> str:
        from . import _hook_remedy

        return _hook_remedy(HOOK_OF[action], self.name)

    def _do(self, action: str, **params: Any) -> Any:
        if not self.allow_real:  # faults_for never builds one without permission; belt and braces
            from . import NOT_ALLOWED, NOT_ALLOWED_REMEDY, skip

            skip(NOT_ALLOWED, NOT_ALLOWED_REMEDY)
        hook = self.site.hooks[HOOK_OF[action]]
        values = placeholder_values(self.site.name, params if action == "degrade" else None,
                                    cut_mode=params.get("cut_mode", ""), backup=params.get("backup", ""))
        try:
            run = run_hook(hook, values, cwd=self.cwd, secrets=S.known_secret_values(self.target))
        except HookError as exc:
            self.log.append(str(exc))
            raise
        self.runs.append(run)
        self.log.append(run.describe())
        if action == "backup":  # the backup's reference: the last line it printed
            lines = [line.strip() for line in run.stdout.splitlines() if line.strip()]
            return lines[-1] if lines else None
        return None
