"""parse_feed: every real fixture (count + golden), then the rules one by one.

Goldens live in tests/data/parse/golden/<fixture>.json; after a deliberate
change, rewrite them with ``UPDATE_GOLDEN=1 pytest tests/test_parse_feed.py``
and read the diff.
"""

from __future__ import annotations

import json
import os
import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aggregator.errors import EmptyFeed, NotAFeed, ParseError, Unparseable
from aggregator.model import Fetched, ParsedFeed, ParsedItem
from aggregator.parse import parse_feed

FIXTURES = Path(
    os.environ.get(
        "AGGREGATOR_FEED_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds",
    )
)
GOLDEN = Path(__file__).parent / "data" / "parse" / "golden"
TZ = ZoneInfo("Asia/Shanghai")
BEIJING = timezone(timedelta(hours=8))
URL = "http://example.org/dir/feed.xml"

#: fixture -> number of items, or the error it must raise
EXPECTED: dict[str, int | type[ParseError]] = {
    "bad__bare_ampersand__gofeed.xml": 0,
    "bad__empty_file__newsboat.xml": EmptyFeed,
    "bad__incomplete_cdata__feedparser.xml": 0,  # its one item is cut inside <title>
    "bad__legacy_entity_in_url__gofeed.xml": 0,
    "bad__truncated_epoch_dcdate__feedjira.rss.xml": 2,
    "bad__truncated_root__feedparser.xml": 1,
    "bad__undefined_entity__feedparser.xml": 0,
    "bad__whitespace_before_xmldecl__simplepie.atom.xml": 0,
    "cjk__big5__0804.blogspot.com.atom03.xml": 9,
    "cjk__big5__digitalwall.com.rss.xml": 1,
    "cjk__gb2312__2.blog.westca.com.rdf.xml": 4,
    "cjk__gb2312__bbs.blogsome.com.rss092.xml": 10,
    "cjk__gb2312__chen56.blogcn.com.rdf.xml": 15,
    "cjk__gb2312__cnblog.org.rss092.xml": 16,
    "cjk__gb2312__eighthday.blogspot.com.atom03.xml": 7,
    "cjk__gb2312__softsea.net.rss.xml": 100,
    "cjk__gb2312__w3cn.org.rss.xml": 20,
    "dup__entries_without_titles__newsboat.atom.xml": 5,
    "dup__guid_duplicates__newsboat.rss.xml": 3,
    "enc__double_encoded_html__feedparser.xml": 1,
    "enc__invalid_encoding_name__miniflux.atom.xml": 1,
    "enc__iso-8859-7_date__feedparser.xml": 0,
    "enc__latin1_undeclared__miniflux.rss.xml": 9,  # the 10th is an empty <item>
    "enc__utf8_declared_latin1__miniflux.atom.xml": 1,
    "enc__utf8_rtl_urdu__miniflux.rss.xml": 26,
    "enc__windows-1251__miniflux.rss.xml": 50,
    "real__bio_rdf_dateonly__rsparser.rdf.xml": 30,
    "real__blogger_oneline__newsboat.rss.xml": 8,
    "real__gmane_rdf_naive_dates__rss2email.rdf.xml": 5,
    "real__livemint_cdata_everywhere__rsparser.rss.xml": 25,
    "real__no_guids_rfc822_1digit_day__feedjira.rss.xml": 30,
    "rel__relative_links_script__reader.rss.xml": 1,
    "rel__xml_base_inherit__gofeed.atom.xml": 0,
    "zh__utf8__bbc-chinese-2013.atom": 2,
    "zh__utf8__jekyll-feed_inforest.site.atom.xml": 10,
}


def fetched(body: bytes | str, url: str = URL, **headers: str) -> Fetched:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Fetched(url, 200, body, headers, datetime(2022, 5, 25, tzinfo=UTC), 0.1)


def parse(body: bytes | str, **kwargs: Any) -> ParsedFeed:
    headers = kwargs.pop("headers", {})
    url = kwargs.pop("url", URL)
    return parse_feed(fetched(body, url, **headers), tz=TZ, **kwargs)


def fixture(name: str) -> ParsedFeed:
    return parse((FIXTURES / name).read_bytes())


def rss(items: str, channel: str = "<title>t</title>") -> str:
    return f'<?xml version="1.0"?><rss version="2.0"><channel>{channel}{items}</channel></rss>'


