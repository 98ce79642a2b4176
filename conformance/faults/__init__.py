"""Fault injection for one site of the target: the resilience suite's only way to break things.

    faults = faults_for(target, site, allow_real=allow)   # what `edge.faults` returns
    faults.require("partition", "heal")                   # SKIP "no fault hook: heal" when it cannot
    with faults.partitioned():                            # heal always runs: error, Ctrl-C, anything
        ...
    with faults.partitioned(mode="drop"):                 # a long outage: connections do not survive
        ...
    with faults.degraded(delay_ms=30):                    # reset always runs
        ...

Two implementations behind one small interface (`Faults`):

* an emulated deployment (the target file has `emulation:`): the supervisor's control API
  (`emulated.EmulatedFaults`), always allowed, every action supported;
* a real deployment: the site's built-in faults granted in the target file (`faults:`, run on the
  site's own host with a dead-man switch there: `onsite.OnSiteFaults`) and its fault hooks, commands
  from the target file (`hooks.HookFaults`; a hook takes precedence for its pair of actions), both
  only with `--allow-faults` (`run --allow-faults`, `pytest --edge-allow-faults`). Without it
  `faults_for` skips the requirement ("fault hooks not allowed: pass --allow-faults"); an action
  without its hook skips it ("no fault hook: partition"). A fault is never silently not injected,
  so a requirement can never pass without its fault.

Actions: partition/heal (the site's WAN; a partition's mode is "hold", a short cut that keeps what
was in flight and delivers it at heal, or "drop", a long outage that resets every connection across
the WAN, see CUT_MODES), degrade/reset (WAN delay, jitter, loss, bandwidth; reset
= back to normal), kill (SIGKILL-like crash), restart, stop/start (down until started), pause/resume
(a hang), and an operator's data actions: backup (returns a reference to the backup), wipe (the site
reinstalled empty) and restore (from a reference backup returned). A failure to inject raises
FaultError/HookError, both MeasurementError: the verdict is `error`, naming what failed.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ..model.errors import NotMeasured
from .emulated import CUT_MODES, FaultError  # FaultError is a MeasurementError: the check reports `error`

ACTIONS = ("partition", "heal", "degrade", "reset", "kill", "restart", "stop", "start", "pause", "resume",
           "backup", "wipe", "restore")
# An operator's data actions: the emulator does them where it holds the site's data directory.
DATA_ACTIONS = ("backup", "wipe", "restore")
DATA_BACKENDS = ("local",)
NOT_ALLOWED = "fault hooks not allowed"
NOT_ALLOWED_REMEDY = "pass --allow-faults (the run may then cut, kill and restart the target's sites)"


def skip(reason: str, remedy: str | None = None) -> None:
    """The running requirement cannot be measured here: not-measured, with what would measure it."""
    raise NotMeasured(reason, remedy)


def _hook_remedy(hook: str, site: str) -> str:
    return f"add a `{hook}` fault hook to site {site} in the target file"


class Faults:
    """Fault injection for one site. Subclasses implement `_supports` and `_do`.

    `log` lists what was done, one line per action, in a form safe to show in reports (hook
    commands as written in the target file: ${ENV} references are never expanded there).
    """

    kind = "abstract"

    def __init__(self, target: Any, site: Any, allow_real: bool = False, run_id: str | None = None):
        self.target = target
        self.site = site
        self.allow_real = allow_real
        self.run_id = run_id
        self.log: list[str] = []
        self.other_site = False  # faults for a site other than the requirement's (named in skips)
        self.cut_mode = "hold"  # the mode of the last partition: heal hooks are told what they undo
        # How long the check means the next fault to last (s), when it says: a built-in fault on a real
        # site undoes itself on the site this long (plus the target's margin) after it began.
        self.expected_s: float | None = None

    # -- what can be done here

    @property
    def name(self) -> str:
        return self.site.name

    def supports(self, action: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown fault action {action!r} (actions: {', '.join(ACTIONS)})")
        return self._supports(action)

    def missing(self, *actions: str) -> list[str]:
        return [a for a in actions if not self.supports(a)]

    def require(self, *actions: str) -> None:
        """Skip the requirement unless every action can be injected on this site."""
        missing = self.missing(*actions)
        if missing:
            skip(self._missing_reason(missing[0]), self._missing_remedy(missing[0]))

    def _missing_reason(self, action: str) -> str:
        return f"no fault hook: {action}" + self._where()

    def _missing_remedy(self, action: str) -> str:
        return _hook_remedy(action, self.name)

    def _where(self) -> str:
        return f" (site {self.name})" if self.other_site else ""

    def for_site(self, site: Any) -> Faults:
        """The same kind of fault injection, with the same permission, for another site (central)."""
        other = faults_for(self.target, site, allow_real=self.allow_real, run_id=self.run_id)
        other.other_site = True
        return other

    # -- actions

    def partition(self, mode: str = "hold", *, duration: float | None = None) -> None:
        """Cut the site's WAN: nothing crosses until heal().

        mode "hold": what was in flight is held and delivered at heal (a short cut, TCP retransmits);
        "drop": every connection across the WAN is reset at the cut and nothing sent before or during
        it arrives later (a long outage: TCP gave up, a NAT or firewall lost its state).
        `duration`: how long the check means it to last (s), when it knows.
        """
        if mode not in CUT_MODES:
            raise ValueError(f"unknown cut mode {mode!r} (modes: {', '.join(CUT_MODES)})")
        self.cut_mode = mode
        self.expected_s = duration
        self._run("partition", cut_mode=mode)

    def heal(self) -> None:
        self._run("heal", cut_mode=self.cut_mode)

    def degrade(self, *, delay_ms: float | None = None, jitter_ms: float | None = None,
                loss: float | None = None, bandwidth_bps: int | None = None, duration: float | None = None) -> None:
        """Change the site's WAN: delay_ms one-way, loss a fraction (0.05 = 5 %), bandwidth_bps bit/s."""
        params = {k: v for k, v in (("delay_ms", delay_ms), ("jitter_ms", jitter_ms), ("loss", loss),
                                    ("bandwidth_bps", bandwidth_bps)) if v is not None}
        if not params:
            raise ValueError("degrade() needs at least one of delay_ms, jitter_ms, loss, bandwidth_bps")
        self.expected_s = duration
        self._run("degrade", **params)

    def reset(self) -> None:
        """The WAN back to normal (no degradation, healed)."""
        self._run("reset")

    def kill(self) -> None:
        """Crash the site (SIGKILL): whatever supervises it decides when it comes back."""
        self._run("kill")

    def restart(self) -> None:
        self._run("restart")

    def stop(self, *, duration: float | None = None) -> None:
        """Take the site down until start()."""
        self.expected_s = duration
        self._run("stop")

    def start(self) -> None:
        self._run("start")

    def pause(self, *, duration: float | None = None) -> None:
        """Freeze the site (SIGSTOP): connections stay open, nothing is answered, until resume()."""
        self.expected_s = duration
        self._run("pause")

    def resume(self) -> None:
        self._run("resume")

    def backup(self) -> str:
        """Back up the site's data while it runs; returns the reference restore() takes."""
        reference = self._run("backup")
        if not isinstance(reference, str) or not reference:
            raise FaultError(f"backup of {self.name} gave no reference to restore it from")
        return reference

    def wipe(self) -> None:
        """Remove everything the site keeps and bring it back empty (a reinstalled box)."""
        self._run("wipe")

    def restore(self, reference: str) -> None:
        """Put back the site's data from the backup `reference` (what backup() returned)."""
        self._run("restore", backup=reference)

    # -- faults that must always be undone

    # `duration` (s): how long the block is meant to last, when the check knows; a built-in fault on a
    # real site undoes itself there after it plus the target's margin, even if the harness is gone.

    def partitioned(self, mode: str = "hold", *, duration: float | None = None
                    ) -> contextlib.AbstractContextManager[None]:
        """Partition (in `mode`) for the length of the block; heal whatever happens (also on Ctrl-C)."""
        return self._undone(lambda: self.partition(mode, duration=duration), self.heal, "heal")

    def degraded(self, *, duration: float | None = None, **params: Any) -> contextlib.AbstractContextManager[None]:
        return self._undone(lambda: self.degrade(duration=duration, **params), self.reset, "reset")

    def paused(self, *, duration: float | None = None) -> contextlib.AbstractContextManager[None]:
        return self._undone(lambda: self.pause(duration=duration), self.resume, "resume")

    def stopped(self, *, duration: float | None = None) -> contextlib.AbstractContextManager[None]:
        return self._undone(lambda: self.stop(duration=duration), self.start, "start")

    @contextlib.contextmanager
    def _undone(self, do, undo, undo_name: str) -> Iterator[None]:
        # `do` is inside the try: a fault that failed or timed out half way is undone too.
        try:
            do()
            yield
        except BaseException as exc:
            try:
                undo()
            except Exception as undo_exc:  # noqa: BLE001 - the first failure stays the verdict; this one is logged
                line = f"{undo_name} on {self.name} after {type(exc).__name__} failed too: {undo_exc}"
                self.log.append(line)
                print(f"edge-conformance: {line}", file=sys.stderr)
            raise
        else:
            undo()

    # -- implementation

    def _run(self, action: str, **params: Any) -> Any:
        if not self.supports(action):
            skip(self._missing_reason(action), self._missing_remedy(action))
        return self._do(action, **params)

    def _supports(self, action: str) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _do(self, action: str, **params: Any) -> Any:  # pragma: no cover - abstract
        """Do it; backup returns the backup's reference, the other actions None."""
        raise NotImplementedError


