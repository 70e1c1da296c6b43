"""Datetimes go in aware and come back aware in UTC (schema.UTCDateTime), on a real
SQLite file (text, read back by a fast path) and the real PostgreSQL (timestamptz)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text, update

from aggregator.store import Store
from aggregator.store.schema import items
from tests.test_store import CST, T0, item, src


def published(store: Store) -> datetime:
    with store.engine.connect() as conn:
        value: datetime = conn.execute(select(items.c.published)).scalar_one()
        return value


def test_a_datetime_reads_back_aware_in_utc(store: Store) -> None:
    store.sync_config([src("a")], [], T0)
    store.apply_items("a", [item("k", "a", published=T0.astimezone(CST))], T0)
    got = published(store)
    assert got == T0 and got.tzinfo is UTC
    later = datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=CST)
    with store.engine.begin() as conn:
        conn.execute(update(items).values(published=later))
    got = published(store)
    assert got == later and got.tzinfo is UTC and got.microsecond == 123456


def test_sqlite_texts_of_other_shapes_read_back_aware(sqlite_url: str) -> None:
    """Texts written by others than this type (no fraction, an offset of their own) are
    read as the general way reads them."""
    store = Store.open(sqlite_url)
    try:
        store.sync_config([src("a")], [], T0)
        store.apply_items("a", [item("k", "a")], T0)
        for stored in ("2024-05-01 08:00:00", "2024-05-01 16:00:00+08:00", "2024-05-01T08:00"):
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE items SET published = :p"), {"p": stored})
            got = published(store)
            assert got == T0 and got.tzinfo is UTC, stored
    finally:
        store.close()
