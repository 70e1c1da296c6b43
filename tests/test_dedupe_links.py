"""One story, one entry: versions of other sources join by canonical link or as near-duplicates,
on both databases; the joined entry keeps the key (Atom id) it was first written with."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import text

from aggregator.canonical import canonical_link
from aggregator.entryid import atom_id
from aggregator.model import Item
from aggregator.similar import SimilarRule, normalized_title
from aggregator.store import Store
from tests.test_store import T0, drop_canonical_links, item, setup

T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)
SIMILAR = SimilarRule(timedelta(hours=48), 0.5)
BODY = (
    "<p>The central bank held its benchmark rate steady on Wednesday, citing inflation that "
    "remains above target and a labour market that is still tight.</p>"
)
DIGEST_A = "<p>Stocks rose on Monday as oil fell; the dollar was flat against the yen.</p>"
DIGEST_B = "<p>Tech shares slid on Friday after chip export rules were tightened again.</p>"


def story(key: str, source: str, link: str, **kw: object) -> Item:
    """A version as dedupe_feed makes it: its canonical link and normalized title set."""
    made = item(key, source, link=link, **kw)
    return replace(made, canon=canonical_link(link), title_norm=normalized_title(made.title))


def entries(store: Store, category: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    return [(e.key, e.sources) for e in store.entries(category, None)]


def test_link_variants_of_two_sources_are_one_entry(store: Store) -> None:
    setup(store, "a", "b", "c")
    first = store.apply_items("a", [story("src:a:1", "a", "https://www.example.com/n/1")], T0)
    assert first.new == 1
    b_link = "http://m.example.com/n/1/?utm_source=rss&spm=x.y#top"
    second = store.apply_items("b", [story("src:b:9", "b", b_link, categories=("tech",))], T1)
    assert second.new == 1  # a new version for b, and no new entry
    assert entries(store) == [("src:a:1", ("a", "b"))]  # the key first written stays
    assert [e.key for e in store.entries("news", None)] == ["src:a:1"]
    assert [e.key for e in store.entries("tech", None)] == ["src:a:1"]
    (entry,) = store.entries(None, None)
    assert entry.categories == ("news", "tech")
    assert entry.via == (b_link,)
    store.apply_items("c", [story("src:c:5", "c", "https://example.com/n/1?fbclid=1")], T2)
    assert entries(store) == [("src:a:1", ("a", "b", "c"))]
    found = store.provenance("http://example.com/n/1?gclid=7")
    assert found is not None and found.key == "src:a:1"
    assert found.atom_id == atom_id("src:a:1", None)
    assert [(v.source_id, v.rule) for v in found.versions] == [
        ("a", "first seen"),
        ("b", "canonical link"),
        ("c", "canonical link"),
    ]
    assert store.provenance(found.atom_id) == found
    assert store.provenance("src:b:9") == found
    assert store.provenance("https://example.com/n/2") is None


def test_the_first_seen_version_gives_the_key_whatever_the_source(store: Store) -> None:
    setup(store, "a", "b")
    store.apply_items("b", [story("src:b:9", "b", "https://example.com/n/1?utm_medium=x")], T0)
    store.apply_items("a", [story("src:a:1", "a", "https://example.com/n/1")], T1)
    assert entries(store) == [("src:b:9", ("a", "b"))]
    # a poll of the same content again changes nothing
    again = store.apply_items("a", [story("src:a:1", "a", "https://example.com/n/1")], T2)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 1)
    assert entries(store) == [("src:b:9", ("a", "b"))]


def test_one_source_reusing_a_link_keeps_its_items_apart(store: Store) -> None:
    setup(store, "a", "b")
    link = "https://example.com/live"
    store.apply_items("a", [story("src:a:1", "a", link), story("src:a:2", "a", link)], T0)
    assert sorted(k for k, _ in entries(store)) == ["src:a:1", "src:a:2"]
    store.apply_items("a", [story("src:a:3", "a", link + "?utm_source=x")], T1)
    assert len(entries(store)) == 3
    # another source's copy: the link names three stories, so the title picks one
    store.apply_items("b", [story("src:b:0", "b", link, title="something else")], T2)
    assert len(entries(store)) == 4
    store.apply_items("b", [story("src:b:1", "b", link, title="title src:a:2")], T2)
    assert sorted(entries(store)) == [
        ("src:a:1", ("a",)),
        ("src:a:2", ("a", "b")),
        ("src:a:3", ("a",)),
        ("src:b:0", ("b",)),
    ]


def test_a_shared_link_is_told_apart_by_title_with_no_title_stored(store: Store) -> None:
    """A links-only source stores no normalized titles: the title is made from the versions'
    titles where a link names several stories."""
    setup(store, "a", "b")
    link = "https://example.com/live"
    plain = [
        replace(story(k, "a", link), title_norm=None) for k in ("src:a:1", "src:a:2", "src:a:3")
    ]
    store.apply_items("a", plain, T0)
    copy = replace(story("src:b:1", "b", link, title="Title src:a:2!"), title_norm=None)
    store.apply_items("b", [copy], T1)
    assert sorted(entries(store)) == [
        ("src:a:1", ("a",)),
        ("src:a:2", ("a", "b")),
        ("src:a:3", ("a",)),
    ]
    assert stored_titles(store) == {("a", k): None for k in ("src:a:1", "src:a:2", "src:a:3")} | {
        ("b", "src:b:1"): None
    }


def stored_titles(store: Store) -> dict[tuple[str, str], str | None]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT source_id, key, title_norm FROM item_versions"))
        return {(r.source_id, r.key): r.title_norm for r in rows}


def test_an_infocode_item_keeps_its_key(store: Store) -> None:
    setup(store, "a", "b")
    link = "https://example.com/a/NW1.html"
    store.apply_items("a", [story("ic:NW1", "a", link, infocode="NW1")], T0)
    store.apply_items("b", [story("src:b:1", "b", link + "?spm=1")], T1)
    (entry,) = store.entries(None, None)
    assert (entry.key, entry.sources) == ("ic:NW1", ("a", "b"))
    found = store.provenance("urn:infocode:NW1")
    assert found is not None
    assert [v.rule for v in found.versions] == ["infoCode NW1", "canonical link"]
    # a link item first: a later infoCode item stays keyed by its infoCode
    store.apply_items("a", [story("src:a:7", "a", "https://example.com/a/7")], T0)
    store.apply_items("b", [story("ic:NW7", "b", "https://example.com/a/7", infocode="NW7")], T1)
    assert {e.key for e in store.entries(None, None)} == {"ic:NW1", "src:a:7", "ic:NW7"}


def test_near_duplicates_join_only_where_similar_is_on(store: Store) -> None:
    setup(store, "a", "b", "c")
    store.apply_items(
        "a",
        [story("src:a:1", "a", "https://a.example/1", title="Fed holds rates", content_html=BODY)],
        T0,
    )
    copy = story(
        "src:b:1",
        "b",
        "https://portal.example/x?id=77",
        title="【独家】Fed holds rates - Reuters",
        content_html=BODY,
    )
    store.apply_items("b", [copy], T1)  # similar off: two entries
    assert len(entries(store)) == 2
    store.apply_items(
        "c",
        [replace(copy, key="src:c:1", source_id="c", link=None, canon=None)],
        T1,
        similar=SIMILAR,
    )
    assert sorted(entries(store))[0] == ("src:a:1", ("a", "c"))
    found = store.provenance("src:c:1")
    assert found is not None and found.versions[1].rule.startswith("similar title+text ")
    assert float(found.versions[1].rule.rsplit(" ", 1)[1]) >= 0.5


def test_near_duplicates_of_versions_stored_without_titles_join(store: Store) -> None:
    """Sources with ``similar`` off store no normalized title; one with it on fills in those
    of the versions in its window, and finds their near-duplicates all the same."""
    setup(store, "a", "b", "c")
    plain = replace(
        story("src:a:1", "a", "https://a.example/1", title="Fed holds rates", content_html=BODY),
        title_norm=None,
    )
    far = replace(
        plain, key="src:a:2", link="https://a.example/2", published=T0 - timedelta(days=9)
    )
    short = replace(plain, key="src:a:3", link="https://a.example/3", title="!!")
    store.apply_items("a", [plain, far, short], T0)
    assert set(stored_titles(store).values()) == {None}
    copy = story(
        "src:c:1", "c", "https://portal.example/x?id=77", title="【独家】Fed holds rates - Reuters"
    )
    copy = replace(copy, content_html=BODY, title_norm=None)  # made by the store, not dedupe
    store.apply_items("c", [copy], T1, similar=SIMILAR)
    assert sorted(entries(store)) == [
        ("src:a:1", ("a", "c")),
        ("src:a:2", ("a",)),
        ("src:a:3", ("a",)),
    ]
    assert stored_titles(store) == {
        ("a", "src:a:1"): normalized_title("Fed holds rates"),
        ("a", "src:a:2"): None,  # outside the window: not looked at
        ("a", "src:a:3"): "",  # too short to match: looked at once
        ("c", "src:c:1"): None,
    }


def test_a_shared_title_without_shared_text_never_joins(store: Store) -> None:
    setup(store, "a", "b")
    store.apply_items(
        "a",
        [
            story(
                "src:a:1",
                "a",
                "https://a.example/d1",
                title="Morning Briefing",
                content_html=DIGEST_A,
            )
        ],
        T0,
    )
    store.apply_items(
        "b",
        [
            story(
                "src:b:1",
                "b",
                "https://b.example/d1",
                title="Morning Briefing",
                content_html=DIGEST_B,
            )
        ],
        T1,
        similar=SIMILAR,
    )
    assert len(entries(store)) == 2


def test_near_duplicates_outside_the_window_stay_apart(store: Store) -> None:
    setup(store, "a", "b")
    store.apply_items(
        "a",
        [story("src:a:1", "a", "https://a.example/1", title="Fed holds rates", content_html=BODY)],
        T0,
    )
    late = story(
        "src:b:1",
        "b",
        "https://b.example/1",
        title="Fed holds rates",
        content_html=BODY,
        published=T0 + timedelta(days=3),
    )
    store.apply_items("b", [late], T0 + timedelta(days=3), similar=SIMILAR)
    assert len(entries(store)) == 2


def test_a_pruned_entry_stays_gone_for_every_source(store: Store) -> None:
    setup(store, "a", "b")
    store.apply_items("a", [story("src:a:1", "a", "https://example.com/n/1")], T0)
    store.apply_items("b", [story("src:b:1", "b", "https://example.com/n/1")], T0)
    assert store.prune(T0 + timedelta(days=1), 0, now=T1) == 1
    again = store.apply_items("b", [story("src:b:1", "b", "https://example.com/n/1")], T2)
    assert again.tombstoned == 1 and entries(store) == []


def test_upgrade_keeps_every_entry_and_joins_what_comes_after(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        setup(store, "a", "b", "c")
        store.apply_items("a", [story("src:a:1", "a", "https://www.example.com/n/1")], T0)
        store.apply_items("b", [story("src:b:1", "b", "https://example.com/n/2")], T0)
        with store.engine.begin() as conn:  # the store as the release before 0010 left it
            conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
            drop_canonical_links(conn)
        store.close()
        store = Store.open(db_url)  # migrates to head
        before = store.entries(None, None)
        assert sorted(e.key for e in before) == ["src:a:1", "src:b:1"]
        # what a reader saw is unchanged, byte for byte in the records
        later = store.apply_items(
            "c",
            [
                story("src:c:1", "c", "http://m.example.com/n/1?utm_source=x"),
                story("src:c:2", "c", "https://example.com/n/2/"),
            ],
            T1,
        )
        assert later.new == 2
        after = store.entries(None, None)
        assert [e.key for e in after] == [e.key for e in before]
        assert {e.key: e.sources for e in after} == {
            "src:a:1": ("a", "c"),
            "src:b:1": ("b", "c"),
        }
    finally:
        store.close()
