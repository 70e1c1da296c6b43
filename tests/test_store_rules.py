"""Rules in the store: every action and scope as items are stored, and re-applied to
what is stored when the rules change; on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect, select, text, update
from sqlalchemy.engine import Engine

from aggregator.config.schema import RuleConfig
from aggregator.model import Category, Enclosure
from aggregator.rules import RuleSet, apply_rules, compile_rules
from aggregator.store import Store, rulings
from aggregator.store.rulings import differs
from aggregator.store.schema import applied_rules, bodies, item_versions, items
from tests.test_store import T0, downgrade, drop_applied_rules, drop_plain_texts, item, keys, src
from tests.test_store_counts import check

LATER = T0 + timedelta(hours=1)
CATEGORIES = [Category("news", "News"), Category("tech", "Tech"), Category("ads", "Ads")]


def rules(*tables: dict[str, Any]) -> RuleSet:
    return compile_rules([RuleConfig(**t) for t in tables])


def setup(store: Store) -> None:
    store.sync_config([src("em-a"), src("kj-b"), src("kj-c")], CATEGORIES, T0)


def titles(store: Store, category: str | None = None) -> dict[str, str]:
    return {e.key: e.title for e in store.entries(category, 100)}


def test_drop_keeps_the_item_out_of_every_feed_and_counts_it(store: Store) -> None:
    setup(store)
    drop = rules({"match": "广告|推广", "action": "drop"})
    batch = [item("k1", "em-a", title="【广告】buy"), item("k2", "em-a", title="news")]
    result = store.apply_items("em-a", batch, T0, drop)
    assert (result.new, result.dropped) == (1, 1)
    assert keys(store) == ["k2"] and keys(store, "news") == ["k2"]
    assert check(store)["news"][0] == 1
    assert [e.key for e in store.changed_entries(0)] == ["k2"]  # no Jekyll post either
    # the same document again: nothing new, the dropped item does not come back
    again = store.apply_items("em-a", batch, LATER, drop)
    assert (again.new, again.updated, again.unchanged, again.dropped) == (0, 0, 2, 0)
    assert keys(store) == ["k2"]
    # its version is kept as the source gave it, for re-application
    with store.engine.connect() as conn:
        stored = conn.execute(select(item_versions.c.title).where(item_versions.c.key == "k1"))
        assert stored.scalar_one() == "【广告】buy"


def test_keep_drops_what_does_not_match_in_its_scope(store: Store) -> None:
    setup(store)
    keep = rules({"match": "python", "action": "keep", "sources": ["em-*"]})
    store.apply_items(
        "em-a", [item("a1", "em-a", title="Python 3.13"), item("a2", "em-a", title="Go")], T0, keep
    )
    store.apply_items("kj-b", [item("b1", "kj-b", title="Go")], T0, keep)
    assert sorted(keys(store)) == ["a1", "b1"]


def test_file_unfile_and_retitle(store: Store) -> None:
    setup(store)
    ruleset = rules(
        {"field": "text", "match": "chip", "action": "file", "to": ["tech"]},
        {"match": "sponsored", "action": "unfile", "to": ["news"]},
        {"match": r"^【广告】\s*", "action": "retitle", "replace": ""},
    )
    store.apply_items(
        "em-a",
        [
            item("c1", "em-a", content_html="<p>a new chip</p>", content_raw="<p>chip</p>"),
            item("c2", "em-a", title="【广告】 sponsored deal"),
        ],
        T0,
        ruleset,
    )
    assert keys(store, "tech") == ["c1"]
    assert keys(store, "news") == ["c1"]
    assert titles(store) == {"c1": "title c1", "c2": "sponsored deal"}
    check(store)


def test_category_scope_sees_the_merged_item(store: Store) -> None:
    """A rule scoped to ``tech`` applies once another source files the item there."""
    setup(store)
    drop_tech = rules({"match": "x", "action": "drop", "categories": ["tech"]})
    store.apply_items("em-a", [item("m1", "em-a", title="x")], T0, drop_tech)
    assert keys(store) == ["m1"]
    merged = store.apply_items(
        "kj-b", [item("m1", "kj-b", title="x", categories=("tech",))], T0, drop_tech
    )
    assert merged.dropped == 1 and keys(store) == []
    check(store)


def test_source_scope_is_any_source_carrying_it(store: Store) -> None:
    setup(store)
    drop_em = rules({"match": "x", "action": "drop", "sources": ["em-*"]})
    store.apply_items("kj-b", [item("s1", "kj-b", title="x")], T0, drop_em)
    assert keys(store) == ["s1"]
    store.apply_items("em-a", [item("s1", "em-a", title="x")], T0, drop_em)
    assert keys(store) == []


def test_reapply_drops_restores_unfiles_and_retitles(store: Store) -> None:
    setup(store)
    none = rules()
    store.apply_items(
        "em-a",
        [
            item("r1", "em-a", title="【广告】deal"),
            item("r2", "em-a", title="chip news"),
            item("r3", "em-a", title="plain"),
        ],
        T0,
        none,
    )
    assert store.reapply_rules(none, T0).current is False  # no digest stored yet
    assert store.reapply_rules(none, T0).current is True
    first = rules(
        {"match": "广告", "action": "drop"},
        {"match": "chip", "action": "file", "to": ["tech"]},
    )
    done = store.reapply_rules(first, LATER)
    assert (done.evaluated, done.changed, done.dropped, done.restored) == (3, 2, 1, 0)
    assert done.changed_categories == {"news", "tech"}
    assert sorted(keys(store)) == ["r2", "r3"] and keys(store, "tech") == ["r2"]
    check(store)
    assert store.reapply_rules(first, LATER).current  # the digest is stored

    second = rules({"match": "^【广告】", "action": "retitle", "replace": "Ad: "})
    done = store.reapply_rules(second, LATER)
    assert (done.changed, done.dropped, done.restored) == (2, 0, 1)
    assert titles(store) == {"r1": "Ad: deal", "r2": "chip news", "r3": "plain"}
    assert keys(store, "tech") == []  # filed -> unfiled
    check(store)
    # a poll of the same document under the same rules writes nothing
    again = store.apply_items("em-a", [item("r1", "em-a", title="【广告】deal")], LATER, second)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 1)
    # and back to no rules: the title from before the retitle returns
    store.reapply_rules(none, LATER)
    assert titles(store)["r1"] == "【广告】deal"
    check(store)


def test_reapply_uses_every_version_of_a_merged_item(store: Store) -> None:
    setup(store)
    store.apply_items("em-a", [item("v1", "em-a", title="x")], T0)
    store.apply_items("kj-b", [item("v1", "kj-b", title="x", categories=("tech",))], T0)
    store.reapply_rules(rules({"match": "x", "action": "drop", "sources": ["kj-*"]}), LATER)
    assert keys(store) == []
    store.reapply_rules(rules({"match": "x", "action": "unfile", "to": ["tech"]}), LATER)
    assert keys(store) == ["v1"] and keys(store, "news") == ["v1"] and keys(store, "tech") == []
    check(store)


@contextmanager
def statements(engine: Engine | type[Engine] = Engine) -> Iterator[list[str]]:
    """The SQL ``engine`` (by default: every engine) runs meanwhile."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_reapplied_items_hash_as_a_merge_does_and_no_body_is_read(store: Store) -> None:
    """The re-application hashes a changed item from its row, the body by its key: the
    same documents polled again (every version written and merged again) under the same
    rules change nothing. Rules that read no body read no body's row."""
    setup(store)
    audio = Enclosure("http://127.0.0.1/a.mp3", "audio/mpeg", 99)
    a = [
        item("h1", "em-a", title="chip ad", infocode="NW1", enclosures=(audio,)),
        item("h2", "em-a", title="plain", content_raw='<p class="x">raw</p>', author="Au"),
        item("h3", "em-a", title="sum", content_html=None, content_raw=None, summary_html="<p>"),
        item("h4", "em-a", title="none", content_html=None, content_raw=None),
    ]
    b = [item("h1", "kj-b", title="chip ad, longer", categories=("tech",), priority=1)]
    store.apply_items("em-a", a, T0)
    store.apply_items("kj-b", b, T0)
    ruleset = rules(
        {"match": "chip", "action": "file", "to": ["ads"]},
        {"match": "^(plain|sum)", "action": "retitle", "replace": "» "},
        {"field": "author", "match": "au", "action": "unfile", "to": ["news"]},
        {"match": "none", "action": "drop"},
    )
    with statements(store.engine) as seen:
        done = store.reapply_rules(ruleset, LATER)
    assert (done.changed, done.dropped) == (4, 1)
    assert seen and not [one for one in seen if "bodies" in one]
    for source, versions in (("em-a", a), ("kj-b", b)):
        again = store.apply_items(source, versions, LATER + timedelta(hours=1), ruleset, force=True)
        assert (again.changed_keys, again.changed_categories) == (frozenset(), frozenset())
    check(store)


