"""Statement helpers for batches: chunked IN lists and the dialects' upserts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

#: values per IN list: far below SQLite's and PostgreSQL's bound-parameter limits
CHUNK = 500


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def upsert_statement(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for {conn.dialect.name}")


def insert_missing(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """INSERT … ON CONFLICT (keys) DO NOTHING, for rows another writer may have added."""
    if rows:
        conn.execute(
            upsert_statement(conn, table).on_conflict_do_nothing(index_elements=keys), rows
        )


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET the ``update`` columns to the new values."""
    if not rows:
        return
    stmt = upsert_statement(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={name: stmt.excluded[name] for name in update}
    )
    conn.execute(stmt, rows)
