"""Shared fixtures live in plugin modules, one per real part they stand up."""

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_http", "tests.fixtures_site"]
