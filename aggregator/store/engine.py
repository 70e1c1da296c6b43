"""Engines: URL rules, SQLite pragmas and write locking, migrations under a lock.

SQLite writers begin with ``BEGIN IMMEDIATE``: a deferred transaction that
reads first and writes later fails with "database is locked" when another
writer got there in between, without waiting for ``busy_timeout``. We take
transaction control from the sqlite3 driver (the recipe in SQLAlchemy's
SQLite dialect documentation) and emit the BEGIN ourselves; read-only
connections (execution option ``readonly``) begin deferred so they never
wait for a writer under WAL.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_S = 30
#: pg_advisory_lock key held while migrating: several instances starting together migrate once
MIGRATION_LOCK = 0x61676772  # "aggr"
#: transaction-level advisory lock that serializes item writers on PostgreSQL
ITEMS_LOCK = 0x6167_6769  # "aggi"
#: class of the transaction-level advisory locks, one per output file name, that serialize
#: render + replace across instances (the second key is the name's CRC-32)
OUTPUT_LOCK = 0x6167_676F  # "aggo"


def normalize_url(url: str) -> URL:
    """``postgres://`` and ``postgresql://`` -> psycopg 3; anything else as given."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str) -> Engine:
    """An engine with our pragmas and locking; creates a SQLite file's folder if missing."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        # a server that does not answer must fail the health check, not hang it
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        return create_engine(
            parsed, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
        )
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if is_sqlite_memory(url):
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    elif url.database and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get("readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


class MigrationError(Exception):
    """Alembic could not migrate (its ``CommandError``, kept as ``__cause__``)."""


_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*['\"]?([\w-]+|None)", re.M)


@cache
def head_revision() -> str | None:
    """The newest migration, read from the scripts' text (no alembic import); None: unsure."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        text_ = script.read_text("utf-8")
        found: dict[str, str] = {m[1]: m[2] for m in _REVISION.finditer(text_)}
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        if found.get("down_revision") not in (None, "None"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_current(engine: Engine) -> bool:
    """The database already stands at the head revision: a cheap read, alembic not imported."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.execution_options(readonly=True).connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return set(versions) == {head}
    except SQLAlchemyError:  # no version table yet, or no database: let alembic decide
        return False


def migrate(engine: Engine) -> None:
    """``alembic upgrade head`` on this engine, once even when several processes start together.

    Alembic (a large import) is loaded only when the schema is not at the head already.
    """
    if is_current(engine):
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.util import CommandError

    try:
        _upgrade(engine, command, AlembicConfig)
    except CommandError as exc:
        raise MigrationError(str(exc)) from exc


def _upgrade(engine: Engine, command: Any, alembic_config: Any) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # transaction-level: released by the commit that also makes the new schema visible
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        # SQLite: BEGIN IMMEDIATE above already holds the database's write lock
        cfg = alembic_config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
