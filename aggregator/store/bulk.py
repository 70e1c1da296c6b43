"""Statement helpers for batches: chunked IN lists, the dialects' upserts, lean inserts."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Select, UpdateBase

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


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


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
    made = (conn.dialect.name, table.name, tuple(keys), tuple(update))
    stmt = _UPSERTS.get(made)
    if stmt is None:  # built once: each new statement object is compiled again
        stmt = upsert_statement(conn, table)
        stmt = _UPSERTS[made] = stmt.on_conflict_do_update(
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
        #: dialect name -> (sql, maker of the driver's parameters from a row of values)
        self._value_plans: dict[str, tuple[str, Any]] = {}

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
            compiled = self._compiled(dialect)
            names = tuple(compiled.positiontup or ()) if compiled.positional else self.columns
            make = _row_maker(names, self._converters(dialect, names), bool(compiled.positional))
            plan = self._plans[dialect.name] = (compiled.string, make)
        return plan

    def execute(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        if COPY and conn.dialect.name == "postgresql":
            self._copy(conn, rows)
            return
        sql, make = self._plan(conn.dialect)
        params = [make(row) for row in rows]
        if params:
            driver(conn, sql, params, many=True)

    def execute_values(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        """``execute`` for rows given as the values of ``columns``, in that order: no dict
        per row (issue 16: re-applying rules files 100,000 items at once)."""
        dialect = conn.dialect
        if COPY and dialect.name == "postgresql":
            convert = _converter(self._converters(dialect, self.columns))
            self._copy_values(conn, [convert(row) for row in rows])
            return
        plan = self._value_plans.get(dialect.name)
        if plan is None:
            sql, _ = self._plan(dialect)
            compiled = self._compiled(dialect)
            positional = bool(compiled.positional)
            names = tuple(compiled.positiontup or ()) if positional else self.columns
            make = _values_maker(self.columns, names, self._converters(dialect, names), positional)
            plan = self._value_plans[dialect.name] = (sql, make)
        sql, make = plan
        params = [make(row) for row in rows]
        if params:
            driver(conn, sql, params, many=True)

    def _compiled(self, dialect: Dialect) -> Any:
        return self._statement(dialect).compile(
            dialect=dialect, column_keys=self.columns, for_executemany=True
        )

    def _converters(self, dialect: Dialect, names: Sequence[str]) -> list[Any]:
        return [self.table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]

    def _copy(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        make = self._copy_maker
        if make is None:
            dialect = conn.dialect
            make = self._copy_maker = _row_maker(
                self.columns, self._converters(dialect, self.columns), True
            )
        self._copy_values(conn, [make(row) for row in rows])

    def _copy_values(self, conn: Connection, values: Sequence[Sequence[Any]]) -> None:
        """COPY rows of the driver's values of ``columns``."""
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
    convert = _converter(converters)

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        return convert(get(row))

    if positional:
        return values
    return lambda row: dict(zip(names, values(row), strict=True))


def _values_maker(
    given: Sequence[str],
    names: Sequence[str],
    converters: Sequence[Callable[[Any], Any] | None],
    positional: bool,
) -> Callable[[Sequence[Any]], Any]:
    """Values of ``given``, in that order -> the driver's parameters for ``names`` (a
    tuple for qmark, a dict for pyformat), converted by ``converters`` (one per name)."""
    index = [list(given).index(n) for n in names]
    convert = _converter(converters)
    if index == list(range(len(given))):
        get: Callable[[Sequence[Any]], Any] = tuple
    elif len(index) == 1:
        get = lambda values: (values[index[0]],)  # noqa: E731
    else:
        get = itemgetter(*index)
    if positional:
        return lambda values: convert(get(values))
    keys = tuple(names)
    return lambda values: dict(zip(keys, convert(get(values)), strict=True))


