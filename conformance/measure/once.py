"""One measurement shared by every requirement that would take the very same one on a site: the first
runs it under a pressure window (PSI on this machine, the emulated site's own CPU), the others get
the same figures and a note saying so; an error is shared the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .pressure import PressureWindow, TreeCpu, own_site_pid

_STORE = pytest.StashKey[dict]()


def measured_once(edge, request, key: str, same: str, run: Callable[[], Any]) -> tuple[Any, Any, float | None]:
    """(run()'s result, the pressure on this machine while it ran, the emulated site's own CPU use in
    cores or None), once per (site, key) in this session. `same` names what was the same in the note
    ("load settings"); run() raises MeasurementError when it cannot measure."""
    store = request.config.stash.setdefault(_STORE, {})
    slot = (edge.site.name, key)
    if slot in store:
        first, measured, exc = store[slot]
        edge.note(f"measured once for {first} and this requirement (same {same})")
        if exc is not None:
            raise exc
        return measured
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))
    try:
        result = run()
    except Exception as exc:
        store[slot] = (edge.requirement.id, None, exc)
        raise
    measured = (result, window.stop(), site_cpu.cores())
    store[slot] = (edge.requirement.id, measured, None)
    return measured
