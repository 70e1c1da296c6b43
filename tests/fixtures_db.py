"""Real databases for tests: a SQLite file per test, and PostgreSQL.

A test run gets its own PostgreSQL database (``aggregator_test_<pid>_<random>``,
dropped at the end) and every test a fresh schema in it, so no test sees
another's rows. ``db_url`` runs a test on both. PostgreSQL not answering is a
failure, not a skip, unless ``AGGREGATOR_TEST_NO_PG=1``; set
``AGGREGATOR_TEST_PG`` to an admin URL to use another server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from aggregator.store import Store

ADMIN_URL = os.environ.get("AGGREGATOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _conninfo(url: str, dbname: str | None = None) -> str:
    """An SQLAlchemy-style URL -> a libpq URI psycopg accepts (optionally another database)."""
    parsed = make_url(url).set(drivername="postgresql")
    if dbname is not None:
        parsed = parsed.set(database=dbname)
    return parsed.render_as_string(hide_password=False)


def _admin() -> psycopg.Connection:
    """Autocommit connection to a maintenance database (``postgres``, else ``test``)."""
    errors = []
    for dbname in (None, "postgres", "test"):
        try:
            return psycopg.connect(_conninfo(ADMIN_URL, dbname), autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            errors.append(str(exc).strip())
    pytest.fail(
        f"PostgreSQL at {make_url(ADMIN_URL).render_as_string()} does not answer "
        f"(set AGGREGATOR_TEST_NO_PG=1 to skip the PostgreSQL tests): {errors[-1]}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test run; yields its SQLAlchemy URL."""
    if os.environ.get("AGGREGATOR_TEST_NO_PG") == "1":
        pytest.skip("AGGREGATOR_TEST_NO_PG=1")
    name = f"aggregator_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(_conninfo(ADMIN_URL, name))
            .set(drivername="postgresql+psycopg")
            .render_as_string(hide_password=False)
        )
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_schema(database_url: str) -> Iterator[str]:
    """A new empty schema in the run's database, dropped after; yields a URL searching it."""
    schema = f"t_{secrets.token_hex(6)}"
    conninfo = _conninfo(database_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(database_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            # a test that left a Store open must not block the drop
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of its own (the folder is created by the store)."""
    return f"sqlite:///{tmp_path / 'db' / 'aggregator.db'}"


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema of its own."""
    yield from _fresh_schema(pg_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend in turn."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated Store on a fresh database, closed after the test."""
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()
