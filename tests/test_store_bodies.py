"""Each body stored once (issue 19): shared by versions and merged items, raw bodies only
where a post is written from them, unused ones deleted, and the upgrade from 0011."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, func, select, text

from aggregator.dedupe import dedupe_feed
from aggregator.digest import fields_digest
from aggregator.model import Category, Entry, Fetched, Item
from aggregator.parse import parse_feed
from aggregator.posts import render_post
from aggregator.sanitize import clean_html
from aggregator.store import Store
from aggregator.store.merge import Merged, merge_versions
from aggregator.store.schema import bodies, item_versions, items
from tests.test_store import CATEGORIES, T0, T1, downgrade, item, src

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "feeds"
NEWS = Category("news", "News")
UNSAFE = '<p onclick="x()">unsafe <script>alert(1)</script>body</p>'
SAFE = '<p class="em_media">safe as given</p>'  # kept: the sanitizer drops ``class``
PLAIN = "<p>raw and sanitized alike</p>"


def body_item(key: str, raw: str, source: str = "a", **kw: object) -> Item:
    return item(key, source, content_raw=raw, content_html=clean_html(raw), **kw)


def count(store: Store, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def post(entry: Entry) -> bytes:
    return render_post(entry, NEWS, "https://site.example")


def test_one_body_row_for_every_version_and_item_that_says_it(store: Store) -> None:
    store.sync_config([src("a"), src("b", priority=1)], CATEGORIES, T0)
    same = "<p>the wire story</p>"
    store.apply_items("a", [body_item("ic:NW1", same), body_item("k2", "<p>other</p>")], T0)
    store.apply_items("b", [body_item("ic:NW1", same, "b", priority=1)], T1)
    assert count(store, bodies) == 2
    with store.engine.connect() as conn:
        named = conn.execute(
            select(item_versions.c.body).where(item_versions.c.key == "ic:NW1")
        ).scalars()
        merged = conn.execute(select(items.c.body).where(items.c.key == "ic:NW1")).scalar_one()
    assert set(named) == {merged}
    assert {e.key: e.content_html for e in store.entries(None, None)} == {
        "ic:NW1": same,
        "k2": "<p>other</p>",
    }


def test_a_raw_body_is_kept_only_where_its_post_is_written_from_it(store: Store) -> None:
    store.sync_config([src("a")], CATEGORIES, T0)
    given = {"unsafe": UNSAFE, "safe": SAFE, "plain": PLAIN}
    store.apply_items("a", [body_item(k, raw) for k, raw in given.items()], T0)
    entries = {e.key: e for e in store.entries(None, None)}
    assert entries["unsafe"].content_raw is None  # its post is the sanitized body
    assert entries["safe"].content_raw == SAFE
    assert entries["plain"].content_raw == PLAIN
    with store.engine.connect() as conn:
        rows = conn.execute(select(bodies.c.content_raw, bodies.c.raw_is_html)).all()
    assert sorted(rows, key=repr) == sorted(
        [(None, False), (SAFE, False), (None, True)], key=repr
    )  # the plain one: its raw body is its sanitized body, written once
    for key, raw in given.items():  # the posts are what they were with every raw body kept
        was = replace(entries[key], content_raw=raw)
        assert post(entries[key]) == post(was)
    assert b"em_media" in post(entries["safe"])


def test_a_body_no_version_names_any_more_is_deleted(store: Store) -> None:
    store.sync_config([src("a"), src("b")], CATEGORIES, T0)
    store.apply_items("a", [body_item("ic:NW1", "<p>first</p>")], T0)
    store.apply_items("b", [body_item("ic:NW1", "<p>first</p>", "b")], T0)
    store.apply_items("a", [body_item("ic:NW1", "<p>second</p>")], T1)
    assert count(store, bodies) == 2  # b still says "first"
    store.apply_items("b", [body_item("ic:NW1", "<p>second, longer</p>", "b")], T1)
    with store.engine.connect() as conn:
        left = set(conn.execute(select(bodies.c.content_html)).scalars())
    assert left == {"<p>second</p>", "<p>second, longer</p>"}
    assert [e.content_html for e in store.entries(None, None)] == ["<p>second, longer</p>"]
    assert store.prune(T1 + timedelta(days=1), 0, now=T1) == 1
    assert count(store, bodies) == 0


# the upgrade from 0011 --------------------------------------------------------------


def fixture_items(source: str, priority: int) -> list[Item]:
    """Every version the real fixture feeds give, as ``source`` would store them."""
    found: list[Item] = []
    config = src(source, priority=priority)
    for path in sorted(FIXTURES.iterdir()):
        if path.suffix not in (".xml", ".atom") or path.name.startswith("bad__"):
            continue
        fetched = Fetched(
            f"http://127.0.0.1/{path.name}",
            200,
            path.read_bytes(),
            {"content-type": "application/xml"},
            T0,
            0.0,
        )
        found += dedupe_feed(config, parse_feed(fetched, tz=ZoneInfo("UTC"))).items
    unique: dict[str, Item] = {}
    for one in found:
        unique.setdefault(one.key, one)
    return list(unique.values())


def as_0011_wrote_them(store: Store, given: dict[tuple[str, str], Item]) -> dict[str, str]:
    """Downgrade, and put back what 0011's code stored: every raw body as given, and the
    merged hashes over them. Returns item key -> raw body of its post's entry."""
    raws: dict[str, str] = {}
    with store.engine.begin() as conn:
        downgrade(conn, "0011")
        for (source, key), version in given.items():
            conn.execute(
                text("UPDATE item_versions SET content_raw = :r WHERE source_id = :s AND key = :k"),
                {"r": version.content_raw, "s": source, "k": key},
            )
        rows = conn.execute(text("SELECT id, key, title, published FROM items ORDER BY id")).all()
        for row in rows:
            carried = conn.execute(
                text("SELECT source_id, key FROM item_versions WHERE item_id = :i"), {"i": row.id}
            ).all()
            merged = merge_versions([given[(v.source_id, v.key)] for v in carried])
            filed = conn.execute(
                text("SELECT category_id FROM item_categories WHERE item_id = :i"), {"i": row.id}
            ).scalars()
            shown = replace(merged, title=row.title, categories=tuple(sorted(filed)))
            conn.execute(
                text("UPDATE items SET content_raw = :r, content_hash = :h WHERE id = :i"),
                {
                    "r": merged.content_raw,
                    "h": pre_0015_hash(shown, _published(conn, row.id)),
                    "i": row.id,
                },
            )
            if merged.content_raw is not None:
                raws[row.key] = merged.content_raw
    return raws


