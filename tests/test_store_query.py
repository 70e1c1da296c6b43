"""store/bulk.Query: the hot statements run on the driver give what SQLAlchemy's execute gives
(IN lists of any length, padded or chunked; values and rows converted by the column types),
and a driver error is raised as SQLAlchemy's, which the Store translates (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from aggregator.store import Store, bulk
from aggregator.store.bulk import Inserts, Query
from aggregator.store.schema import tombstones

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
_t = tombstones.c
_SELECT = select(_t.key, _t.pruned_at).where(_t.key.in_(bindparam("keys", expanding=True)))
_QUERY = Query(_SELECT, "keys")
_MOVE = Query(
    update(tombstones)
    .where(_t.key.in_(bindparam("keys", expanding=True)))
    .values(pruned_at=bindparam("at")),
    "keys",
)
_ADD = Query(insert(tombstones).values(key=bindparam("key"), pruned_at=bindparam("at")))
_SET = Query(
    update(tombstones).where(_t.key == bindparam("b_key")).values(pruned_at=bindparam("at"))
)
_INSERTS = Inserts(tombstones, ("pruned_at", "key"))


@pytest.mark.parametrize("size", [1, 3, 4, 5, 17, 300, 500])
def test_rows_equal_sqlalchemys(db_url: str, size: int) -> None:
    store = Store.open(db_url)
    try:
        with store.engine.begin() as conn:
            _ADD.many(
                conn, ({"key": f"k{i:04}", "at": T0 + timedelta(seconds=i)} for i in range(600))
            )
            # every other key asked is stored; a key twice is one row
            asked = [f"k{i * 2:04}" if i % 2 else f"missing{i}" for i in range(size)]
            asked += asked[:1]
            got = _QUERY.rows(conn, values=asked[:500])
            want = conn.execute(_SELECT, {"keys": asked[:500]}).all()
        assert sorted(tuple(r) for r in got) == sorted(tuple(r) for r in want)
        assert all(r.pruned_at.tzinfo is not None for r in got)  # converted, not driver text
        assert [r.key for r in got] == [r.key for r in got if r.key.startswith("k")]
    finally:
        store.close()


def test_run_chunks_a_long_list_and_errors_are_sqlalchemys(db_url: str) -> None:
    store = Store.open(db_url)
    later = T0 + timedelta(days=1)
    try:
        with store.engine.begin() as conn:
            _ADD.many(conn, ({"key": f"k{i:04}", "at": T0} for i in range(1200)))
            _MOVE.run(conn, {"at": later}, [f"k{i:04}" for i in range(1100)])  # three chunks
            moved = conn.execute(select(_t.key).where(_t.pruned_at == later)).scalars().all()
        assert len(moved) == 1100
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            _ADD.many(conn, [{"key": "k0001", "at": T0}])
    finally:
        store.close()


def stored(conn: Connection) -> list[tuple[str, object]]:
    """The rows as the database holds them (no type converts them back)."""
    return [
        tuple(r) for r in conn.execute(text("SELECT key, pruned_at FROM tombstones ORDER BY key"))
    ]


@pytest.mark.parametrize("copy", [True, False])
def test_values_given_in_order_are_written_as_dicts_are(
    db_url: str, copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inserts.execute_values and Query.many_values (issue 16) store what execute and many
    store: each value converted by its column's type, ``same`` once for every row."""
    monkeypatch.setattr(bulk, "COPY", copy)
    later = T0 + timedelta(days=1, microseconds=5)
    written: list[list[tuple[str, object]]] = []
    for by_values in (False, True):
        store = Store.open(db_url)
        try:
            with store.engine.begin() as conn:
                conn.execute(text("DELETE FROM tombstones"))
                rows = [(T0 + timedelta(seconds=i), f"k{i:04}") for i in range(700)]
                if by_values:
                    _INSERTS.execute_values(conn, rows)
                    _SET.many_values(conn, ("b_key",), [(k,) for _, k in rows[:300]], {"at": later})
                    _SET.many_values(conn, ("at", "b_key"), [(T0, "k0400")])
                else:
                    _INSERTS.execute(conn, [{"pruned_at": at, "key": k} for at, k in rows])
                    _SET.many(conn, [{"b_key": k, "at": later} for _, k in rows[:300]])
                    _SET.many(conn, [{"at": T0, "b_key": "k0400"}])
                written.append(stored(conn))
                got = dict(conn.execute(select(_t.key, _t.pruned_at)).all())
            assert (got["k0000"], got["k0300"], got["k0400"]) == (
                later,
                T0 + timedelta(seconds=300),
                T0,
            )
        finally:
            store.close()
    assert written[0] == written[1] and len(written[0]) == 700