def test_reapply_dates_a_category_whose_newest_items_leave(store: Store) -> None:
    """The counts are tallied per set of categories: the newest of the items that left
    one is what tells that the category's newest must be read again from its items."""
    setup(store)
    hours = {"o1": 0, "o2": 3, "o3": 2, "k1": 1}  # o2, the newest, not the first to leave
    store.apply_items(
        "em-a",
        [item(k, "em-a", title=k, updated=T0 + timedelta(hours=h)) for k, h in hours.items()],
        T0,
    )
    store.reapply_rules(rules(), T0)
    assert check(store)["news"] == (4, T0 + timedelta(hours=3))
    done = store.reapply_rules(rules({"match": "^o", "action": "drop"}), LATER)
    assert (done.changed, done.dropped) == (3, 3)
    assert check(store)["news"] == (1, T0 + timedelta(hours=1))


def test_reapply_gives_each_set_of_categories_its_post_category(store: Store) -> None:
    """An item whose post category it left gets the one of its new categories first in
    the config's order, worked out once per set of categories (tech before ads)."""
    setup(store)
    store.apply_items(
        "em-a", [item(k, "em-a", title=t) for k, t in (("p1", "ad"), ("p2", "ad chip"))], T0
    )
    store.reapply_rules(
        rules(
            {"match": "ad", "action": "file", "to": ["ads"]},
            {"match": "chip", "action": "file", "to": ["tech"]},
            {"match": "ad", "action": "unfile", "to": ["news"]},
        ),
        LATER,
    )
    with store.engine.connect() as conn:
        posts = dict(conn.execute(select(items.c.key, items.c.post_category)).all())
    assert posts == {"p1": "ads", "p2": "tech"}


