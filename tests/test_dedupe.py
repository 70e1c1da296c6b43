"""Identity, change hash, title fallback and publisher categories (pure tables)."""

from __future__ import annotations

import pickle
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone

import pytest

from aggregator.config import SourceConfig
from aggregator.dedupe import (
    content_hash,
    dedupe_feed,
    item_key,
    publisher_category,
    title_from_text,
)
from aggregator.model import Enclosure, Item, ParsedFeed, ParsedItem

CST = timezone(timedelta(hours=8))
WHEN = datetime(2022, 5, 25, 16, 53, 43, tzinfo=CST)


def source(**kw: object) -> SourceConfig:
    base: dict[str, object] = {"id": "s1", "url": "http://127.0.0.1/f", "categories": ("news",)}
    base.update(kw)
    return SourceConfig.model_validate(base)


@pytest.mark.parametrize(
    ("name", "ident", "title"),
    [
        ("科技日报", "kejiribao", "科技日报新闻"),
        ("中国基金报", "zhongguojijinbao", "中国基金报新闻"),
        ("21世纪经济报道", "21shijijingjibaodao", "21世纪经济报道新闻"),
        ("Reuters 路透社", "reuters-lutoushe", "Reuters 路透社新闻"),
        ("证券时报·e公司", "zhengquanshibao-egongsi", "证券时报·e公司新闻"),
        ("  重庆日报 ", "chongqingribao", "重庆日报新闻"),
    ],
)
def test_publisher_category(name: str, ident: str, title: str) -> None:
    category = publisher_category(name)
    assert category is not None
    assert (category.id, category.title) == (ident, title)


@pytest.mark.parametrize("name", [None, "", "   ", "···"])
def test_no_publisher_category(name: str | None) -> None:
    assert publisher_category(name) is None


@pytest.mark.parametrize(
    ("item", "key"),
    [
        (ParsedItem(infocode="NW1", guid="g", link="l"), "ic:NW1"),
        (ParsedItem(guid=" g1 ", link="http://x/1"), "src:s1:guid:g1"),
        (ParsedItem(link="http://x/1"), "src:s1:link:http://x/1"),
    ],
)
def test_key_fallback_chain(item: ParsedItem, key: str) -> None:
    assert item_key("s1", item) == key


def test_title_and_date_key_is_stable_and_distinct() -> None:
    a = item_key("s1", ParsedItem(title="A", published=WHEN))
    assert a == item_key("s1", ParsedItem(title="A", published=WHEN))
    assert a != item_key("s1", ParsedItem(title="A", published=WHEN + timedelta(seconds=1)))
    assert a.startswith("src:s1:th:")


def test_hash_ignores_tracking_parameters_but_not_content() -> None:
    base = ParsedItem(title="T", link="http://x/a?id=1", content="<p>x</p>", published=WHEN)
    tracked = ParsedItem(
        title="T", link="http://x/a?id=1&utm_source=rss", content="<p>x</p>", published=WHEN
    )
    changed = ParsedItem(title="T2", link="http://x/a?id=1", content="<p>x</p>", published=WHEN)
    assert content_hash(base, ["n"]) == content_hash(tracked, ["n"])
    assert content_hash(base, ["n"]) != content_hash(changed, ["n"])
    assert content_hash(base, ["n"]) != content_hash(base, ["n", "m"])


def test_hash_keeps_fields_apart() -> None:
    """Text moving from one field to the next, or into a category, changes the hash."""
    hashes = {
        content_hash(ParsedItem(title="T", content="ab", summary=""), ["n"]),
        content_hash(ParsedItem(title="T", content="a", summary="b"), ["n"]),
        content_hash(ParsedItem(title="T", content="a", author="b"), ["n"]),
        content_hash(ParsedItem(title="T", content="a"), ["n", "b"]),
        content_hash(ParsedItem(title="T", content="a"), ["nb"]),
        content_hash(ParsedItem(title="T", content="1:a"), ["n"]),
        content_hash(ParsedItem(title="T:1", content="a"), ["n"]),
    }
    assert len(hashes) == 7
    item = ParsedItem(title="raw", content="a")
    assert content_hash(item, ["n"], "shown") == content_hash(
        ParsedItem(title="shown", content="a"), ["n"]
    )


@pytest.mark.parametrize(
    ("item", "title"),
    [
        (ParsedItem(title="  Hello \n world "), "Hello world"),
        (ParsedItem(content="<p>短文本</p>"), "短文本"),
        (ParsedItem(summary="<b>x</b> &amp; y"), "x & y"),
        (ParsedItem(content="<p>" + "字" * 100 + "</p>"), "字" * 79 + "…"),
        (ParsedItem(content="<p>  </p>"), None),
        (ParsedItem(), None),
    ],
)
def test_title_from_text(item: ParsedItem, title: str | None) -> None:
    result = title_from_text(item)
    assert result == title
    if result:
        assert len(result) <= 80


