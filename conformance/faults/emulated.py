"""Fault injection into an emulated deployment, through its supervisor's control API.

    faults = EmulatedFaults(target.emulation["control_url"])
    faults.partition("store-1")                  # cut store-1's WAN link (for central: every WAN link)
    faults.partition("store-1", mode="drop")     # ... and reset every connection across it
    faults.degrade("store-1", delay_ms=150, loss=0.05)
    faults.reset("store-1")                      # back to the topology's link parameters, healed
    faults.kill("store-1")                       # a crash; the site comes back by itself (~0.5 s)

Every call goes through the one HTTP client (conformance.measure.http.call_json), has a timeout and
raises FaultError (a MeasurementError: a check that cannot inject its
fault reports `error`, not `fail`) with the supervisor's own explanation when it refuses.
A fault goes only to a deployment the harness started: a loopback control_url registered in the
caller's own state root (conformance.emulation.deployment.owned_control); anything else (a
hand-written or foreign `emulation:` block) raises NotMeasured before any request is sent.
Stdlib only at import (the gate imports conformance.emulation when a request is made), so it loads
in any process the harness runs.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from ..measure.http import CallError, call_json
from ..measure.linkbytes import check_readable
from ..model.errors import MeasurementError

LINK_KINDS = ("wan", "access")
CUT_MODES = ("hold", "drop")  # what a partition does to connections (conformance.emulation.link)


class FaultError(MeasurementError):
    """The fault could not be injected (unknown site, supervisor gone, bad parameters, ...)."""


class EmulatedFaults:
    def __init__(self, control_url: str, timeout: float = 30.0, *, run_id: str | None = None):
        # Generous default: start/restart wait for the site's ready line.
        self.control_url = control_url.rstrip("/")
        self.timeout = timeout
        self.run_id = run_id  # when known (the target's emulation.run_id), the gate checks it too

    # -- network

    def partition(self, site: str, mode: str = "hold") -> dict[str, Any]:
        """Cut the site off its WAN until heal().

        mode "hold": a short cut; nothing is delivered and nothing reset, what was in flight arrives at
        heal. "drop": a long outage; every connection across the WAN is reset at the cut, new ones go
        nowhere, and nothing sent before or during the cut arrives later.
        """
        if mode not in CUT_MODES:
            raise ValueError(f'mode must be one of {", ".join(CUT_MODES)}, got {mode!r}')
        return self._call("POST", f"/sites/{_q(site)}/partition", {"mode": mode})

    def heal(self, site: str) -> dict[str, Any]:
        return self._post(f"/sites/{_q(site)}/heal")

    def degrade(self, site: str, delay_ms: float | None = None, jitter_ms: float | None = None,
                loss: float | None = None, bandwidth_bps: int | None = None, link: str = "wan"
                ) -> dict[str, Any]:
        """Change the parameters of the site's `link` ("wan" or "access"); None leaves one as it is.

        delay_ms is one-way (a request/response pays it twice); loss is a fraction (0.05 = 5 %).
        """
        fields = {k: v for k, v in (("delay_ms", delay_ms), ("jitter_ms", jitter_ms), ("loss", loss),
                                    ("bandwidth_bps", bandwidth_bps)) if v is not None}
        if not fields:
            raise ValueError("degrade() needs at least one of delay_ms, jitter_ms, loss, bandwidth_bps")
        return self._call("PATCH", f"/links/{_link(site, link)}", fields)

    def reset(self, site: str, link: str = "wan") -> dict[str, Any]:
        """Undo degrade() and partition(): the topology's parameters, healed."""
        return self._post(f"/links/{_link(site, link)}/reset")

    # -- processes

    def kill(self, site: str) -> dict[str, Any]:
        """SIGKILL, like a crash: the supervisor restarts the site after about 0.5 s."""
        return self._post(f"/sites/{_q(site)}/kill")

    def stop(self, site: str) -> dict[str, Any]:
        """SIGTERM; the site stays down until start()."""
        return self._post(f"/sites/{_q(site)}/stop")

    def start(self, site: str) -> dict[str, Any]:
        return self._post(f"/sites/{_q(site)}/start")

    def restart(self, site: str) -> dict[str, Any]:
        return self._post(f"/sites/{_q(site)}/restart")

    def backup(self, site: str) -> dict[str, Any]:
        """A live backup of the site's data: {"backup": NAME, "bytes", "sha256", "files", "taken_at"}."""
        return self._post(f"/sites/{_q(site)}/backup")["backup"]

    def wipe(self, site: str) -> dict[str, Any]:
        """Stop the site, remove all its data, start it empty (a reinstalled box)."""
        return self._post(f"/sites/{_q(site)}/wipe")

    def restore(self, site: str, backup: str) -> dict[str, Any]:
        """Stop the site, put back the data of `backup` (a name backup() answered), start it."""
        return self._call("POST", f"/sites/{_q(site)}/restore", {"backup": backup})

    def pause(self, site: str) -> dict[str, Any]:
        """SIGSTOP: the site hangs (connections open, nothing answered) until resume()."""
        return self._post(f"/sites/{_q(site)}/pause")

    def resume(self, site: str) -> dict[str, Any]:
        return self._post(f"/sites/{_q(site)}/resume")

    # -- status

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def site_status(self, site: str) -> dict[str, Any]:
        for entry in self.status()["sites"]:
            if entry["name"] == site:
                return entry
        raise FaultError(f'no site "{site}" in the emulated deployment at {self.control_url}')

    # -- plumbing

    def _post(self, path: str) -> dict[str, Any]:
        return self._call("POST", path)

    def _gate(self, method: str) -> None:
        """The ownership gate (conformance.emulation.deployment.owned_control): a fault (any request
        but GET) goes only to a loopback control API of a deployment of the caller's own state root,
        else NotMeasured (never a pass without its fault); reads only to loopback."""
        if method == "GET":
            check_readable(self.control_url, self.run_id)  # raises NotMeasured
            return
        from ..emulation import deployment

        try:
            deployment.owned_control(self.control_url, self.run_id)
        except deployment.EmulationError as exc:
            raise FaultError(str(exc)) from None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        self._gate(method)
        what = f"{method} {path}"
        try:
            return call_json(method, self.control_url + path, body, timeout=self.timeout, empty={})
        except CallError as exc:
            if exc.status is None:
                raise FaultError(f"fault {what}: emulation control API at {self.control_url} did not answer "
                                 f"within {self.timeout:g} s ({exc.detail}); is the deployment still up?") from None
            if exc.kind == "protocol":
                raise FaultError(f"fault {what}: answer is not JSON ({exc.detail})") from None
            raise FaultError(f"fault {what} refused (HTTP {exc.status}): {exc.detail}") from None


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _link(site: str, kind: str) -> str:
    if kind not in LINK_KINDS:
        raise ValueError(f'link must be one of {", ".join(LINK_KINDS)}, got {kind!r}')
    return urllib.parse.quote(f"{kind}:{site}", safe=":")
