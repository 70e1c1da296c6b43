"""Applies made at once share one commit (store/group.py), and one that fails fails alone."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, make_url

from aggregator.store import Store
from aggregator.store.engine import ITEMS_LOCK
from tests.test_store import CATEGORIES, T0, item, src


@contextmanager
def writer_held(db_url: str) -> Iterator[None]:
    """Another connection holds what an item writer waits for: SQLite's write lock, or the
    items advisory lock on PostgreSQL."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(str(url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    options = url.query.get("options")
    conninfo = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, options=str(options or "")) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (ITEMS_LOCK,))
        try:
            yield
        finally:
            other.execute("SELECT pg_advisory_unlock(%s)", (ITEMS_LOCK,))


def applies_at_once(store: Store, db_url: str, batches: dict[str, list[Any]]) -> dict[str, Any]:
    """Apply every source's batch from a thread of its own while the writer is held, so
    the first waits in its transaction and the others queue behind it; their outcomes."""
    outcomes: dict[str, Any] = {}
    queued = threading.Event()

    def apply(source: str) -> None:
        try:
            outcomes[source] = store.apply_items(source, batches[source], T0)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcomes[source] = exc

    threads = [threading.Thread(target=apply, args=(s,)) for s in batches]
    with writer_held(db_url):
        for thread in threads:
            thread.start()
        while not queued.is_set():  # every apply is in: one writing (waiting), the rest queued
            with store._applies._changed:
                if store._applies._busy and len(store._applies._queue) == len(batches) - 1:
                    queued.set()
                else:
                    store._applies._changed.wait(0.05)
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.fixture
def commits(store: Store) -> list[int]:
    made: list[int] = []
    event.listen(store.engine, "commit", lambda conn: made.append(1))
    return made


def test_applies_made_at_once_share_one_commit(
    store: Store, db_url: str, commits: list[int]
) -> None:
    store.sync_config([src(s) for s in "abcd"], CATEGORIES, T0)
    commits.clear()
    batches = {s: [item(f"{s}{n}", s) for n in range(3)] for s in "abcd"}
    outcomes = applies_at_once(store, db_url, batches)
    assert {s: r.new for s, r in outcomes.items()} == {s: 3 for s in "abcd"}
    assert len(commits) == 2  # the first alone (it held the writer), the three queued together
    assert sorted(e.key for e in store.entries(None, None)) == sorted(
        f"{s}{n}" for s in "abcd" for n in range(3)
    )


def test_an_apply_that_fails_fails_alone(store: Store, db_url: str, commits: list[int]) -> None:
    store.sync_config([src(s) for s in "abcd"], CATEGORIES, T0)
    batches = {s: [item(f"{s}{n}", s) for n in range(3)] for s in "abcd"}
    batches["c"] = [item("c0", "c"), item("x0", "x")]  # an item of another source: refused
    outcomes = applies_at_once(store, db_url, batches)
    assert isinstance(outcomes.pop("c"), ValueError)
    assert {s: r.new for s, r in outcomes.items()} == {s: 3 for s in "abd"}
    assert sorted(e.key for e in store.entries(None, None)) == sorted(
        f"{s}{n}" for s in "abd" for n in range(3)
    )
