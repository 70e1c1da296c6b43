"""pytest plugin: the loopback HTTP server (tests/loopback.py) every test shares.

``loopback`` is the running server, emptied of added routes and recorded
requests before each test; ``loopback.url`` is its base URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.loopback import LoopbackServer


@pytest.fixture(scope="session")
def loopback_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def loopback(loopback_server: LoopbackServer) -> Iterator[LoopbackServer]:
    loopback_server.reset()
    yield loopback_server
    loopback_server.reset()


@pytest.fixture
def loopback_url(loopback: LoopbackServer) -> str:
    return loopback.url