def test_stored_items_read_only(store: Store) -> None:
    setup(store)
    store.apply_items("em-a", [item("i1", "em-a"), item("i2", "em-a")], T0)
    store.apply_items("kj-b", [item("i3", "kj-b")], T0)
    assert [s.view.key for s in store.stored_items(fields=())] == ["i1", "i2", "i3"]
    assert [s.view.text for s in store.stored_items(fields=("title",))] == [None] * 3
    only = list(store.stored_items(fields=("content", "text"), source_id="kj-b"))
    assert [s.view.key for s in only] == ["i3"]
    assert only[0].view.content_html == "<p>body of i3</p>"
    assert only[0].view.text_utf8 == b"body of i3"  # as read: the rules match UTF-8


def as_the_rules_make_them(store: Store, ruleset: RuleSet) -> None:
    """Every stored item is what ``ruleset`` makes of it (as a full evaluation leaves it)."""
    for one in store.stored_items(fields=ruleset.fields):
        assert not differs(one, apply_rules(ruleset, one.view)), one.view.key


EDITS: list[tuple[str, list[dict[str, Any]], int]] = [
    # (what the edit does, the rules after it, how many items it needs not evaluate)
    (
        "the rules the items are made with",
        [
            {"match": "^Ad: ", "action": "retitle", "replace": ""},
            {"match": "广告", "action": "drop"},
            {"match": "chip", "action": "file", "to": ["tech"]},
            {"field": "text", "match": "gadget", "action": "file", "to": ["ads"]},
            {"match": "python", "action": "keep", "sources": ["kj-*"]},
        ],
        0,
    ),
    (
        "a title pattern edited after a retitle",
        [
            {"match": "^Ad: ", "action": "retitle", "replace": ""},
            {"match": "广告|^deal", "action": "drop"},
            {"match": "chip", "action": "file", "to": ["tech"]},
            {"field": "text", "match": "gadget", "action": "file", "to": ["ads"]},
            {"match": "python", "action": "keep", "sources": ["kj-*"]},
        ],
        7,  # the patterns disagree on none; e4: the retitle before matches
    ),
    (
        "a keep rule scoped to other sources",
        [
            {"match": "^Ad: ", "action": "retitle", "replace": ""},
            {"match": "广告|^deal", "action": "drop"},
            {"match": "chip", "action": "file", "to": ["tech"]},
            {"field": "text", "match": "gadget", "action": "file", "to": ["ads"]},
            {"match": "python|rust", "action": "keep", "sources": ["kj-*"]},
        ],
        1,  # only kj-b's are looked at: b1 both keep, b2 only the new one
    ),
    (
        "a retitle's pattern edited",
        [
            {"match": "^Ad:\\s*", "action": "retitle", "replace": ""},
            {"match": "广告|^deal", "action": "drop"},
            {"match": "chip", "action": "file", "to": ["tech"]},
            {"field": "text", "match": "gadget", "action": "file", "to": ["ads"]},
            {"match": "python|rust", "action": "keep", "sources": ["kj-*"]},
        ],
        7,  # e4, which either pattern retitles
    ),
    (
        "a text rule inserted",
        [
            {"match": "^Ad:\\s*", "action": "retitle", "replace": ""},
            {"match": "广告|^deal", "action": "drop"},
            {"field": "text", "match": "body of e1", "action": "unfile", "to": ["news"]},
            {"match": "chip", "action": "file", "to": ["tech"]},
            {"field": "text", "match": "gadget", "action": "file", "to": ["ads"]},
            {"match": "python|rust", "action": "keep", "sources": ["kj-*"]},
        ],
        7,  # the one the new rule matches: e1
    ),
    (
        "the first rule removed",
        [
            {"match": "广告|^deal", "action": "drop"},
            {"field": "text", "match": "body of e1", "action": "unfile", "to": ["news"]},
            {"match": "chip", "action": "file", "to": ["tech"]},
            {"field": "text", "match": "gadget", "action": "file", "to": ["ads"]},
            {"match": "python|rust", "action": "keep", "sources": ["kj-*"]},
        ],
        7,  # only e4 ("Ad: deal…") matches the retitle that went
    ),
]