def _converter(
    converters: Sequence[Callable[[Any], Any] | None],
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Values -> the same values, those whose converter is not None converted."""
    steps = [(i, f) for i, f in enumerate(converters) if f is not None]
    if not steps:
        return tuple

    def convert(values: Sequence[Any]) -> tuple[Any, ...]:
        out = list(values)
        for i, f in steps:
            out[i] = f(out[i])
        return tuple(out)

    return convert


#: IN lists are padded (with their last value again) to one of these lengths, so that a
#: statement has a few SQL texts, each prepared once in the driver's statement cache
_SIZES = (1, 4, 16, 64, 256, CHUNK)


def _placeholder(dialect: Dialect, name: str) -> str:
    """The driver's placeholder for the parameter ``name`` (sqlite3: qmark; psycopg: pyformat)."""
    if dialect.paramstyle == "qmark":
        return "?"
    if dialect.paramstyle == "pyformat":
        return f"%({name})s"
    raise NotImplementedError(f"no placeholders for paramstyle {dialect.paramstyle}")


class Query:
    """A statement of the hot path, run through the driver (``driver``) with its SQL
    compiled once per dialect and IN-list length, its values and rows converted by the
    columns' types.

    SQLAlchemy's own execute expands the IN list, builds the parameters and a Row per
    result row on every call, which cost as much as SQLite's execution of these small
    statements (bench/README.md, issue 19). ``expanding``: the name of the statement's
    one expanding IN parameter (None: it has none). Rows come back as named tuples
    (``Query.Row``), their fields named as the statement's selected columns.
    """

    def __init__(self, stmt: Select[Any] | UpdateBase, expanding: str | None = None) -> None:
        self.stmt = stmt
        self.expanding = expanding
        columns = self.stmt.exported_columns  # a select's columns, or what a DML returns
        self._types = [c.type for c in columns]
        fields: list[Any] = list(columns.keys())
        self.Row: Any = namedtuple("Row", fields)  # type: ignore[misc]  # noqa: PYI024
        #: (dialect name, IN-list length) -> (sql, parameter maker, row maker)
        self._plans: dict[tuple[str, int], tuple[str, Any, Any]] = {}
        #: dialect name -> the parameters' names in the driver's order, their converters
        self._binds: dict[str, tuple[list[str], list[Any], bool]] = {}
        #: (dialect name, names given, names of the values alike in every row) -> plan
        self._value_plans: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Any] = {}

    def _plan(self, dialect: Dialect, size: int) -> tuple[str, Any, Any]:
        plan = self._plans.get((dialect.name, size))
        if plan is not None:
            return plan
        listed = self.expanding
        compiled = self.stmt.compile(dialect=dialect)
        binds = {compiled.bind_names[b]: b for b in compiled.binds.values()}  # as in the SQL
        sql = compiled.string
        # the IN list's values, named as its parameter, numbered: keys_1, keys_2, ...
        expanded = [f"{listed}_{i}" for i in range(1, size + 1)] if listed is not None else []
        if listed is not None:
            sql = sql.replace(
                f"__[POSTCOMPILE_{listed}]", ", ".join(_placeholder(dialect, n) for n in expanded)
            )
        names: list[str] = []
        if compiled.positional:
            for name in compiled.positiontup or ():
                names.extend(expanded if name == listed else [name])
        else:
            names = [n for n in binds if n != listed] + expanded
        types = [binds[n].type if n in binds else binds[str(listed)].type for n in names]
        processors = [t.dialect_impl(dialect).bind_processor(dialect) for t in types]
        convert = _converter(processors)
        if not size:
            self._binds[dialect.name] = (names, processors, bool(compiled.positional))
        #: the statement's own values (a literal in a where clause), used where none is given
        fixed = {n: b.effective_value for n, b in binds.items() if b.value is not None}
        positional = compiled.positional

        def params(given: Mapping[str, Any], values: Sequence[Any]) -> Any:
            merged = {**fixed, **given, **dict(zip(expanded, values, strict=True))}
            out = convert([merged[n] for n in names])
            return out if positional else dict(zip(names, out, strict=True))

        results = _converter(
            [t.dialect_impl(dialect).result_processor(dialect, None) for t in self._types]
        )
        make = self.Row._make
        plan = (sql, params, lambda row: make(results(row)))
        self._plans[(dialect.name, size)] = plan
        return plan

    def _padded(self, values: Sequence[Any]) -> tuple[int, Sequence[Any]]:
        """The IN list's padded length (0: the statement has none) and ``values`` padded."""
        if self.expanding is None:
            return 0, values
        size = next(s for s in _SIZES if s >= len(values))
        if size == len(values):
            return size, values
        return size, [*values, *[values[-1]] * (size - len(values))]

    def rows(
        self, conn: Connection, params: Mapping[str, Any] | None = None, values: Sequence[Any] = ()
    ) -> list[Any]:
        """The result rows for ``params`` and the IN list ``values`` (at most CHUNK of them;
        none: no rows, no statement)."""
        if self.expanding is not None and not values:
            return []
        size, values = self._padded(values)
        sql, make_params, make_row = self._plan(conn.dialect, size)
        return [make_row(row) for row in driver(conn, sql, make_params(params or {}, values))]

    def tuples(
        self, conn: Connection, params: Mapping[str, Any] | None = None, values: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """``rows``, as the driver gives them: no type converts a value (``converter``
        converts the ones a caller uses), no Row is made. For reads of many rows, where
        that costs more than the driver's own work."""
        if self.expanding is not None and not values:
            return []
        size, values = self._padded(values)
        sql, make_params, _ = self._plan(conn.dialect, size)
        return driver(conn, sql, make_params(params or {}, values))

    def converter(self, dialect: Dialect, start: int, stop: int) -> Callable[[Sequence[Any]], Any]:
        """The driver's values of the selected columns ``start:stop`` (as ``tuples`` gives
        them) -> as their types read them (``rows``)."""
        return _converter(
            [
                t.dialect_impl(dialect).result_processor(dialect, None)
                for t in self._types[start:stop]
            ]
        )

    def run(
        self, conn: Connection, params: Mapping[str, Any] | None = None, values: Sequence[Any] = ()
    ) -> None:
        """Execute (an UPDATE or DELETE), for each chunk of ``values`` when it has an IN list."""
        if self.expanding is None:
            sql, make_params, _ = self._plan(conn.dialect, 0)
            driver(conn, sql, make_params(params or {}, ()))
            return
        for part in chunks(values):
            size, padded = self._padded(part)
            sql, make_params, _ = self._plan(conn.dialect, size)
            driver(conn, sql, make_params(params or {}, padded))

    def many(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Execute once per row (executemany; no IN list)."""
        sql, make_params, _ = self._plan(conn.dialect, 0)
        params = [make_params(row, ()) for row in rows]
        if params:
            driver(conn, sql, params, many=True)

    def many_values(
        self,
        conn: Connection,
        names: Sequence[str],
        rows: Iterable[Sequence[Any]],
        same: Mapping[str, Any] | None = None,
    ) -> None:
        """``many`` for rows given as the values of the parameters ``names``, in that
        order, and ``same``: the values alike in every row, converted once. No dict per
        row (issue 16: re-applying rules writes 100,000 items at once)."""
        dialect = conn.dialect
        alike = tuple(same or ())
        made = (dialect.name, tuple(names), alike)
        plan = self._value_plans.get(made)
        if plan is None:
            sql, _, _ = self._plan(dialect, 0)
            order, processors, positional = self._binds[dialect.name]
            converters = [None if n in alike else f for n, f in zip(order, processors, strict=True)]
            make = _values_maker((*names, *alike), order, converters, positional)
            fixed = dict(zip(order, processors, strict=True))
            plan = self._value_plans[made] = (sql, make, fixed)
        sql, make, fixed = plan
        extra = tuple(
            value if fixed[name] is None else fixed[name](value)
            for name, value in (same or {}).items()
        )
        params = [make((*row, *extra)) for row in rows] if extra else [make(row) for row in rows]
        if params:
            driver(conn, sql, params, many=True)


def driver(conn: Connection, sql: str, params: Any, *, many: bool = False) -> list[Any]:
    """Run ``sql`` on the DBAPI cursor of ``conn``'s transaction (begun: the engine's BEGIN
    was emitted) and return its rows; a driver error raised as SQLAlchemy's, as
    ``exec_driver_sql`` would. Without the result object and the events around it, which
    cost more than SQLite's own work on a statement of a few rows."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()
