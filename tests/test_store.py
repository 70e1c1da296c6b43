"""The store on a real SQLite file and the real PostgreSQL (each test runs on both)."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Connection, select, text

import aggregator.store as store_pkg
from aggregator.config import SourceConfig
from aggregator.dedupe import content_hash
from aggregator.errors import StoreError
from aggregator.model import Category, Item, ParsedItem, PollStatus
from aggregator.store import Store
from aggregator.store.engine import head_revision, normalize_url
from aggregator.store.schema import item_versions

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
CST = timezone(timedelta(hours=8))
CATEGORIES = [Category("news", "News"), Category("tech", "Tech", "all about tech")]


def src(source_id: str, **kw: object) -> SourceConfig:
    base: dict[str, object] = {
        "id": source_id,
        "url": f"http://127.0.0.1/{source_id}.xml",
        "categories": ("news",),
    }
    base.update(kw)
    return SourceConfig.model_validate(base)


def item(key: str, source: str = "a", **kw: object) -> Item:
    """An Item whose content_hash follows its content, as the deduper's does."""
    base: dict[str, object] = {
        "key": key,
        "source_id": source,
        "priority": 0,
        "title": f"title {key}",
        "link": f"https://example.org/{key}",
        "guid": key,
        "infocode": None,
        "content_raw": f"<p>body of {key}</p>",
        "content_html": f"<p>body of {key}</p>",
        "summary_html": None,
        "author": None,
        "published": T0,
        "updated": T0,
        "categories": ("news",),
        "content_hash": "",
    }
    base.update(kw)
    made = Item(**base)  # type: ignore[arg-type]
    if not kw.get("content_hash"):
        seen = (made.title, made.link, made.content_raw, made.summary_html, made.author)
        stamp = (made.published, made.updated, made.categories)
        digest = hashlib.sha256(repr((seen, stamp)).encode()).hexdigest()
        made = replace(made, content_hash=digest)
    return made


def setup(store: Store, *ids: str, now: datetime = T0) -> None:
    store.sync_config([src(i) for i in ids or ("a",)], CATEGORIES, now)


def keys(store: Store, category: str | None = None, limit: int = 100) -> list[str]:
    return [e.key for e in store.entries(category, limit)]


# migrations ------------------------------------------------------------------


def test_open_twice_migrates_once(db_url: str) -> None:
    Store.open(db_url).close()
    store = Store.open(db_url)
    try:
        store.ping()
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert rows == [(head_revision(),)]
        assert head_revision() == "0015"
    finally:
        store.close()