def test_an_edit_evaluates_only_what_the_changed_rules_could_act_on(store: Store) -> None:
    """After each edit every item is as a full evaluation makes it, though the items no
    changed rule could act on were not evaluated again."""
    setup(store)
    store.apply_items(
        "em-a",
        [
            item("e1", "em-a", title="chip news"),
            item("e2", "em-a", title="plain", content_html="<p>a gadget</p>"),
            item("e3", "em-a", title="more news"),
            item("e4", "em-a", title="Ad: deal of the day"),
            item("e5", "em-a", title="【广告】buy"),
            item("e6", "em-a", title="python and chips"),
        ],
        T0,
    )
    store.apply_items(
        "kj-b", [item("b1", "kj-b", title="python 3"), item("b2", "kj-b", title="rust 2")], T0
    )
    store.reapply_rules(rules(), T0)
    for what, tables, skipped in EDITS:
        ruleset = rules(*tables)
        done = store.reapply_rules(ruleset, LATER)
        assert done.skipped == skipped, what
        as_the_rules_make_them(store, ruleset)
        check(store)
    assert sorted(titles(store)) == ["b1", "b2", "e1", "e2", "e3", "e4", "e6"]  # e5: 广告
    assert keys(store, "tech") == ["e1", "e6"] and keys(store, "ads") == ["e2"]
    assert keys(store, "news") == ["b1", "b2", "e2", "e3", "e4", "e6"]  # e1 unfiled (text)


def test_an_edit_of_kept_rules_that_no_longer_compile_evaluates_everything(
    store: Store,
) -> None:
    setup(store)
    store.apply_items("em-a", [item("k1", "em-a", title="x"), item("k2", "em-a")], T0)
    store.reapply_rules(rules({"match": "x", "action": "drop"}), T0)
    with store.engine.begin() as conn:
        conn.execute(update(applied_rules).values(rule='{"match": "(", "action": "drop"}'))
    done = store.reapply_rules(
        rules({"match": "x", "action": "drop"}, {"match": "y", "action": "drop"}), LATER
    )
    assert (done.evaluated, done.skipped) == (2, 0)


def test_a_store_from_before_the_rules_were_kept_is_evaluated_in_full_once(db_url: str) -> None:
    """Migration 0013 on a store whose items were made with rules known by digest only:
    the first edit evaluates every item, and keeps the rules for the next."""
    store = Store.open(db_url)
    setup(store)
    store.apply_items("em-a", [item("m1", "em-a", title="x"), item("m2", "em-a")], T0)
    store.reapply_rules(rules({"match": "x", "action": "drop"}), T0)
    with store.engine.begin() as conn:
        drop_applied_rules(conn)
        conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
    store.close()
    store = Store.open(db_url)  # migrates to head
    try:
        done = store.reapply_rules(
            rules({"match": "x", "action": "drop"}, {"match": "m2", "action": "drop"}), LATER
        )
        assert (done.evaluated, done.skipped, done.dropped) == (2, 0, 1)
        done = store.reapply_rules(rules({"match": "x", "action": "drop"}), LATER)
        assert (done.evaluated, done.skipped, done.restored) == (2, 1, 1)
        assert keys(store) == ["m2"]
    finally:
        store.close()


# the plain texts kept with the bodies, and re-applying a batch at a time (issue 16) -------


def plain_texts(store: Store) -> dict[str, str | None]:
    """Item key -> its body's kept plain text."""
    i = items.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(i.key, bodies.c.plain_text).select_from(
                items.join(bodies, bodies.c.hash == i.body)
            )
        )
        return {key: plain for key, plain in rows}


def set_plain_text(store: Store, key: str, value: str | None) -> None:
    with store.engine.begin() as conn:
        body = conn.execute(select(items.c.body).where(items.c.key == key)).scalar_one()
        conn.execute(update(bodies).where(bodies.c.hash == body).values(plain_text=value))