class EmulatedSiteFaults(Faults):
    """An emulated site: the supervisor's control API does everything."""

    kind = "emulated"

    def __init__(self, target: Any, site: Any, api: Any):
        super().__init__(target, site, allow_real=True)
        self.api = api

    def _supports(self, action: str) -> bool:
        if action in DATA_ACTIONS:
            return (self.target.emulation or {}).get("backend", "local") in DATA_BACKENDS
        return True

    def _missing_reason(self, action: str) -> str:
        backend = (self.target.emulation or {}).get("backend")
        return f"the emulator's {backend} backend cannot {action} a site's data" + self._where()

    def _missing_remedy(self, action: str) -> str:
        return "run it on the local backend (--backend local), which holds each site's data directory"

    def _do(self, action: str, **params: Any) -> Any:
        name = self.site.name
        if action == "backup":
            taken = self.api.backup(name)
            self.log.append(f"backup {name}: {taken['backup']} ({taken['files']} files, {taken['bytes']} bytes)")
            return taken["backup"]
        if action == "restore":
            self.api.restore(name, params["backup"])
            self.log.append(f"restore {name} from {params['backup']}")
            return None
        if action == "degrade":
            self.api.degrade(name, **params)
            shown = ", ".join(f"{k}={v:g}" for k, v in params.items())
            self.log.append(f"degrade {name}: {shown}")
            return
        if action == "partition":
            self.api.partition(name, mode=params["cut_mode"])
            self.log.append(f"partition {name} ({params['cut_mode']})")
            return
        getattr(self.api, action)(name)
        self.log.append(f"{action} {name}")


