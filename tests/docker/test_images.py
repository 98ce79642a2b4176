"""The site image: built offline, cached by the digest of its recipe, with what testinfra needs."""

from __future__ import annotations

import os
import time

import pytest

from conformance.emulation.docker import LABEL_HARNESS, LABEL_RECIPE, LABEL_TEMPORARY, images

pytestmark = [pytest.mark.docker,  # containers: slow by tests/conftest.py
              pytest.mark.serial]  # builds and removes the shared site images: nothing else may build beside it


def test_site_image_is_cached_by_recipe_digest(docker_client, site_image):
    again = images.ensure_image(docker_client)
    assert again.tag == site_image.tag and again.id == site_image.id and not again.built
    assert again.seconds < 5.0
    image = docker_client.images.get(site_image.tag)
    assert image.labels[LABEL_HARNESS] == "edge-conformance"
    assert image.labels[LABEL_RECIPE] == site_image.digest


def test_a_changed_recipe_builds_a_new_image_then_hits_the_cache(docker_client, site_image):
    extra = {"conformance/emulation/docker/test-marker.txt": os.urandom(8).hex().encode()}
    first = images.ensure_image(docker_client, temporary=True, extra_files=extra)
    try:
        assert first.built and first.tag != site_image.tag
        assert docker_client.images.get(first.tag).labels[LABEL_TEMPORARY] == "1"
        started = time.monotonic()
        second = images.ensure_image(docker_client, temporary=True, extra_files=extra)
        assert not second.built and second.id == first.id
        assert time.monotonic() - started < 5.0
        # the regular image is untouched by a temporary build
        assert docker_client.images.get(site_image.tag).id == site_image.id
    finally:
        removed = images.remove_temporary_images(docker_client)
    assert first.id in removed
    assert not docker_client.images.list(filters={"label": f"{LABEL_TEMPORARY}=1"})


def test_image_has_what_testinfra_and_the_stack_need(docker_client, site_image):
    script = ("set -e; for t in sh ps ss ip ping nc python3 nginx mosquitto mosquitto_pub mosquitto_sub; do "
              "command -v $t >/dev/null || { echo missing $t; exit 1; }; done; "
              "python3 -c 'import aiohttp, edge_workloads.edge; print(aiohttp.__version__)'")
    out = docker_client.containers.run(site_image.tag, ["-c", script], entrypoint="/bin/sh", remove=True)
    assert out.decode().strip().split(".")[0] == "3"
