"""Categories' entry counts and newest ``updated``, kept by the writers (counts.py), always
equal a fresh GROUP BY over the items; on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import func, select, update

from aggregator.model import Category
from aggregator.store import Store
from aggregator.store.engine import MIGRATIONS
from aggregator.store.schema import categories, item_categories, items
from tests.test_store import CATEGORIES, T0, item, setup, src

LATER = T0 + timedelta(hours=20)  #: ahead, but within the day a date may run ahead


def fresh(store: Store) -> dict[str, tuple[int, datetime | None]]:
    """What the maintained columns must say: counted from the items themselves."""
    ic = item_categories.c
    stmt = (
        select(categories.c.id, func.count(ic.item_id), func.max(items.c.updated))
        .select_from(
            categories.outerjoin(item_categories, ic.category_id == categories.c.id).outerjoin(
                items, items.c.id == ic.item_id
            )
        )
        .group_by(categories.c.id)
    )
    with store.engine.connect() as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(stmt)}


def kept(store: Store) -> dict[str, tuple[int, datetime | None]]:
    return {c.id: (c.entry_count, c.updated) for c in store.categories()}


def check(store: Store) -> dict[str, tuple[int, datetime | None]]:
    now = kept(store)
    assert now == fresh(store)
    return now


def test_new_items_count_and_date_their_categories(store: Store) -> None:
    setup(store)
    assert check(store) == {"news": (0, None), "tech": (0, None)}
    store.apply_items(
        "a",
        [
            item("n1", updated=T0),
            item("n2", updated=T0 + timedelta(hours=2)),
            item("b1", categories=("news", "tech"), updated=T0 + timedelta(hours=1)),
        ],
        T0,
    )
    assert check(store) == {
        "news": (3, T0 + timedelta(hours=2)),
        "tech": (1, T0 + timedelta(hours=1)),
    }


def test_a_change_that_moves_an_item_between_categories(store: Store) -> None:
    setup(store)
    store.apply_items("a", [item("n1"), item("n2", updated=T0 + timedelta(hours=1))], T0)
    # n2, news's newest, moves to tech: news's newest is read again from its items
    now = T0 + timedelta(hours=5)
    store.apply_items("a", [item("n2", categories=("tech",), title="moved")], now)
    assert check(store) == {"news": (1, T0), "tech": (1, now)}
    # and back, with a third category it does not have a row for (yet)
    store.apply_items("a", [item("n2", categories=("news", "later"), title="back")], now)
    assert check(store) == {"news": (2, now), "tech": (0, None)}
    store.ensure_categories([Category("later", "Later")])
    assert check(store)["later"] == (1, now)


def test_an_updated_that_goes_back_reads_the_newest_again(store: Store) -> None:
    setup(store)
    store.apply_items("a", [item("n1"), item("future", updated=LATER)], T0)
    assert check(store)["news"] == (2, LATER)
    # changed: its own updated is not newer than the stored one, so it gets ``now`` (earlier)
    now = T0 + timedelta(hours=1)
    store.apply_items("a", [item("future", updated=LATER, title="changed")], now)
    assert check(store)["news"] == (2, now)


def test_multi_source_merges(store: Store) -> None:
    setup(store, "a", "b")
    store.apply_items("a", [item("ic:1"), item("n1", updated=T0 - timedelta(hours=1))], T0)
    t1 = T0 + timedelta(hours=1)
    # b carries the same story under tech, more richly: the merged item is in both
    store.apply_items(
        "b",
        [item("ic:1", source="b", categories=("tech",), content_raw="<p>" + "x" * 99 + "</p>")],
        t1,
    )
    assert check(store) == {"news": (2, t1), "tech": (1, t1)}
    # b says it again unchanged: nothing moves
    store.apply_items(
        "b",
        [item("ic:1", source="b", categories=("tech",), content_raw="<p>" + "x" * 99 + "</p>")],
        t1 + timedelta(hours=1),
    )
    assert check(store) == {"news": (2, t1), "tech": (1, t1)}
    # a moves its version to tech too: the merged item leaves news
    t2 = T0 + timedelta(hours=3)
    store.apply_items("a", [item("ic:1", categories=("tech",), title="again")], t2)
    assert check(store) == {"news": (1, T0 - timedelta(hours=1)), "tech": (1, t2)}
    # many items across both sources in one batch each
    batch_a = [item(f"m{i}", categories=(("news", "tech")[i % 2],)) for i in range(30)]
    batch_b = [
        item(f"m{i}", source="b", categories=("tech",), title=f"b {i}") for i in range(0, 30, 3)
    ]
    store.apply_items("a", batch_a, t2)
    store.apply_items("b", batch_b, t2 + timedelta(hours=1))
    check(store)


def test_prunes(store: Store) -> None:
    setup(store)
    old = T0 - timedelta(days=30)
    batch = [
        item(
            f"o{i}",
            categories=(("news",), ("tech",), ("news", "tech"))[i % 3],
            published=old + timedelta(hours=i),
            updated=old + timedelta(hours=i),
        )
        for i in range(12)
    ]
    # an old story changed recently: the newest ``updated`` of its categories, and pruned
    batch.append(item("stale", published=old - timedelta(days=1), updated=T0))
    store.apply_items("a", batch, T0)
    assert check(store)["news"][1] == T0
    assert store.prune(T0 - timedelta(days=7), keep_per_category=2, now=T0) > 0
    after = check(store)
    assert after["news"][0] == 2 and after["news"][1] < T0
    assert store.prune(T0 + timedelta(days=1), keep_per_category=0, now=T0) > 0
    assert check(store) == {"news": (0, None), "tech": (0, None)}


def test_categories_declared_again_are_counted(store: Store) -> None:
    setup(store)
    store.apply_items("a", [item("t1", categories=("tech",)), item("n1")], T0)
    store.sync_config([src("a")], CATEGORIES[:1], T0)  # tech no longer declared: not listed
    assert set(kept(store)) == {"news"}
    store.apply_items("a", [item("t2", categories=("tech",), updated=LATER)], T0)
    store.sync_config([src("a")], CATEGORIES, T0)
    assert check(store)["tech"] == (2, LATER)


def test_the_migration_fills_the_counts_of_a_store_made_before_them(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        setup(store, "a", "b")
        store.apply_items("a", [item("n1"), item("b1", categories=("news", "tech"))], T0)
        store.apply_items("b", [item("b1", source="b", title="b")], T0)
        with store.engine.begin() as conn:
            conn.execute(update(categories).values(entry_count=0, updated=None))
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
            command.upgrade(cfg, "head")
        assert check(store) == {"news": (2, T0), "tech": (1, T0)}
    finally:
        store.close()
