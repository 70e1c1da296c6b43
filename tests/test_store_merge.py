"""The merge policy (pure): which version's title and body win, and what is combined; the
merged hash over the body's key, and the upgrade that carried stored hashes over to it."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Connection, select

from aggregator.model import Enclosure, Item
from aggregator.store import Store
from aggregator.store import bodies as texts
from aggregator.store.bodies import digest
from aggregator.store.merge import Merged, merge_versions, merged_hash
from aggregator.store.schema import item_categories, items
from tests.test_store import downgrade, item, src
from tests.test_store_bodies import SAFE, UNSAFE, body_item, fixture_items, pre_0015_hash
from tests.test_store_rules import CATEGORIES, rules, statements

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
CST = timezone(timedelta(hours=8))


def version(source: str, **kw: object) -> Item:
    base: dict[str, object] = {
        "key": "ic:NW1",
        "source_id": source,
        "priority": 0,
        "title": f"title from {source}",
        "link": f"https://{source}.example/1",
        "guid": None,
        "infocode": "NW1",
        "content_raw": f"<p>{source}</p>",
        "content_html": f"<p>{source}</p>",
        "summary_html": None,
        "author": f"author {source}",
        "published": T0,
        "updated": T0,
        "categories": (f"cat-{source}",),
        "content_hash": f"h-{source}",
    }
    base.update(kw)
    return Item(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("versions", "winner"),
    [
        # priority wins over a longer body and an earlier source id
        ([version("a", content_raw="x" * 100), version("b", priority=1, content_raw="x")], "b"),
        ([version("a", priority=-1), version("b")], "b"),
        # equal priority: the longest body
        ([version("a", content_raw="short"), version("b", content_raw="much longer")], "b"),
        # no body: the summary's length counts
        (
            [
                version("a", content_raw=None, content_html=None, summary_html="sum"),
                version("b", content_raw=None, content_html=None, summary_html="longer sum"),
            ],
            "b",
        ),
        # a body beats a shorter summary
        ([version("a", content_raw=None, content_html=None, summary_html="s"), version("b")], "b"),
        # all equal: the source id first in sort order
        ([version("b", content_raw="same"), version("a", content_raw="same")], "a"),
        ([version("z"), version("y"), version("x")], "x"),
    ],
)
def test_winner(versions: list[Item], winner: str) -> None:
    merged = merge_versions(versions)
    won = next(v for v in versions if v.source_id == winner)
    assert merged.winner == winner
    assert (merged.title, merged.content_raw, merged.content_html, merged.summary_html) == (
        won.title,
        won.content_raw,
        won.content_html,
        won.summary_html,
    )
    assert (merged.link, merged.author, merged.updated) == (won.link, won.author, won.updated)


@pytest.mark.parametrize(
    ("dates", "earliest"),
    [
        ([T0, T0 - timedelta(hours=1)], T0 - timedelta(hours=1)),
        ([T0, None], T0),
        ([None, None], None),
        # the same instant in another zone is the same time
        ([T0.astimezone(CST), T0 + timedelta(seconds=1)], T0),
    ],
)
def test_published_is_the_earliest(dates: list[datetime | None], earliest: datetime | None) -> None:
    versions = [version(f"s{n}", published=d) for n, d in enumerate(dates)]
    assert merge_versions(versions).published == earliest


def test_categories_are_the_union() -> None:
    merged = merge_versions(
        [version("a", categories=("news", "kejiribao")), version("b", categories=("news", "tech"))]
    )
    assert merged.categories == ("kejiribao", "news", "tech")


def test_link_and_author_fall_back_in_precedence_order() -> None:
    merged = merge_versions(
        [
            version("a", priority=2, link=None, author=None),
            version("c", priority=1, link="https://c/1", author=None),
            version("b", priority=1, link="https://b/1", author="B"),
        ]
    )
    assert merged.winner == "a"
    assert (merged.link, merged.author) == ("https://b/1", "B")


def test_infocode_from_any_version() -> None:
    merged = merge_versions([version("a", infocode=None), version("b", infocode="NW1")])
    assert merged.infocode == "NW1"


def test_no_versions_is_an_error() -> None:
    with pytest.raises(ValueError):
        merge_versions([])


VARIED = [
    version("a", content_raw="x" * 10, published=T0, categories=("one",)),
    version("b", content_raw="x" * 30, published=T0 + timedelta(hours=2), categories=("two",)),
    version("c", priority=1, content_raw="x", published=None, link=None, categories=("one", "3")),
    version("d", priority=1, content_raw="x", published=T0 - timedelta(days=1), author=None),
]


@pytest.mark.parametrize("count", [2, 3, 4])
def test_order_never_matters(count: int) -> None:
    for chosen in itertools.combinations(VARIED, count):
        results = {merge_versions(list(p)) for p in itertools.permutations(chosen)}
        assert len(results) == 1, chosen


def test_hash_follows_what_readers_see() -> None:
    merged = merge_versions([version("a")])
    same = merged_hash(merged, T0)
    assert merged_hash(merged, T0.astimezone(CST)) == same
    assert merged_hash(replace(merged, winner="other", updated=T0 + timedelta(1)), T0) == same
    # the body counts by its key (items.body), which is what the texts give
    key = digest(merged.content_html, merged.summary_html, merged.content_raw)
    assert merged_hash(merged, T0, body=key) == same
    assert merged_hash(merged, T0, body=bytes(16)) != same
    assert merged_hash(merged, T0, body=None) != same
    for change in (
        {"title": "new"},
        {"link": "https://elsewhere/"},
        {"content_html": "<p>new</p>"},
        {"content_raw": "<p>raw</p>"},
        {"summary_html": "s"},
        {"author": "someone"},
        {"categories": ("cat-a", "more")},
    ):
        assert merged_hash(replace(merged, **change), T0) != same, change  # type: ignore[arg-type]
    assert merged_hash(merged, T0 + timedelta(seconds=1)) != same


# the upgrade to the hash over the body's key (0015) ---------------------------------------


def as_stored(conn: Connection) -> dict[str, tuple[str, str]]:
    """Item key -> (its stored hash, the hash before 0015 of what its row shows)."""
    i = items.c
    filed: dict[int, list[str]] = defaultdict(list)
    ic = item_categories.c
    for item_id, category in conn.execute(select(ic.item_id, ic.category_id)):
        filed[item_id].append(category)
    found = {}
    query = select(items, *texts.COLUMNS).select_from(texts.joined(items))
    for r in conn.execute(query.order_by(i.id)):
        shown = Merged(
            key=r.key,
            winner="",
            infocode=r.infocode,
            title=r.title,
            link=r.link,
            content_html=r.content_html,
            content_raw=r.content_raw,
            summary_html=r.summary_html,
            author=r.author,
            published=r.published,
            updated=None,
            categories=tuple(sorted(filed[r.id])),
            enclosures=r.enclosures,
        )
        found[r.key] = (r.content_hash, pre_0015_hash(shown, r.published))
    return found


AUDIO = Enclosure("http://127.0.0.1/a.mp3", "audio/mpeg", 1234)
AT_INGEST = rules(
    {"match": "^re", "action": "drop"},
    {"match": "e", "action": "file", "to": ["tech"]},
    {"match": "^(the|a) ", "action": "retitle", "replace": "› "},
)
LATER_RULES = rules(
    {"match": "s$|y$", "action": "drop"},
    {"match": "a", "action": "file", "to": ["ads"]},
    {"match": "t", "action": "unfile", "to": ["news"]},
    {"match": "^(the|a) ", "action": "retitle", "replace": "» "},
)


def filled(store: Store) -> tuple[list[Item], list[Item]]:
    """A store with what rules make of the fixture feeds, stored at ingest and re-applied:
    two sources sharing items, raw bodies kept and dropped, enclosures, infoCodes."""
    store.sync_config([src("a"), src("b", priority=1)], CATEGORIES, T0)
    a = fixture_items("a", 0) + [
        body_item("u", UNSAFE),
        body_item("s", SAFE, enclosures=(AUDIO,), infocode="NW7"),
        item(
            "m", title="re: a summary", content_html=None, content_raw=None, summary_html="<p>s</p>"
        ),
    ]
    b = fixture_items("b", 1)[::2] + [body_item("s", "<p>b says</p>", "b", priority=1)]
    store.apply_items("a", a, T0, AT_INGEST)
    store.apply_items("b", b, T0, AT_INGEST)
    store.reapply_rules(AT_INGEST, T0)
    done = store.reapply_rules(LATER_RULES, T1)
    assert done.changed > 10 and done.dropped and done.restored
    return a, b


def test_the_upgrade_to_0015_reads_no_body_and_changes_no_item(db_url: str) -> None:
    """From the hashes over the texts (as the downgrade leaves them, which are what the
    scheme before 0015 gives of each row) to the hashes over the body's key: equal to
    the ones the code writes, and the same feeds polled again change nothing."""
    store = Store.open(db_url)
    try:
        a, b = filled(store)
        with store.engine.connect() as conn:
            rows = conn.execute(select(items.c.key, items.c.content_hash, items.c.changed))
            before = {key: (digest, changed) for key, digest, changed in rows}
            titles = conn.execute(select(items.c.base_title)).scalars().all()
        assert len(before) > 30 and any(titles)  # retitled ones among them
        entries = store.entries(None, None)
        with store.engine.begin() as conn:
            downgrade(conn, "0014")
            old = as_stored(conn)
        assert {key: stored for key, (stored, _) in old.items()} != {
            key: digest for key, (digest, _) in before.items()
        }
        for key, (stored, scheme) in old.items():
            assert stored == scheme, key
        store.close()

        with statements() as seen:
            store = Store.open(db_url)  # migrates to head
        assert any("UPDATE items" in one for one in seen)
        assert not [one for one in seen if "bodies" in one]
        with store.engine.connect() as conn:
            rows = conn.execute(select(items.c.key, items.c.content_hash, items.c.changed))
            assert {key: (digest, changed) for key, digest, changed in rows} == before
        again = T1 + timedelta(hours=1)
        for source, versions in (("a", a), ("b", b)):
            done = store.apply_items(source, versions, again, LATER_RULES, force=True)
            assert (done.changed_keys, done.changed_categories) == (frozenset(), frozenset())
        assert store.entries(None, None) == entries
    finally:
        store.close()
