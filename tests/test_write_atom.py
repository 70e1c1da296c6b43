"""write.atom: golden bytes, byte stability, order, and the RFC 4287 rules a validator checks.

Golden files live in tests/data/write/; ``UPDATE_GOLDEN=1 pytest …`` rewrites
them (then read the diff before committing it).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from lxml import etree

from aggregator.config import AggregatorSettings
from aggregator.entryid import key_uuid
from aggregator.model import Category, Entry
from aggregator.write import FeedMeta, entry_id, feed_meta, render_atom

DATA = Path(__file__).parent / "data" / "write"
A = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
RFC3339_CST = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

SETTINGS = AggregatorSettings(
    base_url="https://feeds.example.org/news/", timezone="Asia/Shanghai", title="金融消息"
)
CATEGORIES = {
    "kejiribao": Category("kejiribao", "科技日报新闻", "Science and Technology Daily"),
    "emnews": Category("emnews", "东财滚动新闻"),
}
LINK = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202205252391675717"


def make_entry(**fields: object) -> Entry:
    base = Entry(
        key="ic:NW202205252391675717",
        infocode="NW202205252391675717",
        title="科技金融+组团发展 内江高新区力造百亿级产业集群",
        link=LINK,
        content_html="<p>2014年，内江高新区诞生在沱江之畔。</p>\r\n <p>（文章来源：科技日报）</p>",
        content_raw=None,
        summary_html=None,
        author="科技日报",
        published=datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC),
        updated=datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC),
        categories=("emnews", "kejiribao"),
        post_category="kejiribao",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def sample_entries() -> list[Entry]:
    """Newest first: an infoCode item with content, a keyed item with summary only."""
    return [
        make_entry(),
        make_entry(
            key="src:kjrb-rss:guid:https://example.org/a?id=7",
            infocode=None,
            title='Quotes "and" <angle> & ampersand',
            link="https://example.org/a?id=7&utm=x",
            content_html=None,
            summary_html="<p>digest &amp; more</p>",
            author=None,
            published=datetime(2022, 5, 24, 1, 0, tzinfo=UTC),
            updated=datetime(2022, 5, 26, 2, 30, 15, 123456, tzinfo=UTC),
            categories=("kejiribao",),
            post_category=None,
        ),
    ]


def meta(category: str | None = "kejiribao") -> FeedMeta:
    return feed_meta(CATEGORIES[category] if category else None, SETTINGS, EPOCH)


def golden(name: str, data: bytes) -> bytes:
    path = DATA / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(data)
    return path.read_bytes()


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def test_golden_category_feed() -> None:
    out = render_atom(meta(), sample_entries(), CATEGORIES, SETTINGS)
    assert out == golden("kejiribao.atom", out)


def test_golden_empty_feed() -> None:
    out = render_atom(meta(None), [], CATEGORIES, SETTINGS)
    assert out == golden("empty-all.atom", out)


def test_rerender_is_byte_identical() -> None:
    first = render_atom(meta(), sample_entries(), CATEGORIES, SETTINGS)
    again = render_atom(meta(), [replace(e) for e in sample_entries()], CATEGORIES, SETTINGS)
    assert first == again


def test_changed_entry_changes_only_that_entry_and_feed_updated() -> None:
    entries = sample_entries()
    later = datetime(2022, 6, 1, tzinfo=UTC)
    changed = [replace(entries[0], title="新标题", updated=later), entries[1]]
    root = parse(render_atom(meta(), changed, CATEGORIES, SETTINGS))
    assert root.findtext(f"{A}updated") == "2022-06-01T08:00:00+08:00"
    assert [e.findtext(f"{A}title") for e in root.iter(f"{A}entry")][0] == "新标题"
    assert len(root.findall(f"{A}entry")) == 2


def test_newest_first_order_is_kept() -> None:
    base = make_entry()
    entries = [
        replace(
            base,
            key=f"ic:NW2022052523916757{n:02d}",
            infocode=f"NW2022052523916757{n:02d}",
            published=base.published - timedelta(hours=n),
        )
        for n in range(10)
    ]
    root = parse(render_atom(meta(), entries, CATEGORIES, SETTINGS))
    ids = [e.findtext(f"{A}id") for e in root.iter(f"{A}entry")]
    assert ids == [entry_id(e) for e in entries]


def test_feed_updated_is_newest_entry_updated_never_now() -> None:
    root = parse(render_atom(meta(), sample_entries(), CATEGORIES, SETTINGS))
    # the second entry was updated last (microseconds dropped)
    assert root.findtext(f"{A}updated") == "2022-05-26T10:30:15+08:00"
    empty = parse(render_atom(meta(), [], CATEGORIES, SETTINGS))
    assert empty.findtext(f"{A}updated") == "2020-01-01T08:00:00+08:00"


@pytest.mark.parametrize(
    "key", ["src:a:1", "", "ünïcødé:日本語:🙂", "x" * 5000, "http://example.com/a?b=c#d"]
)
def test_key_uuid_is_uuid5_of_the_key(key: str) -> None:
    """The store's uuid column and the Atom id: uuid5 made by hand must equal the library's."""
    assert key_uuid(key) == str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def test_entry_ids() -> None:
    first, second = sample_entries()
    assert entry_id(first) == "urn:infocode:NW202205252391675717"
    expected = uuid.uuid5(uuid.NAMESPACE_URL, second.key)
    assert entry_id(second) == f"urn:uuid:{expected}"
    # stable whatever base_url is
    other = SETTINGS.model_copy(update={"base_url": "http://elsewhere.example/"})
    a = parse(render_atom(meta(), sample_entries(), CATEGORIES, SETTINGS))
    b = parse(render_atom(feed_meta(None, other, EPOCH), sample_entries(), CATEGORIES, other))
    assert [e.findtext(f"{A}id") for e in a.iter(f"{A}entry")] == [
        e.findtext(f"{A}id") for e in b.iter(f"{A}entry")
    ]


def test_duplicate_ids_are_written_once() -> None:
    entries = [make_entry(), make_entry(title="again")]
    root = parse(render_atom(meta(), entries, CATEGORIES, SETTINGS))
    assert len(root.findall(f"{A}entry")) == 1


def test_illegal_characters_are_stripped() -> None:
    bad = "\x00\x01\x0b\x1f\ufffe\uffff\ud800"
    entry = make_entry(
        title=f"T{bad}itle",
        author=f"Au{bad}thor",
        content_html=f"<p>bo{bad}dy</p>",
        link=f"https://example.org/x{bad}",
    )
    cats = {"kejiribao": Category("kejiribao", f"科技{bad}日报"), "emnews": CATEGORIES["emnews"]}
    out = render_atom(replace(meta(), title=f"F{bad}eed"), [entry], cats, SETTINGS)
    root = parse(out)
    e = root.find(f"{A}entry")
    assert e is not None
    assert e.findtext(f"{A}title") == "Title"
    assert e.findtext(f"{A}author/{A}name") == "Author"
    assert e.findtext(f"{A}content") == "<p>body</p>"
    assert e.find(f"{A}link").get("href") == "https://example.org/x"
    assert {c.get("label") for c in e.iter(f"{A}category")} == {"科技日报", "东财滚动新闻"}
    assert root.findtext(f"{A}title") == "Feed"
    assert not feedparser.parse(out).bozo


def test_summary_only_and_linkless_entries() -> None:
    linkless = make_entry(
        key="src:s:th:abc", infocode=None, link=None, content_html=None, summary_html="<p>s</p>"
    )
    root = parse(render_atom(meta(), [sample_entries()[1], linkless], CATEGORIES, SETTINGS))
    with_link, without = root.findall(f"{A}entry")
    assert with_link.find(f"{A}content") is None
    assert with_link.find(f"{A}summary").get("type") == "html"
    # RFC 4287 4.1.2: no alternate link -> content is required
    assert without.find(f"{A}link") is None
    assert without.find(f"{A}content").get("type") == "html"
    assert without.findtext(f"{A}content") == "<p>s</p>"


def test_websub_hub_link() -> None:
    settings = SETTINGS.model_copy(update={"websub_hub": "https://hub.example/"})
    root = parse(render_atom(feed_meta(None, settings, EPOCH), [], CATEGORIES, settings))
    hubs = [ln.get("href") for ln in root.findall(f"{A}link") if ln.get("rel") == "hub"]
    assert hubs == ["https://hub.example/"]


def is_uri(value: str | None) -> bool:
    return bool(value) and bool(urlsplit(value or "").scheme) and " " not in (value or "")


@pytest.mark.parametrize("category", ["kejiribao", None])
def test_rfc4287_rules(category: str | None) -> None:
    feed = meta(category)
    entries = sample_entries()
    out = render_atom(feed, entries, CATEGORIES, SETTINGS)
    assert out.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<feed ")
    root = parse(out)
    assert root.tag == f"{A}feed"
    assert root.get(XML_LANG) == "zh-CN"

    # feed: exactly one id (a URI: the self URL), title, updated; an author; self + alternate
    for child in ("id", "title", "updated"):
        assert len(root.findall(f"{A}{child}")) == 1
    self_url = f"https://feeds.example.org/news/{category or 'all'}.atom"
    assert root.findtext(f"{A}id") == self_url
    assert root.findtext(f"{A}author/{A}name") == "金融消息"
    links = root.findall(f"{A}link")
    selfs = [ln for ln in links if ln.get("rel") == "self"]
    assert len(selfs) == 1
    assert selfs[0].get("href") == self_url
    assert selfs[0].get("type") == "application/atom+xml"
    alternates = [ln for ln in links if ln.get("rel") in (None, "alternate")]
    assert [ln.get("href") for ln in alternates] == ["https://feeds.example.org/news/"]
    assert root.find(f"{A}generator").text == "aggregator"
    assert RFC3339_CST.match(root.findtext(f"{A}updated") or "")

    ids = []
    for entry, source in zip(root.iter(f"{A}entry"), entries, strict=True):
        for child in ("id", "title", "updated", "published"):
            assert len(entry.findall(f"{A}{child}")) == 1, child
        ids.append(entry.findtext(f"{A}id"))
        assert is_uri(ids[-1])
        assert RFC3339_CST.match(entry.findtext(f"{A}published") or "")
        assert RFC3339_CST.match(entry.findtext(f"{A}updated") or "")
        alt = [ln for ln in entry.findall(f"{A}link") if ln.get("rel", "alternate") == "alternate"]
        assert len(alt) == 1
        assert alt[0].get("rel") == "alternate"
        assert alt[0].get("href") == source.link
        cats = [(c.get("term"), c.get("label")) for c in entry.findall(f"{A}category")]
        assert cats == [(c, CATEGORIES[c].title) for c in source.categories]
        body = entry.find(f"{A}content")
        if body is None:
            body = entry.find(f"{A}summary")
        assert body is not None and body.get("type") == "html"
        # an author at entry or feed level (RFC 4287 4.1.1)
        assert entry.find(f"{A}author") is not None or root.find(f"{A}author") is not None
    assert len(ids) == len(set(ids))
    assert ids[0] is not None and "NW202205252391675717" in ids[0]


def test_feedparser_reads_it_back() -> None:
    out = render_atom(meta(), sample_entries(), CATEGORIES, SETTINGS)
    parsed = feedparser.parse(out)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "科技日报新闻"
    assert parsed.feed.language == "zh-CN"
    assert parsed.feed.author == "金融消息"
    first, second = parsed.entries
    assert first.id == "urn:infocode:NW202205252391675717"
    assert first.link == LINK
    assert first.author == "科技日报"
    assert first.published == "2022-05-25T16:53:43+08:00"
    assert [t.term for t in first.tags] == ["emnews", "kejiribao"]
    assert [t.label for t in first.tags] == ["东财滚动新闻", "科技日报新闻"]
    assert first.content[0].type == "text/html"
    assert "内江高新区" in first.content[0].value
    assert second.title == 'Quotes "and" <angle> & ampersand'
    assert second.link == "https://example.org/a?id=7&utm=x"
    assert second.summary == "<p>digest &amp; more</p>"
    assert "author" not in second  # the feed-level author stands for it
