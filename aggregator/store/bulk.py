"""Statement helpers for batches: chunked IN lists, the dialects' upserts, lean inserts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Table, insert

T = TypeVar("T")

#: values per IN list: far below SQLite's and PostgreSQL's bound-parameter limits
CHUNK = 500
#: PostgreSQL: Inserts by COPY instead of executemany: as fast at a source's batch, 15 %
#: less CPU in the client (bench/README.md, issue 19; ``bench/ingest.py --copy off``)
COPY = True


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def upsert_statement(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``_do_update``.

    Each dialect's module is imported on first use: a SQLite store never loads
    the PostgreSQL one (and asyncio with it), a tenth of a second at start-up.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

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


class Inserts:
    """INSERT of many rows into ``columns`` of ``table``, compiled once per dialect; each row
    converted by the columns' types and handed to the driver's executemany as it is.

    SQLAlchemy's own executemany builds a parameter dict per row and calls a type
    processor per value, which cost as much as SQLite's insert of the rows. Measured
    slower on PostgreSQL than psycopg's executemany: a long multi-row VALUES (parsed again
    on every call) and INSERT … SELECT FROM unnest(arrays) (bodies escaped into array
    text). No RETURNING: the drivers' executemany has none.

    On PostgreSQL the rows go in by COPY (``COPY``): straight into the table, or
    (``skip_existing``) into a temporary staging table and from there with one INSERT …
    SELECT … ON CONFLICT DO NOTHING.
    """

    def __init__(
        self, table: Table, columns: Sequence[str], *, skip_existing: Sequence[str] = ()
    ) -> None:
        """``skip_existing``: ON CONFLICT (these columns) DO NOTHING."""
        self.table = table
        self.columns = tuple(columns)
        self.skip_existing = tuple(skip_existing)
        self._plans: dict[str, tuple[str, Any]] = {}  #: dialect name -> (sql, row maker)
        self._copy_maker: Callable[[Mapping[str, Any]], Any] | None = None

    def _statement(self, dialect: Dialect) -> Any:
        if not self.skip_existing:
            return insert(self.table)
        if dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(self.table).on_conflict_do_nothing(
                index_elements=self.skip_existing
            )
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(self.table).on_conflict_do_nothing(index_elements=self.skip_existing)

    def _plan(self, dialect: Dialect) -> tuple[str, Any]:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self._statement(dialect).compile(
                dialect=dialect, column_keys=self.columns, for_executemany=True
            )
            convert = {
                name: self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in self.columns
            }
            names = tuple(compiled.positiontup or ()) if compiled.positional else self.columns
            make = _row_maker(names, [convert[n] for n in names], bool(compiled.positional))
            plan = self._plans[dialect.name] = (compiled.string, make)
        return plan

    def execute(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        if COPY and conn.dialect.name == "postgresql":
            self._copy(conn, rows)
            return
        sql, make = self._plan(conn.dialect)
        params = [make(row) for row in rows]
        if params:
            conn.exec_driver_sql(sql, params)

    def _copy(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        make = self._copy_maker
        if make is None:
            dialect = conn.dialect
            make = self._copy_maker = _row_maker(
                self.columns,
                [
                    self.table.c[n].type.dialect_impl(dialect).bind_processor(dialect)
                    for n in self.columns
                ],
                True,
            )
        values = [make(row) for row in rows]
        if not values:
            return
        names = ", ".join(f'"{n}"' for n in self.columns)
        target = f'"{self.table.name}"'
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            if self.skip_existing:
                stage = f'"stage_{self.table.name}"'
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                    f"(LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                into = stage
            else:
                into = target
            with cursor.copy(f"COPY {into} ({names}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
            if self.skip_existing:
                keys = ", ".join(f'"{k}"' for k in self.skip_existing)
                cursor.execute(
                    f"INSERT INTO {target} ({names}) SELECT {names} FROM {into} "
                    f"ON CONFLICT ({keys}) DO NOTHING"
                )
                cursor.execute(f"DELETE FROM {into}")


def _row_maker(
    names: Sequence[str], converters: Sequence[Callable[[Any], Any] | None], positional: bool
) -> Callable[[Mapping[str, Any]], Any]:
    """Row dict -> the driver's parameters (a tuple for qmark, a dict for pyformat): the
    values taken by one itemgetter, only the columns whose type converts them converted."""
    get = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    steps = [(i, f) for i, f in enumerate(converters) if f is not None]

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        out = list(get(row))
        for i, f in steps:
            out[i] = f(out[i])
        return tuple(out)

    if positional:
        return values
    return lambda row: dict(zip(names, values(row), strict=True))