def pre_0015_hash(merged: Merged, published: datetime) -> str:
    """merge.py's merged_hash before 0015, as it was: the body's three texts in it."""
    fields: tuple[str, ...] = (
        merged.title,
        merged.link or "",
        merged.content_html or "",
        merged.content_raw or "",
        merged.summary_html or "",
        merged.author or "",
        published.astimezone(UTC).isoformat(),
        " ".join(merged.categories),
        merged.infocode or "",
    )
    if merged.enclosures:
        fields += ("+enclosures", *(e.as_text() for e in merged.enclosures))
    return fields_digest(fields)


def _published(conn: Connection, item_id: int) -> datetime:
    """Read through the schema's type: aware UTC on either database."""
    return conn.execute(select(items.c.published).where(items.c.id == item_id)).scalar_one()


def test_the_upgrade_from_0011_changes_no_output_and_no_hash(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        store.sync_config([src("a"), src("b", priority=1)], CATEGORIES, T0)
        a = fixture_items("a", 0) + [body_item(k, r) for k, r in (("u", UNSAFE), ("s", SAFE))]
        b = fixture_items("b", 1) + [body_item("p", PLAIN, "b", priority=1)]
        assert any(i.content_raw != bodies_kept(i) for i in a)  # raw bodies the upgrade drops
        store.apply_items("a", a, T0)
        store.apply_items("b", b, T1)
        entries = store.entries(None, None)
        assert len(entries) > 20 and any(len(e.sources) == 2 for e in entries)
        with store.engine.connect() as conn:
            hashes = dict(conn.execute(select(items.c.key, items.c.content_hash)).all())
        raws = as_0011_wrote_them(store, {(i.source_id, i.key): i for i in (*a, *b)})
        # what 0011 wrote: each post from the raw body as given
        posts_0011 = [post(replace(e, content_raw=raws.get(e.key))) for e in entries]
        store.close()

        store = Store.open(db_url)  # migrates to head
        after = store.entries(None, None)
        assert after == entries
        assert [post(e) for e in after] == posts_0011
        with store.engine.connect() as conn:
            assert dict(conn.execute(select(items.c.key, items.c.content_hash)).all()) == hashes
        texts = {(e.content_html, e.summary_html, e.content_raw) for e in entries}
        assert count(store, bodies) == len(texts - {(None, None, None)})  # a's and b's shared
        # the sources serve the same again: nothing changes
        assert store.apply_items("a", a, T1 + timedelta(hours=1), force=True).changed_keys == (
            frozenset()
        )
        assert store.entries(None, None) == entries
    finally:
        store.close()


def bodies_kept(version: Item) -> str | None:
    from aggregator.postbody import post_raw

    return post_raw(version.content_raw)


def test_the_downgrade_puts_the_texts_back(store: Store) -> None:
    store.sync_config([src("a")], CATEGORIES, T0)
    store.apply_items("a", [body_item("s", SAFE), body_item("p", PLAIN)], T0)
    with store.engine.begin() as conn:
        downgrade(conn, "0011")
        rows = conn.execute(
            text("SELECT key, content_raw, content_html FROM items ORDER BY key")
        ).all()
    assert [tuple(r) for r in rows] == [("p", PLAIN, PLAIN), ("s", SAFE, clean_html(SAFE))]


def test_rows_copied_in_are_the_rows_executemany_writes(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bulk.COPY (PostgreSQL): the same entries and bodies, a body met twice stored once."""
    from aggregator.store import bulk

    seen: dict[bool, tuple[list[Entry], int]] = {}
    for copy in (False, True):
        monkeypatch.setattr(bulk, "COPY", copy)
        store = Store.open(pg_url)
        try:
            with store.engine.begin() as conn:  # one schema for both: empty it
                conn.execute(text("DELETE FROM items"))
                conn.execute(text("DELETE FROM bodies"))
            store.sync_config([src("a"), src("b")], CATEGORIES, T0)
            store.apply_items("a", [body_item(k, r) for k, r in (("u", UNSAFE), ("s", SAFE))], T0)
            store.apply_items("b", [body_item("u", UNSAFE, "b"), body_item("p", PLAIN, "b")], T1)
            seen[copy] = (store.entries(None, None), count(store, bodies))
        finally:
            store.close()
    assert seen[True] == seen[False]
    assert seen[True][1] == 3