def test_bodies_keep_their_plain_text_and_reapply_reads_it(store: Store) -> None:
    """The text rules read is derived once, as the body is stored; re-applying reads the
    kept text (here altered, to tell), and derives it where none is kept."""
    setup(store)
    store.apply_items(
        "em-a",
        [
            item("p1", "em-a", content_html="<p>a <b>gadget</b> &amp;\n more</p><p>x</p>"),
            item("p2", "em-a", content_html=None, summary_html="<p>just   a summary</p>"),
            item("p3", "em-a"),
        ],
        T0,
    )
    assert plain_texts(store) == {
        "p1": "a gadget & more x",
        "p2": "just a summary",
        "p3": "body of p3",
    }
    set_plain_text(store, "p3", "a secret word")
    set_plain_text(store, "p1", None)  # as a row the upgrade had not reached
    done = store.reapply_rules(
        rules(
            {"field": "text", "match": "secret", "action": "drop"},
            {"field": "any", "match": "gadget", "action": "file", "to": ["tech"]},
        ),
        LATER,
    )
    assert (done.evaluated, done.changed, done.dropped) == (3, 2, 1)
    assert keys(store) == ["p1", "p2"] and keys(store, "tech") == ["p1"]
    check(store)


@pytest.mark.parametrize("child", [False, True], ids=["here", "in-a-child"])
def test_reapply_a_batch_at_a_time_is_the_full_evaluation(
    store: Store, monkeypatch: pytest.MonkeyPatch, child: bool
) -> None:
    """Items read, evaluated and written in batches (here of two) come out as one full
    evaluation makes them, counts and change stamps included: a moved item carries the
    re-application's stamp, an item left alone keeps its own. The same where a child
    process evaluates each batch while this one writes the one before (rules/child.py),
    reading their views itself on a connection of its own (the first batch here)."""
    monkeypatch.setattr(rulings, "BATCH", 2)
    monkeypatch.setattr(rulings, "CHILD_ITEMS", 0 if child else 10**9)
    used: list[tuple[bool, bool]] = []

    class Seen(rulings.Evaluator):
        def close(self) -> None:
            used.append((self.in_child, self.reads))
            super().close()

    monkeypatch.setattr(rulings, "Evaluator", Seen)
    setup(store)
    store.apply_items(
        "em-a",
        [item(f"e{n}", "em-a", title=t) for n, t in enumerate(["广告 a", "chip", "x", "chip y"])],
        T0,
    )
    store.apply_items("kj-b", [item(f"b{n}", "kj-b", title=f"chip {n}") for n in range(3)], T0)
    store.apply_items("kj-c", [item("c0", "kj-c", title="plain")], T0)
    store.reapply_rules(rules(), T0)
    before = stamps(store)
    ruleset = rules(
        {"match": "广告", "action": "drop"},
        {"match": "chip", "action": "file", "to": ["tech"]},
        {"match": "^chip ", "action": "retitle", "replace": "CHIP "},
        {"match": "2", "action": "keep", "sources": ["kj-b"]},
    )
    done = store.reapply_rules(ruleset, LATER)
    assert (done.evaluated, done.changed, done.dropped) == (8, 6, 3)
    as_the_rules_make_them(store, ruleset)
    check(store)
    after = stamps(store)
    moved = {k for k in after if after[k] != before[k]}
    assert moved == {"e0", "e1", "e3", "b0", "b1", "b2"}
    assert len({after[k] for k in moved}) == 1 and after["e1"] > max(before.values())
    assert used[-1] == (child, child)


def stamps(store: Store) -> dict[str, int]:
    """Item key -> the change counter it carries."""
    with store.engine.connect() as conn:
        return {k: c for k, c in conn.execute(select(items.c.key, items.c.changed))}


def test_the_upgrade_to_0014_derives_every_plain_text(db_url: str) -> None:
    """Migration 0014 on a store with bodies: each gets the text rules read; the downgrade
    takes the column away again."""
    store = Store.open(db_url)
    try:
        setup(store)
        store.apply_items(
            "em-a",
            [
                item("u1", "em-a", content_html="<p>one&nbsp;<i>two</i></p>"),
                item("u2", "em-a", content_html="", summary_html="<div>three</div>"),
                item("u3", "em-a", content_html=None, content_raw=None),
            ],
            T0,
        )
        kept = plain_texts(store)
        with store.engine.begin() as conn:
            drop_plain_texts(conn)
            conn.execute(text("UPDATE alembic_version SET version_num = '0013'"))
    finally:
        store.close()
    store = Store.open(db_url)  # migrates to head
    try:
        assert plain_texts(store) == kept == {"u1": "one two", "u2": "three"}
        with store.engine.begin() as conn:
            downgrade(conn, "0013")
            assert "plain_text" not in {c["name"] for c in inspect(conn).get_columns("bodies")}
    finally:
        store.close()