def test_every_fixture_is_listed() -> None:
    names = {p.name for p in FIXTURES.iterdir() if p.name not in ("README.md", "MANIFEST.json")}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    expected = EXPECTED[name]
    golden = GOLDEN / (name + ".json")
    if isinstance(expected, type):
        with pytest.raises(expected) as caught:
            fixture(name)
        got: dict[str, Any] = {"error": type(caught.value).__name__, "message": str(caught.value)}
    else:
        feed = fixture(name)
        assert len(feed.items) == expected
        for item in feed.items:
            assert_sane(item)
        got = summarize(feed)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(golden.read_text(encoding="utf-8"))


def assert_sane(item: ParsedItem) -> None:
    assert item.guid or item.link or item.title or item.content or item.summary
    for text in (item.guid, item.link, item.title, item.author):
        assert text is None or (text == text.strip() and text)
    if item.title:
        assert "\n" not in item.title and "  " not in item.title
    if item.link:
        assert item.link.startswith(("http://", "https://"))
    for stamp in (item.published, item.updated):
        assert stamp is None or stamp.tzinfo is not None


def summarize(feed: ParsedFeed) -> dict[str, Any]:
    def clip(text: str | None) -> Any:
        return None if text is None else {"len": len(text), "start": text[:60]}

    def stamp(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "title": feed.title,
        "link": feed.link,
        "ttl": feed.ttl.total_seconds() if feed.ttl else None,
        "warnings": list(feed.warnings),
        "items": [
            {
                "guid": i.guid,
                "link": i.link,
                "title": i.title,
                "author": i.author,
                "published": stamp(i.published),
                "updated": stamp(i.updated),
                "infocode": i.infocode,
                "content": clip(i.content),
                "summary": clip(i.summary),
            }
            for i in feed.items
        ],
    }


# --- ill-formed fixtures: what each trap must come out as ------------------


def test_bare_ampersand_and_legacy_entities_are_literal() -> None:
    assert fixture("bad__bare_ampersand__gofeed.xml").title == "Fish & Chips & more <3"
    feed = fixture("bad__legacy_entity_in_url__gofeed.xml")
    assert feed.title == "?page=1&copy=2;mode=x & done"
    assert feed.warnings == ()  # made well-formed: expat read it strictly


def test_undefined_entity_stays_literal() -> None:
    assert fixture("bad__undefined_entity__feedparser.xml").title == "testing &doesnotexist; entity"


def test_whitespace_and_comments_before_the_declaration() -> None:
    feed = fixture("bad__whitespace_before_xmldecl__simplepie.atom.xml")
    assert feed.title == "Whitespace before XML declaration"
    assert feed.warnings == ()
    feed = fixture("bad__incomplete_cdata__feedparser.xml")
    assert feed.title == "can feedparser read this xml"
    assert feed.link == "http://adcdefgh.com"
    assert any("read leniently" in w for w in feed.warnings)


def test_truncated_documents_keep_their_items() -> None:
    (item,) = fixture("bad__truncated_root__feedparser.xml").items
    assert item.link == "http://link/get?a=1&b=2"
    feed = fixture("bad__truncated_epoch_dcdate__feedjira.rss.xml")
    first, second = feed.items
    assert first.published == datetime(2017, 10, 16, 15, 10, tzinfo=UTC)
    assert first.updated == datetime(2018, 2, 12, 23, 42, 14, tzinfo=UTC)  # dc:date 1518478934
    assert second.updated == datetime(2017, 10, 17, 22, 17, tzinfo=UTC)
    assert any("no element found" in w for w in feed.warnings)


# --- fields ----------------------------------------------------------------


def test_relative_links_resolve_against_the_document_url() -> None:
    feed = fixture("rel__relative_links_script__reader.rss.xml")
    assert feed.link == "http://example.org/dir/file.html"
    (item,) = feed.items
    assert item.link == "http://example.org/dir/blog/post/1"
    # A guid is an identity, not a URL to resolve (it would change with the feed URL).
    assert item.guid == "7bd204c6-1655-4c27-aeee-53f933c5395f"
    # HTML content is kept as given (the text/html one of the two); sanitizing is later.
    assert item.content == "<script>evil</script> content"
    assert item.summary == 'one <a href="target">two</a> three'


def test_content_location_is_the_base() -> None:
    body = (FIXTURES / "rel__relative_links_script__reader.rss.xml").read_bytes()
    feed = parse(body, headers={"Content-Location": "https://cdn.example.net/x/feed.rss"})
    assert feed.items[0].link == "https://cdn.example.net/x/blog/post/1"


