"""Fixtures of the SSH lab's tests: the docker ones (a Docker daemon and the site image) are the docker
backend's own (tests/docker/conftest.py), shared here."""

from __future__ import annotations

from tests.docker.conftest import docker_client, site_image  # noqa: F401 - fixtures, re-exported
