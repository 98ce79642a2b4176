"""Fixtures of the emulation tests (their shared plain helpers: tests/emulation/ownership.py)."""

from __future__ import annotations

import pytest

from conformance.emulation import state as emu_state

from tests.emulation.ownership import NO_DOCKER


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """Two state roots, A and B; the test process is in A. Docker is out of the picture."""
    a, b = tmp_path / "root-a", tmp_path / "root-b"
    monkeypatch.setenv(emu_state.ROOT_ENV, str(a))
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    emu_state.runtime_root()
    b.mkdir(mode=0o700)
    return a, b