def test_xml_base_nesting() -> None:
    feed = fixture("rel__xml_base_inherit__gofeed.atom.xml")
    assert feed.title == "Example test"
    doc = """<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://example.com/blog/">
      <entry><id>urn:a</id><title>a</title><link href="post/1"/></entry>
      <entry xml:base="/other/"><id>urn:b</id><title>b</title><link href="post/2"/></entry>
    </feed>"""
    links = [i.link for i in parse(doc).items]
    assert links == ["http://example.com/blog/post/1", "http://example.com/other/post/2"]


def test_alternate_link_is_chosen_and_entries_without_titles_kept() -> None:
    feed = fixture("dup__entries_without_titles__newsboat.atom.xml")
    assert feed.items[2].link == "http://example.com/alternate-link-isnt-first.aspx"
    assert all(i.title is None for i in feed.items)
    assert all(i.content == "some content" for i in feed.items)


def test_guid_as_link_only_when_it_is_a_url() -> None:
    feed = parse(
        rss(
            "<item><guid>https://example.org/p/1</guid></item>"
            "<item><guid>12345</guid></item>"
            '<item><guid isPermaLink="false">https://example.org/p/3</guid></item>'
        )
    )
    assert [(i.guid, i.link) for i in feed.items] == [
        ("https://example.org/p/1", "https://example.org/p/1"),
        ("12345", None),
        ("https://example.org/p/3", None),
    ]


def test_duplicate_guids_are_reported_as_they_are() -> None:
    feed = fixture("dup__guid_duplicates__newsboat.rss.xml")
    guids = [i.guid for i in feed.items]
    assert guids[0] == guids[1] == "http://example.com/blog/this_is_an_item.html"
    assert feed.items[0].author == "Andreas Krennmair"


def test_cdata_everywhere_is_trimmed() -> None:
    item = fixture("real__livemint_cdata_everywhere__rsparser.rss.xml").items[0]
    assert item.guid == "1559104147038"
    assert item.link is not None and item.link.startswith("https://www.livemint.com/news/")
    assert item.author == "Elizabeth Roche"
    assert item.published == datetime(2019, 5, 29, 10, 16, tzinfo=UTC)


def test_dates_from_real_fixtures() -> None:
    w3cn = fixture("cjk__gb2312__w3cn.org.rss.xml").items[0]
    assert w3cn.published == datetime(2005, 5, 28, 16, 5, 36, tzinfo=BEIJING)
    assert w3cn.updated is None  # RSS gave no update time; none is invented
    hn = fixture("real__no_guids_rfc822_1digit_day__feedjira.rss.xml").items[0]
    assert hn.published == datetime(2022, 4, 6, 21, 7, 47, tzinfo=UTC)
    bio = fixture("real__bio_rdf_dateonly__rsparser.rdf.xml").items[0]
    assert bio.published == datetime(2019, 8, 27, tzinfo=BEIJING)
    gmane = fixture("real__gmane_rdf_naive_dates__rss2email.rdf.xml").items[0]
    assert gmane.published == datetime(2012, 11, 13, 14, 36, 22, tzinfo=BEIJING)
    big5 = fixture("cjk__big5__0804.blogspot.com.atom03.xml").items[0]
    assert big5.published == datetime(2005, 10, 21, 8, 11, tzinfo=BEIJING)
    assert big5.updated == datetime(2005, 10, 21, 0, 12, 34, tzinfo=UTC)
    jekyll = fixture("zh__utf8__jekyll-feed_inforest.site.atom.xml").items[0]
    assert jekyll.published == datetime(2019, 8, 9, tzinfo=BEIJING)


def test_atom_updated_only_fills_published() -> None:
    doc = """<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>
      <entry><id>urn:1</id><title>a</title><updated>2022-05-25T08:53:43Z</updated></entry></feed>"""
    (item,) = parse(doc).items
    assert item.published == item.updated == datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)


def test_no_feedparser_deprecation_noise() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        fixture("cjk__gb2312__w3cn.org.rss.xml")


def test_titles_are_one_line_of_plain_text() -> None:
    doc = """<feed xmlns="http://www.w3.org/2005/Atom">
      <title type="html">&lt;b&gt;Bold&lt;/b&gt; &amp;amp; co</title>
      <entry><id>urn:1</id><title type="html">  A
         &lt;em&gt;new&lt;/em&gt;&amp;nbsp;line &lt;script&gt;x()&lt;/script&gt;</title></entry>
      <entry><id>urn:2</id><title type="text">a &lt;b&gt; literal</title>
        <content type="text">1 &lt; 2 &amp; 3</content></entry></feed>"""
    feed = parse(doc)
    assert feed.title == "Bold & co"
    assert feed.items[0].title == "A new line"
    assert feed.items[1].title == "a <b> literal"
    assert feed.items[1].content == "1 &lt; 2 &amp; 3"  # plain text made HTML