def test_migrations_build_the_declared_schema(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from aggregator.store.schema import metadata

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_open_without_migrate_leaves_the_database_alone(db_url: str) -> None:
    store = Store.open(db_url, migrate=False)
    try:
        store.ping()
        with pytest.raises(StoreError):
            store.states()
    finally:
        store.close()


# sources -----------------------------------------------------------------------


def test_sync_config_creates_state_due_now_and_keeps_it(store: Store) -> None:
    setup(store, "a", "b")
    assert [(s.source_id, s.next_due_at, s.status) for s in store.states()] == [
        ("a", T0, PollStatus.NEVER),
        ("b", T0, PollStatus.NEVER),
    ]
    polled = replace(
        store.state("a"),
        status=PollStatus.OK,
        etag='"x"',
        last_poll_at=T0.astimezone(CST),
        next_due_at=T0 + timedelta(minutes=15),
        url="http://127.0.0.1/moved.xml",
    )
    store.save_state(polled)
    store.sync_config([src("a"), src("b"), src("c")], CATEGORIES, T0 + timedelta(hours=1))
    after = store.state("a")
    assert after == polled
    assert after.last_poll_at is not None and after.last_poll_at.tzinfo is not None
    assert after.last_poll_at.utcoffset() == timedelta(0)
    assert store.state("c").next_due_at == T0 + timedelta(hours=1)
    with pytest.raises(KeyError):
        store.state("nope")


def test_changed_url_forgets_the_learned_redirect(store: Store) -> None:
    setup(store, "a")
    store.save_state(replace(store.state("a"), url="http://127.0.0.1/moved", redirect_seen=2))
    store.sync_config([src("a", url="http://127.0.0.1/new.xml")], CATEGORIES, T0)
    state = store.state("a")
    assert (state.url, state.redirect_seen) == (None, 0)


def test_claim_due_leases_each_source_to_one_owner(store: Store) -> None:
    ids = [f"s{n}" for n in range(6)]
    setup(store, *ids)
    store.save_state(replace(store.state("s5"), next_due_at=T0 + timedelta(hours=1)))
    lease = timedelta(minutes=5)
    first = store.claim_due(T0, 3, "one", lease, ids)
    assert [s.source_id for s in first] == ["s0", "s1", "s2"]
    second = store.claim_due(T0, 10, "two", lease, ids)
    assert [s.source_id for s in second] == ["s3", "s4"]  # s5 not due yet
    assert store.claim_due(T0, 10, "three", lease, ids) == []
    assert store.claim_due(T0, 10, "one", lease, ids) == []  # not even its own again
    # only the named sources
    assert store.claim_due(T0 + lease, 10, "four", lease, ["s0"])[0].source_id == "s0"
    # an expired lease is claimable by another owner
    later = store.claim_due(T0 + lease, 10, "five", lease, ids)
    assert [s.source_id for s in later] == ["s1", "s2", "s3", "s4"]


def test_claiming_ahead_takes_sources_due_soon_but_no_lease_early(store: Store) -> None:
    setup(store, "a", "b")
    store.save_state(replace(store.state("b"), next_due_at=T0 + timedelta(seconds=1)))
    lease, ahead = timedelta(seconds=6), timedelta(seconds=2)
    claimed = store.claim_due(T0, 10, "one", lease, ["a", "b"], ahead=ahead)
    assert [(s.source_id, s.next_due_at) for s in claimed] == [
        ("a", T0),
        ("b", T0 + timedelta(seconds=1)),
    ]
    # leases run from ``now``, not from ``now + ahead``, and are honoured until then
    assert (
        store.claim_due(
            T0 + lease - timedelta(seconds=1), 10, "two", lease, ["a", "b"], ahead=ahead
        )
        == []
    )
    assert len(store.claim_due(T0 + lease, 10, "two", lease, ["a", "b"], ahead=ahead)) == 2


def test_renew_extends_only_the_owners_leases(store: Store) -> None:
    setup(store, "a", "b")
    lease = timedelta(seconds=6)
    store.claim_due(T0, 1, "one", lease, ["a"])
    store.claim_due(T0, 1, "two", lease, ["b"])
    later = T0 + timedelta(seconds=5)
    assert store.renew_leases("one", ["a", "b"], later + lease) == {"a"}
    assert store.renew_leases("one", [], later + lease) == set()
    # b's lease ran out at T0 + 6 s; a's now runs to T0 + 11 s
    taken = store.claim_due(T0 + lease, 10, "three", lease, ["a", "b"])
    assert [s.source_id for s in taken] == ["b"]
    assert store.renew_leases("two", ["b"], T0 + 2 * lease) == set()  # b is three's now


def test_save_state_releases_only_its_own_lease(store: Store) -> None:
    setup(store, "a", "b")
    lease = timedelta(minutes=5)
    a, b = store.claim_due(T0, 2, "one", lease, ["a", "b"])
    store.save_state(replace(a, next_due_at=T0), release_lease_of="two")
    store.save_state(replace(b, next_due_at=T0), release_lease_of="one")
    assert [s.source_id for s in store.claim_due(T0, 10, "two", lease, ["a", "b"])] == ["b"]


def test_disabled_sources_are_never_due(store: Store) -> None:
    store.sync_config([src("a", enabled=False), src("b")], CATEGORIES, T0)
    store.save_state(replace(store.state("b"), disabled_reason="410 Gone"))
    assert store.claim_due(T0, 10, "one", timedelta(minutes=1), ["a", "b"]) == []


def test_sources_gone_from_the_config_are_never_due(store: Store) -> None:
    setup(store, "a", "b")
    store.sync_config([src("b")], CATEGORIES, T0)  # a is removed, still due
    claimed = store.claim_due(T0, 10, "one", timedelta(minutes=1))  # no id list: all sources
    assert [s.source_id for s in claimed] == ["b"]


# items -------------------------------------------------------------------------


def test_apply_counts_new_changed_same(store: Store) -> None:
    setup(store)
    first = store.apply_items("a", [item("k1"), item("k2")], T0)
    assert (first.new, first.updated, first.unchanged) == (2, 0, 0)
    assert first.changed_categories == {"news"}
    assert first.changed_keys == {"k1", "k2"}
    again = store.apply_items("a", [item("k1"), item("k2", title="retitled")], T0 + timedelta(1))
    assert (again.new, again.updated, again.unchanged) == (0, 1, 1)
    assert again.changed_keys == {"k2"}
    assert store.state("a").item_count == 2
    known = store.known_versions("a", ["k1", "k2", "k3"])
    assert set(known) == {"k1", "k2"}
    assert known["k2"].content_hash == item("k2", title="retitled").content_hash
    assert known["k1"].content_raw == "<p>body of k1</p>"


def test_same_content_only_bumps_last_seen(store: Store) -> None:
    setup(store)
    store.apply_items("a", [item("k1")], T0)
    before = store.entries(None, 10)
    counter = store.change_counter()
    later = T0 + timedelta(hours=3)
    result = store.apply_items("a", [item("k1")], later)
    assert (result.new, result.updated, result.unchanged) == (0, 0, 1)
    assert result.changed_categories == frozenset()
    assert store.entries(None, 10) == before
    assert store.change_counter() == counter
    with store.engine.connect() as conn:
        assert conn.execute(select(item_versions.c.last_seen)).scalar_one() == later


def test_updated_of_new_and_changed_items(store: Store) -> None:
    setup(store)
    own = T0 + timedelta(minutes=5)
    store.apply_items(
        "a", [item("dated", updated=own), item("undated", published=None, updated=None)], T0
    )
    (dated,) = [e for e in store.entries(None, 10) if e.key == "dated"]
    (undated,) = [e for e in store.entries(None, 10) if e.key == "undated"]
    assert (dated.published, dated.updated) == (T0, own)
    now = T0 + timedelta(hours=2)
    assert (undated.published, undated.updated) == (T0, T0)  # first seen
    # a change without a newer own updated: updated = now
    store.apply_items("a", [item("dated", updated=own, title="changed")], now)
    assert store.entries(None, 10)[0].updated == now
    # a change with a newer own updated: that one
    newer = now + timedelta(hours=1)
    store.apply_items(
        "a", [item("dated", updated=newer, title="again")], now + timedelta(minutes=1)
    )
    entry = next(e for e in store.entries(None, 10) if e.key == "dated")
    assert (entry.title, entry.updated) == ("again", newer)


def test_datetimes_come_back_aware_utc(store: Store) -> None:
    setup(store)
    store.apply_items(
        "a", [item("k", published=T0.astimezone(CST), updated=T0.astimezone(CST))], T0
    )
    (entry,) = store.entries(None, 1)
    assert entry.published == T0 and entry.published.utcoffset() == timedelta(0)
    assert entry.updated.tzinfo is not None


def test_sources_merge_into_one_item(store: Store) -> None:
    setup(store, "a", "b")
    store.ensure_categories([Category("kejiribao", "科技日报新闻")])
    early = T0 - timedelta(hours=1)
    store.apply_items("a", [item("ic:NW1", "a", infocode="NW1", categories=("news",))], T0)
    result = store.apply_items(
        "b",
        [
            item(
                "ic:NW1",
                "b",
                infocode="NW1",
                priority=5,
                title="from b",
                author="科技日报",
                published=early,
                categories=("kejiribao", "tech"),
            )
        ],
        T0 + timedelta(minutes=1),
    )
    assert (result.new, result.updated) == (1, 0)
    assert result.changed_categories == {"news", "kejiribao", "tech"}
    assert keys(store) == ["ic:NW1"]
    for category in ("news", "tech", "kejiribao"):
        assert keys(store, category) == ["ic:NW1"]
    (entry,) = store.entries("news", 10)
    assert (entry.title, entry.author, entry.published) == ("from b", "科技日报", early)
    assert entry.categories == ("kejiribao", "news", "tech")
    assert entry.post_category == "kejiribao"
    assert entry.infocode == "NW1"


def test_merge_does_not_depend_on_poll_order(db_url: str) -> None:
    a = item("ic:NW1", "a", infocode="NW1", content_raw="x" * 50, categories=("news",))
    b = item("ic:NW1", "b", infocode="NW1", title="b wins", content_raw="y" * 60, published=T0)
    results = []
    for order in ((a, b), (b, a)):
        store = Store.open(db_url)
        try:
            with store.engine.begin() as conn:  # start each order from empty tables
                for table in ("item_categories", "item_versions", "items", "category_changes"):
                    conn.execute(text(f"DELETE FROM {table}"))
            setup(store, "a", "b")
            for n, version in enumerate(order):
                store.apply_items(version.source_id, [version], T0 + timedelta(minutes=n))
            results.append([replace(e, updated=T0) for e in store.entries(None, 10)])
        finally:
            store.close()
    assert results[0] == results[1]
    assert results[0][0].title == "b wins"


def test_a_category_the_item_left_is_told(store: Store) -> None:
    setup(store)
    store.apply_items("a", [item("k", categories=("news", "tech"))], T0)
    seen = store.change_counter()
    result = store.apply_items("a", [item("k", categories=("news",))], T0 + timedelta(1))
    assert result.changed_categories == {"news", "tech"}
    assert keys(store, "tech") == []
    changes = store.changed_since(seen)
    assert changes.categories == {"news", "tech"}
    assert changes.counter == store.change_counter() > seen
    assert store.changed_since(changes.counter).categories == frozenset()


def test_lower_priority_source_changes_nothing_visible(store: Store) -> None:
    setup(store, "a", "b")
    store.apply_items("a", [item("ic:1", "a", priority=1)], T0)
    before = store.entries(None, 10)
    result = store.apply_items(
        "b", [item("ic:1", "b", title="other", published=T0)], T0 + timedelta(1)
    )
    assert result.new == 1 and result.changed_keys == frozenset()
    assert store.entries(None, 10) == before


def test_entries_newest_first_ties_by_key(store: Store) -> None:
    setup(store)
    store.apply_items(
        "a",
        [
            item("b", published=T0),
            item("a", published=T0),
            item("c", published=T0 + timedelta(hours=1), categories=("tech",)),
            item("d", published=T0 - timedelta(hours=1), categories=("news", "tech")),
        ],
        T0,
    )
    assert keys(store) == ["c", "a", "b", "d"]
    assert keys(store, "news") == ["a", "b", "d"]
    assert keys(store, "tech") == ["c", "d"]
    assert keys(store, None, 2) == ["c", "a"]
    assert keys(store, "nothing") == []
    assert store.entries(None, 0) == []
    assert [e.key for e in store.entries("news", None)] == ["a", "b", "d"]


def test_categories_listing(store: Store) -> None:
    setup(store)
    store.ensure_categories([Category("kejiribao", "科技日报新闻"), Category("news", "ignored")])
    store.apply_items("a", [item("k1"), item("k2", categories=("news", "kejiribao"))], T0)
    infos = {c.id: c for c in store.categories()}
    assert [c.id for c in store.categories()] == ["news", "tech", "kejiribao"]
    assert infos["news"].title == "News" and infos["news"].origin == "config"
    assert infos["kejiribao"].origin == "publisher"
    assert (infos["news"].entry_count, infos["kejiribao"].entry_count) == (2, 1)
    assert infos["tech"].description == "all about tech" and infos["tech"].entry_count == 0
    assert infos["news"].updated == T0 and infos["tech"].updated is None


def test_categories_follow_the_config(store: Store) -> None:
    store.ensure_categories([Category("kejiribao", "科技日报新闻")])
    store.sync_config([src("a")], [Category("kejiribao", "Declared"), *CATEGORIES], T0)
    assert [c.id for c in store.categories()] == ["kejiribao", "news", "tech"]
    store.sync_config([src("a")], [CATEGORIES[0]], T0)
    infos = store.categories()
    assert [(c.id, c.origin) for c in infos] == [("news", "config"), ("kejiribao", "publisher")]


@pytest.mark.parametrize(
    ("categories", "publishers", "filed"),
    [
        (("news", "tech"), [], "news"),  # config order
        (("tech", "zzz"), [], "tech"),  # undeclared ones last
        (("news", "renminribao", "tech"), ["renminribao"], "renminribao"),  # publisher first
    ],
)
def test_post_category(
    store: Store, categories: tuple[str, ...], publishers: list[str], filed: str
) -> None:
    store.sync_config([src("a")], CATEGORIES, T0)
    store.ensure_categories([Category(p, p) for p in publishers])
    store.apply_items("a", [item("k", categories=categories)], T0)
    assert store.entries(None, 1)[0].post_category == filed


def test_memory_database() -> None:
    store = Store.open("sqlite://")
    try:
        setup(store)
        store.apply_items("a", [item("k")], T0)
        assert keys(store) == ["k"]
    finally:
        store.close()


def test_items_of_a_source_the_config_never_named(store: Store) -> None:
    result = store.apply_items("stray", [item("k", "stray")], T0)
    assert result.new == 1
    assert store.state("stray").item_count == 1


def test_items_of_another_source_are_refused(store: Store) -> None:
    setup(store)
    with pytest.raises(ValueError):
        store.apply_items("a", [item("k", "b")], T0)


def test_many_items_in_one_batch(store: Store) -> None:
    setup(store)
    batch = [item(f"k{n:05}", published=T0 + timedelta(seconds=n)) for n in range(1200)]
    assert store.apply_items("a", batch, T0).new == 1200
    assert store.apply_items("a", batch, T0).unchanged == 1200
    changed = [item(i.key, title="x", published=i.published) for i in batch]
    assert store.apply_items("a", changed, T0).updated == 1200
    assert keys(store, "news", 3) == ["k01199", "k01198", "k01197"]
    assert len(store.known_versions("a", [i.key for i in batch])) == 1200


# retention ---------------------------------------------------------------------


def test_prune_keeps_the_newest_per_category_and_tombstones_the_rest(store: Store) -> None:
    setup(store)
    old = [item(f"n{n}", published=T0 - timedelta(days=30, hours=n)) for n in range(4)]
    tech = [item("t0", published=T0 - timedelta(days=40), categories=("tech",))]
    store.apply_items("a", [*old, *tech, item("fresh")], T0)
    seen = store.change_counter()
    pruned = store.prune(T0 - timedelta(days=7), keep_per_category=2, now=T0)
    assert pruned == 3  # n1 (kept: fresh, n0), n2, n3; t0 is tech's newest
    assert keys(store, "news") == ["fresh", "n0"]
    assert keys(store, "tech") == ["t0"]
    assert store.state("a").item_count == 3
    assert store.changed_since(seen).categories == {"news"}
    assert store.tombstoned(["n1", "n2", "n0", "x"]) == {"n1", "n2"}
    again = store.apply_items("a", [*old, *tech], T0 + timedelta(days=1))
    assert again.tombstoned == 3 and again.new == 0
    assert keys(store, "news") == ["fresh", "n0"]
    assert store.prune(T0 - timedelta(days=7), keep_per_category=2, now=T0) == 0


# errors ------------------------------------------------------------------------


def test_dead_database_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        Store.open("postgresql://postgres@127.0.0.1:1/nothing")
    dead = Store.open("postgresql://postgres@127.0.0.1:1/nothing", migrate=False)
    with pytest.raises(StoreError) as caught:
        dead.ping()
    assert caught.value.__cause__ is not None
    with pytest.raises(StoreError):
        dead.states()


def test_unwritable_sqlite_path_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        Store.open("sqlite:////proc/aggregator-nowhere/x.db")


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        Store.open("not a url")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_url_rewriting(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


def test_store_error_when_a_table_is_gone(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        setup(store)
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE item_categories"))
        with pytest.raises(StoreError):
            store.entries("news", 10)
    finally:
        store.close()


# the one hash scheme --------------------------------------------------------------


def _migration(name: str) -> ModuleType:
    path = Path(store_pkg.__file__).parent / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"migration_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version_hash_scheme_is_unchanged() -> None:
    """Stored versions keep their hashes: polling unchanged content stores nothing after an
    upgrade (the values the hash gave before digest.py, by the same code)."""
    parsed = ParsedItem(
        guid="g",
        link="http://x/1?utm_source=a&id=2",
        title="科技日报 title",
        content="<p>正文 body</p>",
        summary="s",
        author="科技日报",
        published=T0,
        updated=T0,
    )
    assert content_hash(parsed, ["news", "kejiribao"]) == (
        "af0434c10e8eac2216d9f53c68decb839891ff38b001ade0e852cf3c6413799f"
    )
    assert content_hash(parsed, ["news"], "\ud800 lone") == (
        "5e11908ac237c3d253503d5664c3d74752cfacae793d5bdba749227027a76e90"
    )


def test_upgrade_to_the_one_hash_changes_no_item(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        setup(store, "a", "b")
        store.apply_items("a", [item("ic:NW1", "a", content_raw="<p>the longer body</p>")], T0)
        # the database as the release before the one hash left it: old-scheme merged hashes
        old = _migration("0004_one_hash")
        with store.engine.begin() as conn:
            downgrade(conn, "0011")  # texts back in the rows (0012)
            rows = conn.execute(select(old._ITEMS)).all()
            for row in rows:
                cats = conn.execute(
                    text("SELECT category_id FROM item_categories WHERE item_id = :i"),
                    {"i": row.id},
                ).scalars()
                legacy = old._old(old._fields(row, list(cats)))
                conn.execute(
                    text("UPDATE items SET content_hash = :h WHERE id = :i"),
                    {"h": legacy, "i": row.id},
                )
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
            for table in ("items", "item_versions"):  # and without what came after 0003
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN enclosures"))
            for column in ("dropped", "base_title"):  # 0006 (rules)
                conn.execute(text(f"ALTER TABLE items DROP COLUMN {column}"))
            conn.execute(text("DROP INDEX ix_items_changed"))  # 0007
            conn.execute(text("ALTER TABLE items DROP COLUMN changed"))
            for index in ("ix_items_first_seen", "ix_item_versions_arrivals"):  # 0008
                conn.execute(text(f"DROP INDEX {index}"))
            conn.execute(text("DROP TABLE source_events"))
            conn.execute(text("ALTER TABLE sources DROP COLUMN health"))
            for column in ("removed", "key_id"):  # 0009
                conn.execute(text(f"ALTER TABLE sources DROP COLUMN {column}"))
            drop_canonical_links(conn)  # 0010
        store.close()
        store = Store.open(db_url)  # migrates to head
        before = [replace(e, sources=()) for e in store.entries(None, None)]
        # a second source carries the item, losing the merge: what readers see is the same
        later = store.apply_items("b", [item("ic:NW1", "b", content_raw="<p>short</p>")], T1)
        assert later.changed_keys == frozenset() and not later.changed_categories
        assert [replace(e, sources=()) for e in store.entries(None, None)] == before
    finally:
        store.close()


def drop_plain_texts(conn: Connection) -> None:
    """A store before 0014: no body's plain text kept beside it."""
    from sqlalchemy import inspect

    if inspect(conn).has_table("bodies") and "plain_text" in {
        c["name"] for c in inspect(conn).get_columns("bodies")
    }:
        conn.execute(text("ALTER TABLE bodies DROP COLUMN plain_text"))


def drop_applied_rules(conn: Connection) -> None:
    """A store before 0013: the rules its items were made with known by digest only."""
    drop_plain_texts(conn)
    conn.execute(text("DROP TABLE IF EXISTS applied_rules"))


def drop_bodies(conn: Connection) -> None:
    """A store before 0012: the texts in the rows (0012's own downgrade), if not already."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import inspect

    drop_applied_rules(conn)
    if not inspect(conn).has_table("bodies"):
        return
    with Operations.context(MigrationContext.configure(conn)):
        _migration("0012_bodies_once").downgrade()


def drop_entry_ids(conn: Connection) -> None:
    """A store before 0011: no stored uuids, no aliases, no merge asked for."""
    drop_bodies(conn)
    conn.execute(text("DROP INDEX ix_items_uuid"))
    conn.execute(text("ALTER TABLE items DROP COLUMN uuid"))
    conn.execute(text("DROP TABLE item_aliases"))
    conn.execute(text("DELETE FROM meta WHERE name = 'merge_duplicates'"))


def downgrade(conn: Connection, revision: str) -> None:
    """The schema as ``revision`` left it, by the migrations' own downgrades."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from aggregator.store.engine import MIGRATIONS

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)


def drop_canonical_links(conn: Connection) -> None:
    """The item_versions of a store before 0010 (canonical links), and nothing after."""
    drop_entry_ids(conn)
    for index in ("ix_item_versions_canon", "ix_item_versions_title_norm_published"):
        conn.execute(text(f"DROP INDEX {index}"))
    for column in ("canon", "title_norm", "merged_by"):
        conn.execute(text(f"ALTER TABLE item_versions DROP COLUMN {column}"))


@pytest.mark.parametrize(
    "ids", [("a b",), ("",), ("a", ""), ("a", " b"), ("a\tb", "c"), ("a b", "")]
)
def test_category_ids_must_each_be_one_word(ids: tuple[str, ...]) -> None:
    """A stored id list is split on whitespace when read: an id that is not one word (blank,
    or holding whitespace) would come back as other ids, so it is refused on the way in."""
    from sqlalchemy.dialects import sqlite

    from aggregator.store.schema import IdList

    with pytest.raises(ValueError, match="not an id"):
        IdList().process_bind_param(ids, sqlite.dialect())
    assert IdList().process_bind_param(("a", "b-c", "d_1"), sqlite.dialect()) == "a b-c d_1"