def _own_lab(target: Any) -> bool:
    """An SSH lab this harness started (the ssh-lab topology): its sites are ours to cut, like an
    emulated deployment's, once the registry confirms the lab is this state root's and alive."""
    lab = getattr(target, "lab", None)
    if not lab:
        return False
    from ..emulation.deployment import lab_not_ours

    return lab_not_ours(lab, getattr(target, "path", None)) is None


def faults_for(target: Any, site: Any, allow_real: bool = False, run_id: str | None = None) -> Faults:
    """Fault injection for `site` (a Site or a site name) of `target`.

    Emulated targets (and the SSH lab this harness started): always. Real targets: the site's built-in
    faults (`faults:`) and hooks, only when `allow_real` (the run's --allow-faults); otherwise the
    requirement is skipped here, before anything is touched. `run_id` tags what a built-in fault
    installs on a site (default: one id per harness process).
    """
    if isinstance(site, str):
        site = target.site(site)
    if target.emulation:
        from .emulated import EmulatedFaults

        control = target.emulation.get("control_url")
        if not control:
            raise FaultError(f"emulated target {target.name} has no control_url: cannot inject faults")
        # the run id lets the ownership gate check the deployment too, not only its control URL
        return EmulatedSiteFaults(target, site, EmulatedFaults(control, run_id=target.emulation.get("run_id")))
    if not allow_real and not _own_lab(target):
        skip(NOT_ALLOWED, NOT_ALLOWED_REMEDY)
    from .hooks import HookFaults

    hooks = HookFaults(target, site, allow_real=True)
    if getattr(site, "faults", None) is not None:
        from .onsite import OnSiteFaults

        return OnSiteFaults(target, site, run_id=run_id, hooks=hooks)
    return hooks


__all__ = [
    "ACTIONS", "CUT_MODES", "NOT_ALLOWED", "NOT_ALLOWED_REMEDY", "EmulatedSiteFaults", "FaultError", "Faults",
    "faults_for", "skip",
]