def test_content_encoded_beats_description() -> None:
    doc = rss(
        "<item><title>a</title><description>short</description>"
        "<content:encoded><![CDATA[<p>long</p>]]></content:encoded></item>"
        "<item><title>b</title><description>&lt;p&gt;only&lt;/p&gt;</description></item>",
    ).replace("<rss ", '<rss xmlns:content="http://purl.org/rss/1.0/modules/content/" ')
    first, second = parse(doc).items
    assert (first.content, first.summary) == ("<p>long</p>", "short")
    assert (second.content, second.summary) == ("<p>only</p>", None)


def test_authors() -> None:
    doc = rss(
        "<item><title>a</title><author>ed@example.org (Ed Editor)</author></item>"
        "<item><title>b</title><dc:creator>科技日报</dc:creator></item>"
        "<item><title>c</title><author>ed@example.org</author></item>"
    ).replace("<rss ", '<rss xmlns:dc="http://purl.org/dc/elements/1.1/" ')
    assert [i.author for i in parse(doc).items] == ["Ed Editor", "科技日报", "ed@example.org"]


def test_only_http_links() -> None:
    doc = rss(
        "<item><title>a</title><link>javascript:alert(1)</link></item>"
        "<item><title>b</title><link>data:text/html,x</link></item>"
        "<item><title>c</title><link>  https://example.org/ok  </link></item>"
    )
    assert [i.link for i in parse(doc).items] == [None, None, "https://example.org/ok"]


def test_ttl() -> None:
    assert parse(rss("", "<title>t</title><ttl>60</ttl>")).ttl == timedelta(minutes=60)
    assert parse(rss("", "<title>t</title><ttl>soon</ttl>")).ttl is None
    assert parse(rss("", "<title>t</title><ttl>0</ttl>")).ttl is None


def test_max_items_keeps_document_order() -> None:
    items = "".join(f"<item><title>{n}</title></item>" for n in range(5))
    feed = parse(rss(items), max_items=2)
    assert [i.title for i in feed.items] == ["0", "1"]
    assert any("kept the first 2" in w for w in feed.warnings)


def test_infocode_from_link_guid_or_pattern() -> None:
    doc = rss(
        "<item><title>a</title><link>http://finews.example/NewsShare.html?infoCode=NW202205252391675717</link></item>"
        "<item><title>b</title><link>http://x.example/a</link><guid>http://x.example/?infocode=202112082206672930</guid></item>"
        "<item><title>c</title><link>http://finance.eastmoney.com/a/202205312398034850.html</link></item>"
    )
    feed = parse(doc)
    assert [i.infocode for i in feed.items] == [
        "NW202205252391675717",
        "NW202112082206672930",
        None,
    ]
    feed = parse(doc, infocode_pattern=r"/a/(\d{18})\.html")
    assert [i.infocode for i in feed.items] == [None, None, "NW202205312398034850"]


def test_well_formed_feed_without_items_is_valid() -> None:
    feed = parse(rss("", "<title>Nothing yet</title><link>https://example.org/</link>"))
    assert (feed.title, feed.link, feed.items) == ("Nothing yet", "https://example.org/", ())
    atom = parse('<feed xmlns="http://www.w3.org/2005/Atom"><title>Empty</title></feed>')
    assert atom.items == ()


def test_rss_served_as_html_is_still_read() -> None:
    feed = parse(rss("<item><title>a</title></item>"), headers={"Content-Type": "text/html"})
    assert [i.title for i in feed.items] == ["a"]


def test_junk_before_the_document() -> None:
    body = "<br />\n<b>Warning</b>: Cannot modify header information in x.php<br />\n" + rss(
        "<item><title>a</title></item>"
    )
    assert [i.title for i in parse(body).items] == ["a"]


# --- JSON Feed ---------------------------------------------------------------


JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "林间",
    "home_page_url": "https://example.org/",
    "items": [
        {
            "id": "1",
            "url": "/2022/05/25/a.html?infoCode=NW202205252391675717",
            "title": "科技金融+组团发展",
            "content_html": "<p>Hi</p>",
            "summary": "Hi & bye",
            "date_published": "2022-05-25T16:53:43+08:00",
            "date_modified": "2022-05-26T00:00:00Z",
            "authors": [{"name": "科技日报"}],
        },
        {"id": 2, "content_text": "a < b", "date_published": "2022-05-25 16:53:43"},
        "junk",
    ],
}