def test_a_poll_begun_before_a_reload_stores_what_the_new_rules_make(store: Store) -> None:
    """The daemon re-applies edited rules on reload while a poll that took the old ones
    is still fetching: what that poll stores is made with the rules the store went to,
    so no later re-application (current, or an edit's check) leaves it wrong."""
    setup(store)
    old = rules({"match": "x", "action": "drop"})
    new = rules({"match": "x", "action": "file", "to": ["tech"]}, {"match": "y", "action": "drop"})
    store.reapply_rules(old, T0)
    store.apply_items("em-a", [item("a1", "em-a", title="x 1")], T0, old)
    assert keys(store) == []
    store.reapply_rules(new, LATER)  # the reload
    late = [item("a2", "em-a", title="x 2"), item("a3", "em-a", title="y")]
    done = store.apply_items("em-a", late, LATER, old)  # the poll begun before it
    assert (done.new, done.dropped) == (1, 1)
    assert keys(store) == ["a1", "a2"] and keys(store, "tech") == ["a1", "a2"]
    as_the_rules_make_them(store, new)
    assert store.reapply_rules(new, LATER).current
    edited = rules(
        {"match": "x", "action": "file", "to": ["ads"]}, {"match": "y", "action": "drop"}
    )
    store.reapply_rules(edited, LATER)
    assert keys(store, "ads") == ["a1", "a2"]
    check(store)


def test_ingest_reads_each_bodys_text_as_bodies_stores_it(store: Store) -> None:
    """At ingest the rules read the plain text ``bodies.write`` derived for the item's own
    body (handed on, not derived twice): what a full evaluation of the stored items makes,
    over the fixture feeds' bodies and sources, with a rule mix that reads the text every
    way (tests/test_rules_paths)."""
    from tests.test_rules_paths import fixture_views, varied_rules

    views = [v for v in fixture_views() if v.content_html or v.summary_html]
    batches: dict[str, list[Any]] = {}
    for n, view in enumerate(views):
        source = view.sources[0]
        batches.setdefault(source, []).append(
            item(
                f"x{n}",
                source,
                title=view.title or f"t{n}",
                content_html=view.content_html,
                content_raw=view.content_html,
                summary_html=view.summary_html,
                link=f"https://example.org/x{n}",
                categories=view.categories,
            )
        )
    store.sync_config(
        [src(s) for s in batches],
        [*CATEGORIES, *(Category(c, c.upper()) for c in "abcdefghijk")],
        T0,
    )
    ruleset = rules(*varied_rules(tuple(views)))
    result = [store.apply_items(s, b, T0, ruleset) for s, b in batches.items()]
    assert sum(r.dropped for r in result) > 0 and sum(r.new for r in result) > 0
    as_the_rules_make_them(store, ruleset)


