"""Stories stored twice before canonical links joined them (a store made before 0010) are
merged once after the upgrade, on both databases: one entry per story, none lost, under the
id readers had first; the merged-away ids still find it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.request import urlopen

from sqlalchemy import text

from aggregator.config import load_config
from aggregator.dedupe import dedupe_feed
from aggregator.entryid import atom_id
from aggregator.model import Fetched, Item
from aggregator.parse import parse_feed
from aggregator.poll import open_store
from aggregator.rules import NO_RULES
from aggregator.store import Store
from tests.finews_api import aggregator
from tests.loopback import LoopbackServer
from tests.test_dedupe_poll import COPY, OTHER, STORY, id_of, ids, rss, write_config
from tests.test_store import T0, drop_canonical_links, item, setup

T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)


def old(key: str, source: str, link: str, **kw: object) -> Item:
    """A version as the release before 0010 stored it: no canonical link, no title key."""
    return item(key, source, link=link, guid=key, **kw)


def made_before_0010(db_url: str) -> None:
    """A store as the release before 0010 left it, with stories stored twice."""
    store = Store.open(db_url)
    try:
        setup(store, "a", "b", "c")
        store.apply_items(
            "a",
            [
                old("src:a:1", "a", "https://www.example.com/n/1"),
                old("src:a:2", "a", "https://example.com/n/2"),
                # one source, one link, two posts: never one entry
                old("src:a:3", "a", "https://example.com/live"),
                old("src:a:4", "a", "https://example.com/live#later"),
            ],
            T0,
        )
        store.apply_items(
            "b",
            [
                old(
                    "src:b:1", "b", "http://m.example.com/n/1/?utm_source=rss", categories=("tech",)
                ),
                old("src:b:9", "b", "https://example.com/n/9"),
            ],
            T1,
        )
        store.apply_items("c", [old("src:c:1", "c", "https://example.com/n/1?fbclid=x")], T2)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
            drop_canonical_links(conn)
    finally:
        store.close()


def summary(store: Store) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    return {e.key: (e.sources, e.categories) for e in store.entries(None, None)}


def test_stories_stored_twice_become_one_entry_once(db_url: str) -> None:
    made_before_0010(db_url)
    store = Store.open(db_url)  # migrates: nothing merged yet, every entry as it was
    try:
        assert sorted(summary(store)) == [
            "src:a:1",
            "src:a:2",
            "src:a:3",
            "src:a:4",
            "src:b:1",
            "src:b:9",
            "src:c:1",
        ]
        # every stored item's Atom id finds it (uuids filled in by the upgrade)
        found = store.provenance(atom_id("src:b:9", None))
        assert found is not None and found.key == "src:b:9"
        counter = store.change_counter()

        done = store.merge_duplicates(NO_RULES, T2)

        assert done.merged == 2
        assert done.categories == {"news", "tech"}
        assert summary(store) == {
            "src:a:1": (("a", "b", "c"), ("news", "tech")),  # the first-written id stays
            "src:a:2": (("a",), ("news",)),
            "src:a:3": (("a",), ("news",)),
            "src:a:4": (("a",), ("news",)),
            "src:b:9": (("b",), ("news",)),
        }
        assert {c.id: c.entry_count for c in store.categories()} == {"news": 5, "tech": 1}
        assert store.changed_since(counter).categories == {"news", "tech"}
        assert store.merged_away(counter) == ["src:b:1", "src:c:1"]
        # the merged-away ids find the entry they are now part of
        for gone in ("src:b:1", atom_id("src:b:1", None), atom_id("src:c:1", None)):
            found = store.provenance(gone)
            assert found is not None and found.key == "src:a:1", gone
        assert found is not None
        assert [(v.source_id, v.key, v.rule) for v in found.versions] == [
            ("a", "src:a:1", "first seen"),
            ("b", "src:b:1", "canonical link"),
            ("c", "src:c:1", "canonical link"),
        ]
        # once: a second start merges nothing, and the sources' next polls add no entry
        assert store.merge_duplicates(NO_RULES, T2).merged == 0
        again = store.apply_items(
            "b",
            [old("src:b:1", "b", "http://m.example.com/n/1/?utm_source=rss", categories=("tech",))],
            T2,
        )
        assert (again.new, again.unchanged) == (0, 1)
        edited = store.apply_items(
            "c", [old("src:c:1", "c", "https://example.com/n/1?fbclid=x", title="edited")], T2
        )
        assert (edited.new, edited.updated) == (0, 1)
        assert sorted(summary(store)) == ["src:a:1", "src:a:2", "src:a:3", "src:a:4", "src:b:9"]
    finally:
        store.close()


def test_a_new_store_has_nothing_to_merge(store: Store) -> None:
    setup(store, "a", "b")
    store.apply_items("a", [replace(old("src:a:1", "a", "https://example.com/1"))], T0)
    assert store.merge_duplicates(NO_RULES, T1).merged == 0
    assert store.merged_away(None) == []


def test_after_the_upgrade_the_feeds_show_each_story_once(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    """End to end: feeds written from a store made before 0010 show a story twice; the first
    poll after the upgrade rewrites them with it once, under the id the publisher's had."""
    loopback.add("/publisher.xml", rss(STORY, OTHER))
    loopback.add("/portal.xml", rss(COPY))
    config_path = write_config(tmp_path, loopback.url, db_url)
    with config_path.open("a", encoding="utf-8") as f:
        f.write('\n[posts]\ndir = "site"\nsite_url = "//example.org"\n')
    config = load_config(config_path)
    store = open_store(config)
    try:  # what the release before 0010 stored: no canonical links, so two entries
        for source in config.sources:
            body = loopback_feed(loopback, source.url)
            fetched = Fetched(source.url, 200, body, {}, datetime.now(UTC), 0.0)
            made = dedupe_feed(source, parse_feed(fetched, tz=config.aggregator.tz)).items
            plain = [replace(i, canon=None, title_norm=None) for i in made]
            store.apply_items(source.id, plain, T0)
        with store.engine.begin() as conn:  # its files: written before the upgrade
            conn.execute(text("DELETE FROM meta WHERE name = 'merge_duplicates'"))
    finally:
        store.close()
    built = aggregator("build", "-c", str(config_path))
    assert built.returncode == 0, built.stderr
    public, posts = tmp_path / "public", tmp_path / "site" / "_posts"
    story_id = id_of(public / "tech.atom", STORY[0])
    other_id = id_of(public / "tech.atom", OTHER[0])
    copy_id = id_of(public / "portal.atom", COPY[0])
    assert len(ids(public / "all.atom")) == 3 and len(list(posts.iterdir())) == 3
    with Store.open(db_url).engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
        drop_canonical_links(conn)

    polled = aggregator("poll", "-c", str(config_path))

    assert polled.returncode == 0, polled.stdout + polled.stderr
    assert "stories stored twice merged" in polled.stderr
    assert ids(public / "all.atom") == sorted([story_id, other_id])  # none twice, none lost
    assert ids(public / "tech.atom") == sorted([story_id, other_id])
    assert ids(public / "portal.atom") == [story_id]  # the portal's story, as readers had it
    assert len(list(posts.iterdir())) == 2
    explained = aggregator("explain", "-c", str(config_path), copy_id)
    assert explained.returncode == 0, explained.stderr
    assert f"entry {story_id}" in explained.stdout
    assert "canonical link" in explained.stdout
    again = aggregator("poll", "-c", str(config_path))
    assert "stories stored twice merged" not in again.stderr
    assert ids(public / "all.atom") == sorted([story_id, other_id])


def loopback_feed(server: LoopbackServer, url: str) -> bytes:
    with urlopen(url, timeout=10) as response:  # noqa: S310 - the loopback server
        return bytes(response.read())
