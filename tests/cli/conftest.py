"""Loopback servers for the end-to-end tests of the command line (the CLI helpers: tests.helpers.cli)."""

from __future__ import annotations

import pytest

from tests.helpers.servers import StubServer
from tests.helpers.servers import hanging_url as _hanging_url
from tests.helpers.servers import refused_url as _refused_url


@pytest.fixture(scope="session")
def http_url():
    """A loopback HTTP server: /health answers 200, anything else 404."""
    with StubServer() as server:
        yield server.url


@pytest.fixture
def hanging_url():
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with _hanging_url() as url:
        yield url


@pytest.fixture
def refused_url():
    """A loopback port nobody listens on: connections are refused at once."""
    return _refused_url()
