"""Fixtures of the docker backend's tests.

Tests marked `docker` need a Docker daemon: without one they SKIP with the reason (never fail).
Building the base image needs mmdebstrap and the Debian mirror (about a minute, once; cached by
digest afterwards); without mmdebstrap they skip too. Nothing here stops other runs on this machine.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from tests.helpers.waits import wait_for


@pytest.fixture(scope="session")
def docker_client():
    from conformance.emulation.docker.backend import DockerUnavailable, connect

    try:
        client = connect(timeout=60)
    except DockerUnavailable as exc:
        pytest.skip(str(exc))
    yield client
    client.close()


@pytest.fixture(scope="session")
def site_image(docker_client):
    from conformance.emulation.docker.images import BASE_REPOSITORY, ImageError, base_digest, ensure_image

    try:
        docker_client.images.get(f"{BASE_REPOSITORY}:{base_digest()[:16]}")
    except Exception:  # noqa: BLE001 - not built yet
        if shutil.which("mmdebstrap") is None:
            pytest.skip("the docker backend's base image is not built and mmdebstrap is not installed "
                        "(see ci-support/install-docker.sh)")
    try:
        return ensure_image(docker_client, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except ImageError as exc:
        pytest.fail(f"site image: {exc}")


def run_id(tag: str) -> str:
    return f"test-docker-{tag}-{os.getpid()}-{os.urandom(2).hex()}"


def labelled(client, run: str) -> dict[str, list[str]]:
    """Containers and networks that still carry the run's label."""
    flt = {"label": [f"io.edge-conformance.run-id={run}"]}
    return {"containers": [c["Names"][0] for c in client.api.containers(all=True, filters=flt)],
            "networks": [n["Name"] for n in client.api.networks(filters=flt)]}


@pytest.fixture(scope="session")
def dk():
    """Helpers shared by the docker test modules (conftest functions are not importable)."""

    class Helpers:
        pass

    h = Helpers()
    h.run_id, h.labelled, h.wait_for = run_id, labelled, wait_for
    return h
