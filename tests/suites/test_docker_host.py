"""Host checks against a docker:// host (any running container with /bin/sh). Skipped, with the reason,
where no Docker daemon is reachable or no image with a shell is available locally (no pulls)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.cli import requirement as _req

pytestmark = pytest.mark.docker

_SHELL_IMAGES = ("busybox", "alpine", "debian", "ubuntu", "python")


@pytest.fixture
def container():
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Docker daemon reachable: {type(exc).__name__}: {str(exc)[:120]}")
    image = None
    for img in client.images.list():
        if any(tag.split(":")[0].rsplit("/", 1)[-1] in _SHELL_IMAGES for tag in img.tags):
            image = img
            break
    if image is None:
        pytest.skip("no local image with a shell (busybox, alpine, debian ...); this test does not pull")
    name = f"edge-conformance-test-{uuid.uuid4().hex[:8]}"
    c = client.containers.run(image.id, ["sleep", "300"], name=name, detach=True,
                              labels={"edge-conformance.test": "host-checks"})
    try:
        yield name
    finally:
        c.remove(force=True)


def test_checks_on_a_docker_host(container, make_site, edge_run):
    reqs = [
        _req("PROC", "functional.process", "running == true", {"process": "sleep"}),
        _req("MEM", "footprint.memory", "rss <= 1 GiB"),
        _req("CPU", "footprint.cpu", "cpu <= 0.5 cores", {"window": "1 s"}),
        _req("COUNT", "footprint.processes", "count >= 1"),
        _req("TIME", "functional.time_sync", "offset <= 2 s"),
        _req("PORTS", "security.listening_ports", "unexpected == 0"),
    ]
    res = edge_run(reqs, [make_site("box", None, hosts=(f"docker://{container}",))],
                   ["functional", "security", "footprint"], name="docker")
    for rid in ("PROC", "MEM", "CPU", "COUNT", "TIME"):
        assert res.status(rid, "box") == "pass", res.explain(rid, "box")
    ports = res("PORTS", "box")
    # nothing listens in a sleeping container; an image without ss/netstat says so
    assert ports["status"] == "pass" or (ports["status"] == "error" and "lacks" in ports["message"]), ports