def test_untitled_textless_and_undated_items_are_skipped_with_warnings() -> None:
    feed = ParsedFeed(
        title="f",
        link=None,
        items=(
            ParsedItem(guid="1", title="ok", published=WHEN),
            ParsedItem(guid="2", published=WHEN),  # neither title nor text
            ParsedItem(guid="3", title="no date"),  # others are dated
            ParsedItem(guid="4", content="<p>text only</p>", published=WHEN),
        ),
    )
    result = dedupe_feed(source(), feed)
    assert [i.title for i in result.items] == ["ok", "text only"]
    assert result.skipped == 2
    assert all(w.startswith("s1: item") for w in result.warnings)
    assert any("neither title nor text" in w for w in result.warnings)
    assert any("no date" in w for w in result.warnings)


def test_undated_source_keeps_undated_items() -> None:
    feed = ParsedFeed("f", None, (ParsedItem(link="http://x/1", title="a"),))
    (item,) = dedupe_feed(source(), feed).items
    assert item.published is None


def test_repeated_guid_does_not_collapse_distinct_posts() -> None:
    feed = ParsedFeed(
        "f",
        None,
        (
            ParsedItem(guid="same", title="one", published=WHEN),
            ParsedItem(guid="same", title="two", published=WHEN),
            ParsedItem(guid="same", title="one", published=WHEN),  # exact repeat: dropped
            ParsedItem(guid="same", title="three", published=WHEN),
        ),
    )
    keys = [i.key for i in dedupe_feed(source(), feed).items]
    assert keys == ["src:s1:guid:same", "src:s1:guid:same#2", "src:s1:guid:same#3"]


def test_publisher_category_added_and_reported() -> None:
    src = source(categories=(), category_from="author")
    feed = ParsedFeed(
        "f",
        None,
        (
            ParsedItem(infocode="NW1", title="t", author="科技日报", published=WHEN),
            ParsedItem(infocode="NW2", title="u", published=WHEN),
        ),
    )
    result = dedupe_feed(src, feed)
    assert [i.categories for i in result.items] == [("kejiribao",)]
    assert [(c.id, c.title) for c in result.categories] == [("kejiribao", "科技日报新闻")]
    assert result.skipped == 1


def test_item_html_is_sanitized_but_raw_kept() -> None:
    raw = '<p onclick="x()">hi</p><script>alert(1)</script>'
    feed = ParsedFeed(
        "f",
        None,
        (ParsedItem(guid="1", title="t", content=raw, published=datetime(2022, 1, 1, tzinfo=UTC)),),
    )
    (item,) = dedupe_feed(source(), feed).items
    assert item.content_raw == raw
    assert item.content_html is not None
    assert "script" not in item.content_html and "onclick" not in item.content_html
    assert "hi" in item.content_html


def test_long_keys_are_hashed_but_stable() -> None:
    link = "http://x/" + "a" * 5000
    key = item_key("s1", ParsedItem(link=link))
    assert len(key) < 100 and key.startswith("src:s1:link:sha1:")
    assert key == item_key("s1", ParsedItem(link=link))
    assert key != item_key("s1", ParsedItem(link=link + "b"))


def test_an_item_survives_the_trip_from_a_parse_child() -> None:
    """Items come back from a parse child pickled (``Item.__reduce__``): every field, in its
    place, whatever its type."""
    values: dict[str, object] = {}
    for n, f in enumerate(fields(Item)):
        kind = str(f.type)
        if "datetime" in kind:
            values[f.name] = datetime(2022, 5, n + 1, tzinfo=timezone(timedelta(hours=8)))
        elif kind == "int":
            values[f.name] = n
        elif kind == "bool":
            values[f.name] = True
        elif "Enclosure" in kind:
            values[f.name] = (Enclosure(f"http://e/{n}", "audio/mpeg", n),)
        elif "tuple" in kind:
            values[f.name] = (f"c{n}", f"d{n}")
        else:
            values[f.name] = f"{f.name} 值 {n}"
    item = Item(**values)  # type: ignore[arg-type]
    back = pickle.loads(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    assert {f.name: getattr(back, f.name) for f in fields(Item)} == values


@pytest.mark.parametrize(
    ("raw", "is_kept"),
    [
        ('<p>safe <a href="http://example.org/">link</a></p>', True),
        ('<p onclick="x()">hi</p><script>alert(1)</script>', False),
        ("<p>{{ liquid }}</p>", False),
        ("plain text", True),
        (None, False),
    ],
)
def test_raw_for_posts_is_what_the_store_keeps(raw: str | None, is_kept: bool) -> None:
    """A parse child trims raw bodies as the store would (``raw_for_posts``): the store's own
    trim then changes nothing, and every other field is the same."""
    from aggregator.store.bodies import kept

    feed = ParsedFeed(
        "f",
        None,
        (ParsedItem(guid="1", title="t", content=raw, published=datetime(2022, 1, 1, tzinfo=UTC)),),
    )
    (given,) = dedupe_feed(source(), feed).items
    (trimmed,) = dedupe_feed(source(), feed, raw_for_posts=True).items
    assert trimmed == kept(given)
    assert kept(trimmed) == trimmed
    assert trimmed.content_raw == (raw if is_kept else None)