@pytest.mark.parametrize("content_type", [None, "application/feed+json", "application/json"])
def test_json_feed_1_1(content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    feed = parse(json.dumps(JSON_FEED), headers=headers)
    assert (feed.title, feed.link) == ("林间", "https://example.org/")
    first, second = feed.items
    assert first.guid == "1"
    assert first.link == "http://example.org/2022/05/25/a.html?infoCode=NW202205252391675717"
    assert first.infocode == "NW202205252391675717"
    assert (first.title, first.content, first.summary) == (
        "科技金融+组团发展",
        "<p>Hi</p>",
        "Hi &amp; bye",
    )
    assert first.author == "科技日报"
    assert first.published == datetime(2022, 5, 25, 16, 53, 43, tzinfo=BEIJING)
    assert first.updated == datetime(2022, 5, 26, tzinfo=UTC)
    assert (second.guid, second.content) == ("2", "a &lt; b")
    assert second.published == datetime(2022, 5, 25, 16, 53, 43, tzinfo=BEIJING)
    assert any("not an object" in w for w in feed.warnings)


def test_json_feed_1_0_author_and_cap() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "title": "x",
        "items": [{"id": str(n), "author": {"name": "Ed"}} for n in range(4)],
    }
    feed = parse(json.dumps(doc), max_items=3)
    assert [i.guid for i in feed.items] == ["0", "1", "2"]
    assert feed.items[0].author == "Ed"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"title": "no version", "items": []}', NotAFeed),
        ("[1, 2, 3]", NotAFeed),
        ('{"version": "https://jsonfeed.org/version/1.1", "items": {}}', Unparseable),
        ('{"version": "https://jsonfeed.org/version/1.1", "items": [', Unparseable),
    ],
)
def test_json_errors(body: str, error: type[ParseError]) -> None:
    with pytest.raises(error):
        parse(body)


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b"", EmptyFeed, "empty"),
        (b" \r\n\t ", EmptyFeed, "empty"),
        (b"\xef\xbb\xbf\n", EmptyFeed, "empty"),
        (
            b"<!DOCTYPE html><html><head><title>Oops</title></head><body>502</body></html>",
            NotAFeed,
            "HTML",
        ),
        (b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>', NotAFeed, "HTML"),
        (b"\n\n<HTML><BODY>Moved</BODY></HTML>", NotAFeed, "HTML"),
        (
            b'<?xml version="1.0"?><urlset><url><loc>http://x/</loc></url></urlset>',
            NotAFeed,
            "<urlset>",
        ),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', NotAFeed, "<svg>"),
        (b"hello, world", Unparseable, "no root"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", Unparseable, "no root"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", Unparseable, "no root"),
        (b"/etc/passwd", Unparseable, "no root"),  # never opened as a file
        (b"http://example.org/feed.xml", Unparseable, "no root"),  # never fetched
        (b"<rss version='2.0'><chan", Unparseable, "nothing recovered"),
    ],
)
def test_errors(body: bytes, error: type[ParseError], words: str) -> None:
    with pytest.raises(error, match=words):
        parse(body)


def test_parse_then_runs_the_next_stage_in_the_child_with_the_same_result() -> None:
    """A large feed: ``parse_feed_then`` parses and dedupes in the parse child; the keyed
    Items that come back are the ones parse-then-dedupe gives in this process."""
    from functools import partial

    from aggregator.config import SourceConfig
    from aggregator.dedupe import dedupe_feed
    from aggregator.parse import feed as feed_module
    from aggregator.parse import parse_feed_then

    body = (FIXTURES / "zh__utf8__jekyll-feed_inforest.site.atom.xml").read_bytes()
    assert len(body) > feed_module.INLINE_MAX_BYTES  # so it goes to the child
    src = SourceConfig(id="inforest", url=URL, categories=("inforest",))
    doc = fetched(body, **{"content-type": "application/atom+xml"})

    deduped = parse_feed_then(doc, partial(dedupe_feed, src), tz=TZ)
    local = dedupe_feed(
        src, feed_module.parse_document(doc.body, "application/atom+xml", URL, None, TZ, None, 1000)
    )
    assert len(deduped.items) == 10
    assert deduped == local
    # and it did run in another process
    pid, count = parse_feed_then(doc, _pid_and_count, tz=TZ)
    assert pid != os.getpid() and count == 10


def _pid_and_count(feed: ParsedFeed) -> tuple[int, int]:
    return os.getpid(), len(feed.items)
