"""pytest plugin: a written feed site and the feed server over it, for the serving tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.serve import ServerHandle, start_server
from tests.test_serve import Site, make_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """Every output of a small config written under ``tmp_path/site/public``."""
    return make_site(tmp_path / "site")


@pytest.fixture
def served(site: Site) -> Iterator[ServerHandle]:
    """The feed server on a free loopback port over ``site``; no store, always healthy."""
    handle = start_server(site.config, store_provider=lambda: None, health_provider=lambda: True)
    try:
        yield handle
    finally:
        handle.stop()