def test_stored_items_are_what_the_rows_say(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read on the driver a batch (here of two) at a time: each item's merged view (every
    version's source and categories), what the rules made of it (title, dropped, filings)
    and its body's text, kept or derived; the items of an id list too, near or far apart."""
    monkeypatch.setattr(rulings, "BATCH", 2)
    setup(store)
    store.apply_items(
        "em-a",
        [
            item("m1", "em-a", title="chip one"),
            item("d1", "em-a", title="drop me", author="ann"),
            item("s1", "em-a", title="Ad: deal", content_html=None, summary_html="<p>s  1</p>"),
            item("n1", "em-a", title="no body", content_html=None, content_raw=None),
            item("p1", "em-a", title="plain"),
        ],
        T0,
    )
    store.apply_items("kj-b", [item("m1", "kj-b", title="chip one", categories=("tech", "x"))], T0)
    store.apply_items("kj-c", [item("m1", "kj-c", title="chip one", categories=())], T0)
    set_plain_text(store, "p1", None)  # never derived: from the body
    ruleset = rules(
        {"match": "^Ad: ", "action": "retitle", "replace": ""},
        {"match": "drop", "action": "drop"},
        {"match": "chip", "action": "file", "to": ["ads"]},
    )
    store.reapply_rules(ruleset, LATER)
    got = {
        s.view.key: (
            s.view.title,
            s.view.sources,
            s.view.categories,
            s.title,
            s.dropped,
            s.filed,
            s.view.author,
            s.view.link,
            s.view.text if s.view.text_utf8 is None else s.view.text_utf8.decode(),
            s.view.content_html,
        )
        for s in store.stored_items(fields=("text", "content"))
    }
    link = "https://example.org/"
    assert got == {
        "m1": (
            "chip one",
            ("em-a", "kj-b", "kj-c"),
            ("news", "tech", "x"),
            "chip one",
            False,
            frozenset({"news", "tech", "x", "ads"}),  # x: a publisher category
            None,
            link + "m1",
            "body of m1",
            "<p>body of m1</p>",
        ),
        "d1": (
            "drop me",
            ("em-a",),
            ("news",),
            "drop me",
            True,
            frozenset(),
            "ann",
            link + "d1",
            "body of d1",
            "<p>body of d1</p>",
        ),
        "s1": (
            "Ad: deal",
            ("em-a",),
            ("news",),
            "deal",
            False,
            frozenset({"news"}),
            None,
            link + "s1",
            "s 1",
            "<p>s  1</p>",
        ),
        "n1": ("no body", ("em-a",), ("news",), "no body", False, frozenset({"news"}))
        + (None, link + "n1", None, None),
        "p1": ("plain", ("em-a",), ("news",), "plain", False, frozenset({"news"}))
        + (None, link + "p1", "body of p1", "<p>body of p1</p>"),
    }
    untexted = [(s.view.text, s.view.text_utf8) for s in store.stored_items(fields=("title",))]
    assert untexted == [(None, None)] * 5
    with store.engine.connect() as conn:
        ids = dict(conn.execute(select(items.c.key, items.c.id)).all())
        for keys_ in (["m1", "p1"], ["d1", "s1"], ["p1"]):  # far apart, near, one
            listed = rulings.stored_items(conn, fields=(), ids=[ids[k] for k in keys_])
            assert {s.view.key: (s.view.sources, s.filed) for s in listed} == {
                k: (got[k][1], got[k][5]) for k in keys_
            }


def test_ingest_hands_the_text_when_another_sources_version_wins(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A story a second source carries with the same body: the merged body is the first
    source's version (it wins the tie by source id), and its plain text is the one the
    second apply just derived for the same body, so the rules take it rather than take the
    body apart a second time; the text rule still acts on it."""
    import aggregator.rules as rules_module

    setup(store)
    ruleset = rules({"field": "text", "match": "gadget", "action": "file", "to": ["tech"]})
    body = "<p>a new gadget</p><p>and  more</p>"

    def story(source: str) -> Any:
        return item("s1", source, content_html=body, content_raw=body, title="A story")

    store.apply_items("em-a", [story("em-a")], T0, ruleset)
    derived: list[str | None] = []
    bare_text = rules_module.bare_text

    def counted(html: str | None) -> str:
        derived.append(html)
        return bare_text(html)

    monkeypatch.setattr(rules_module, "bare_text", counted)
    result = store.apply_items("kj-b", [story("kj-b")], LATER, ruleset)
    assert (result.new, result.dropped) == (1, 0)
    assert derived == []  # the handed text, not the body taken apart again
    assert keys(store, "tech") == ["s1"]
    as_the_rules_make_them(store, ruleset)


def test_reapply_in_a_child_reads_each_body_text(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a child process evaluates, the bodies' texts go to it as read (UTF-8) and
    come out as an evaluation here makes them: kept, derived, Chinese, none."""
    monkeypatch.setattr(rulings, "CHILD_ITEMS", 0)
    monkeypatch.setattr(rulings, "BATCH", 2)
    setup(store)
    store.apply_items(
        "em-a",
        [
            item("t1", "em-a", content_html="<p>芯片 出口 <b>管制</b></p>"),
            item("t2", "em-a", content_html="<p>a casino ad</p>"),
            item("t3", "em-a", content_html=None, content_raw=None),
            item("t4", "em-a", content_html="<p>plain news</p>"),
            item("t5", "em-a", content_html="<p>more 芯片</p>"),
        ],
        T0,
    )
    set_plain_text(store, "t4", None)  # never derived: from the body, in this process
    set_plain_text(store, "t5", "kept 芯片 text")
    ruleset = rules(
        {"field": "text", "match": "芯片 出口 管制|kept 芯片", "action": "file", "to": ["tech"]},
        {"field": "text", "match": "casino", "action": "drop"},
        {"field": "text", "match": "plain news", "action": "file", "to": ["ads"]},
    )
    done = store.reapply_rules(ruleset, LATER)
    assert (done.evaluated, done.changed, done.dropped) == (5, 4, 1)
    assert keys(store, "tech") == ["t1", "t5"] and keys(store, "ads") == ["t4"]
    assert "t2" not in keys(store)
    as_the_rules_make_them(store, ruleset)
    check(store)


def test_reapply_runs_with_the_collector_paused_and_leaves_it_as_found(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cyclic collection walks the re-application's live batches (issue 16: they cost
    up to 0.7 s of 4 s); the collector is on again after it, and stays off where it was."""
    import gc

    monkeypatch.setattr(rulings, "CHILD_ITEMS", 10**9)
    setup(store)
    store.apply_items("em-a", [item(f"g{n}", "em-a", title=f"chip {n}") for n in range(300)], T0)
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    body = rulings._reapply

    def watched(*args: Any) -> rulings.Reapplied:
        gc.callbacks.append(seen)
        try:
            return body(*args)
        finally:
            gc.callbacks.remove(seen)

    monkeypatch.setattr(rulings, "_reapply", watched)
    filing, dropping = (
        rules({"match": "chip", "action": "file", "to": ["tech"]}),
        rules({"match": "chip 1", "action": "drop"}),
    )
    done = store.reapply_rules(filing, LATER)
    assert gc.isenabled()
    gc.disable()
    try:
        assert store.reapply_rules(dropping, LATER).dropped == 111
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert done.changed == 300
    assert collections == []


def test_a_child_reads_the_stored_items_as_the_writer_saw_them(store: Store) -> None:
    """The views a child reads (``snapshot_views``, on its own read-only connection) are
    the ones the re-applying transaction saw when it gave the child its ``Reading``: not
    its own writes since (uncommitted), and on PostgreSQL not another's commit since
    (the exported snapshot; SQLite's write lock lets none commit)."""
    setup(store)
    store.apply_items(
        "em-a",
        [item("s1", "em-a", title="first"), item("s2", "em-a", title="second")],
        T0,
    )
    store.apply_items(
        "kj-b", [item("s1", "kj-b", title="first"), item("s3", "kj-b", title="third")], T0
    )
    with store.engine.connect() as conn:
        ids = {k: i for k, i in conn.execute(select(items.c.key, items.c.id))}
    wanted = sorted(ids.values())
    with store.engine.connect() as conn, conn.begin():
        rulings.cats.lock_items(conn)
        reading = rulings._reading(conn, ["text", "title"])
        assert reading is not None and (reading.snapshot is None) == (conn.dialect.name == "sqlite")
        conn.execute(update(items).where(items.c.key == "s1").values(title="written here"))
        if conn.dialect.name == "postgresql":
            with store.engine.begin() as other:  # a writer that does not take the lock
                other.execute(update(items).where(items.c.key == "s2").values(title="another's"))
        with rulings.snapshot_views(reading) as views_of:
            read, views = views_of(wanted)
        assert read == wanted
        seen = {v.key: (v.title, v.sources, v.categories) for v in views}
        assert seen == {
            "s1": ("first", ("em-a", "kj-b"), ("news",)),
            "s2": ("second", ("em-a",), ("news",)),
            "s3": ("third", ("kj-b",), ("news",)),
        }
        # and what this transaction reads itself is its own write
        assert rulings._views_of(conn, ["title"], [ids["s1"]])[1][0].title == "written here"


@pytest.mark.parametrize("where", ["nowhere", "another store"])
def test_a_child_that_cannot_read_or_reads_other_items_leaves_this_process_to_evaluate(
    store: Store, tmp_path: Any, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """A child that cannot open the store, or reads other items than were sent (ids as
    read, checked), is given up: every batch is read and evaluated here, as it would be."""
    import logging

    from aggregator.rules.child import Reading

    setup(store)
    store.apply_items(
        "em-a", [item(f"n{n}", "em-a", title=f"chip {n}" if n % 2 else "x") for n in range(6)], T0
    )
    if where == "another store":  # a store whose items are others: other ids
        other = Store.open(f"sqlite:///{tmp_path / 'other.db'}")
        setup(other)
        other.apply_items("em-a", [item("o1", "em-a", title="chip")], T0)
        url = f"sqlite:///{tmp_path / 'other.db'}"
        other.close()
    else:
        url = f"sqlite:///{tmp_path / 'missing' / 'none.db'}"
    ruleset = rules({"match": "chip", "action": "file", "to": ["tech"]})
    with store.engine.connect() as conn:
        wanted = sorted(conn.execute(select(items.c.id)).scalars())

        def views_of(ids: Any) -> Any:
            return rulings._views_of(conn, ruleset.fields, ids)

        reading = Reading(url, None, tuple(ruleset.fields))
        with (
            caplog.at_level(logging.WARNING, logger="aggregator.rules"),
            rulings.Evaluator(ruleset, child=True, reading=reading, views_of=views_of) as ev,
        ):
            assert ev.reads
            ev.send_ids(wanted[:3])
            ev.send_ids(wanted[3:])
            got = ev.receive() + ev.receive()
            assert not ev.in_child
        here = [apply_rules(ruleset, v) for v in views_of(wanted)[1]]
    assert [(o.dropped, o.title, o.categories) for o in got] == [
        (o.dropped, o.title, o.categories) for o in here
    ]
    assert [o.categories for o in got].count(("news", "tech")) == 3
    assert "their child process failed" in caplog.text
    if where == "another store":
        assert "it read 1 of 3 items" in caplog.text  # o1 shares an id with n0
