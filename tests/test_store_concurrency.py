"""Several writers on one database: instances starting together, pollers writing together."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from aggregator.config import SourceConfig
from aggregator.model import Category, Item
from aggregator.store import Store

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def run_together(workers: list[Callable[[], None]]) -> list[BaseException]:
    """Start every worker at the same moment; return what they raised."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # reported to the test, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def version(key: str, source: str, n: int) -> Item:
    return Item(
        key=key,
        source_id=source,
        priority=0,
        title=f"{key} from {source} #{n}",
        link=None,
        guid=None,
        infocode=key[3:],
        content_raw=f"<p>{source} {n}</p>",
        content_html=f"<p>{source} {n}</p>",
        summary_html=None,
        author=None,
        published=T0,
        updated=T0,
        categories=(f"cat-{source}",),
        content_hash=f"{source}-{n}",
    )


def test_instances_starting_together_migrate_once(db_url: str) -> None:
    def open_close() -> None:
        Store.open(db_url).close()

    script = "import sys; from aggregator.store import Store; Store.open(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", script, db_url]) for _ in range(3)]
    errors = run_together([open_close] * 4)
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert errors == []
    store = Store.open(db_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        store.close()


@pytest.mark.parametrize("engines", ["one", "two"])
def test_two_writers_never_hit_a_locked_database(db_url: str, engines: str) -> None:
    """Two pollers write the same items: threads of one Store, or two (as two processes)."""
    first = Store.open(db_url)
    stores = [first, first if engines == "one" else Store.open(db_url)]
    try:
        stores[0].sync_config(
            [
                SourceConfig(id=s, url=f"http://127.0.0.1/{s}", categories=(f"cat-{s}",))
                for s in ("a", "b")
            ],
            [Category("cat-a", "A"), Category("cat-b", "B")],
            T0,
        )
        keys = [f"ic:NW{n}" for n in range(40)]

        def poller(store: Store, source: str) -> Callable[[], None]:
            def work() -> None:
                for n in range(25):
                    now = T0 + timedelta(seconds=n)
                    store.apply_items(source, [version(k, source, n) for k in keys], now)
                    store.claim_due(now, 5, source, timedelta(seconds=1), ["a", "b"])
                    store.save_state(store.state(source), release_lease_of=source)
                    store.entries(f"cat-{source}", 10)

            return work

        assert run_together([poller(stores[0], "a"), poller(stores[1], "b")]) == []
        entries = stores[0].entries(None, 100)
        assert sorted(e.key for e in entries) == sorted(keys)
        assert {e.categories for e in entries} == {("cat-a", "cat-b")}
        assert {e.title.rsplit(" ", 1)[1] for e in entries} == {"#24"}
        assert stores[0].state("a").item_count == stores[0].state("b").item_count == 40
    finally:
        for store in set(stores):
            store.close()


def test_concurrent_claims_never_share_a_source(db_url: str) -> None:
    ids = [f"s{n:02}" for n in range(60)]
    stores = [Store.open(db_url) for _ in range(4)]
    try:
        stores[0].sync_config(
            [SourceConfig(id=s, url=f"http://127.0.0.1/{s}", categories=("c",)) for s in ids],
            [Category("c", "C")],
            T0,
        )
        claimed: dict[str, list[str]] = {}

        def claimer(store: Store, owner: str) -> Callable[[], None]:
            def work() -> None:
                got = claimed.setdefault(owner, [])
                for _ in range(10):
                    got.extend(
                        s.source_id for s in store.claim_due(T0, 2, owner, timedelta(1), ids)
                    )

            return work

        assert run_together([claimer(s, f"owner{n}") for n, s in enumerate(stores)]) == []
        everything = [sid for got in claimed.values() for sid in got]
        assert len(everything) == len(set(everything)) == 60
    finally:
        for store in stores:
            store.close()
