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
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from aggregator.errors import SchemaMismatch, StoreError

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


#: the databases the store has queries for
BACKENDS = ("sqlite", "postgresql")


def url_problem(url: str) -> str | None:
    """What stops ``url`` from ever working, found without connecting; None when nothing does."""
    try:
        parsed = normalize_url(url)
    except (ArgumentError, ValueError):
        return (
            f"not a database URL: {url!r} "
            "(sqlite:///path/to/file.db or postgresql+psycopg://user@host/db)"
        )
    backend = parsed.get_backend_name()
    if backend not in BACKENDS:
        return f"{backend!r} databases are not supported; use sqlite:/// or postgresql+psycopg://"
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        return f"unknown database driver {parsed.drivername!r}; use sqlite or postgresql+psycopg"
    except ImportError as exc:
        return (
            f"the driver of {parsed.drivername} is not installed ({exc.name or exc}); "
            "use postgresql+psycopg://, whose driver comes with aggregator"
        )
    return None


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    """An engine with our pragmas and locking; creates a SQLite file's folder if missing.

    ``readonly``: the database refuses every write (SQLite ``mode=ro``, PostgreSQL
    read-only transactions) and nothing is created, not even a folder.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, readonly)
    if parsed.get_backend_name() == "postgresql":
        # a server that does not answer must fail the health check, not hang it
        connect_args: dict[str, Any] = (
            {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        )
        if readonly:  # beside the URL's own options (a search_path, say), not over them
            given = parsed.query.get("options", "")
            given = given if isinstance(given, str) else " ".join(given)
            connect_args["options"] = f"{given} -c default_transaction_read_only=on".strip()
        return create_engine(
            parsed, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
        )
    return create_engine(parsed, pool_pre_ping=True)


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for memory and ``file:`` URIs."""
    if url.get_backend_name() != "sqlite" or is_sqlite_memory(url):
        return None
    if not url.database or url.database.startswith("file:"):
        return None
    return Path(url.database).expanduser()


def _sqlite_engine(url: URL, readonly: bool = False) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    path = sqlite_path(url)
    if is_sqlite_memory(url):
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    elif path is not None and readonly:
        url = url.set(database=f"file:{quote(str(path))}", query={"mode": "ro", "uri": "true"})
    elif path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            if not readonly:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
                # checkpoint every 40 MB of WAL, not every 4 MB: an index page rewritten by
                # many commits is copied back once per checkpoint (durability is the same)
                cursor.execute("PRAGMA wal_autocheckpoint = 10000")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        deferred = readonly or conn.get_execution_options().get("readonly", False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

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


def revisions() -> list[str]:
    """Every migration's revision, oldest first (read from the scripts' text)."""
    found = []
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        match = dict((m[1], m[2]) for m in _REVISION.finditer(script.read_text("utf-8")))
        if "revision" in match:
            found.append(match["revision"])
    return found


def check_schema(engine: Engine, where: str) -> None:
    """Raise SchemaMismatch unless the database stands at this version's head revision.

    For the commands that only read: they never migrate, and say what to run instead.
    """
    head = head_revision()
    try:
        with engine.execution_options(readonly=True).connect() as conn:
            exists = conn.dialect.has_table(conn, "alembic_version")
            found = (
                set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
                if exists
                else set()
            )
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreError(f"reading the schema of {where}: {detail[0] if detail else exc}") from exc
    if found == {head}:
        return
    if not found:
        raise SchemaMismatch(
            f"the database {where} has no schema yet; aggregator poll or run makes it", None, head
        )
    at = ",".join(sorted(found))
    if found - set(revisions()):
        message = (
            f"the database schema is at {at}, newer than this version knows ({head}); "
            "upgrade aggregator"
        )
    else:
        message = (
            f"the database schema is at {at}, this version needs {head}; "
            "run aggregator poll or aggregator run to upgrade it"
        )
    raise SchemaMismatch(message, at, head)


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
