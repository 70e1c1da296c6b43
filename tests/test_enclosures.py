"""Enclosures end to end (issue 13): parsed from every format, merged, stored, written.

Podcast and media feeds lost their audio and video: enclosures were not in
the records. Each stage is tested against its real part (both parse paths,
the merge policy, SQLite and PostgreSQL, the Atom writer), and a real
podcast feed is polled through the CLI from a loopback server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from aggregator.config import SourceConfig
from aggregator.dedupe import dedupe_feed
from aggregator.model import Category, Enclosure, Fetched
from aggregator.parse import parse_feed
from aggregator.parse.feed import parse_fast, parse_feedparser
from aggregator.parse.links import enclosures
from aggregator.store import Store
from aggregator.store.merge import merge_versions, merged_hash
from tests.loopback import LoopbackServer

TZ = ZoneInfo("Asia/Shanghai")
URL = "http://127.0.0.1/feed.xml"
ATOM = "{http://www.w3.org/2005/Atom}"
PODCAST = Path(__file__).parent / "data" / "parse" / "feeds"
PODCAST = PODCAST / "podcast__itunes_sample__feedjira.rss.xml"
EPISODES = [
    Enclosure(
        "http://example.com/podcasts/everything/AllAboutEverythingEpisode3.m4a",
        "audio/x-m4a",
        8727310,
    ),
    Enclosure(
        "http://example.com/podcasts/everything/AllAboutEverythingEpisode2.mp3",
        "audio/mpeg",
        5650889,
    ),
    Enclosure(
        "http://example.com/podcasts/everything/AllAboutEverythingEpisode1.mp3",
        "audio/mpeg",
        4989537,
    ),
]

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>t</title>
<link>http://example.org/</link>
<item><title>one</title><link>http://example.org/1</link><guid>1</guid>
<pubDate>Wed, 25 May 2022 16:53:43 +0800</pubDate>
<enclosure url="http://cdn.example.org/1.mp3" length="123" type="audio/mpeg"/>
<enclosure url="media/1.ogg" type="audio/ogg"/>
<enclosure url="javascript:alert(1)" length="1" type="audio/mpeg"/>
<enclosure url="ftp://example.org/1.mp3" length="1" type="audio/mpeg"/>
<enclosure url="http://cdn.example.org/1.mp3" length="999" type="audio/mpeg"/>
<enclosure url="http://cdn.example.org/bad.mp4" length="-5" type="video mp4"/>
<atom:link rel="enclosure" href="http://cdn.example.org/1.m4v" length="7" type="video/x-m4v"/>
</item>
<item><title>two</title><link>http://example.org/2</link><guid>2</guid>
<pubDate>Wed, 25 May 2022 16:53:43 +0800</pubDate></item>
</channel></rss>"""

RSS_EXPECTED = (
    Enclosure("http://cdn.example.org/1.mp3", "audio/mpeg", 123),
    Enclosure("http://127.0.0.1/media/1.ogg", "audio/ogg", None),
    Enclosure("http://cdn.example.org/bad.mp4", None, None),
    Enclosure("http://cdn.example.org/1.m4v", "video/x-m4v", 7),
)

ATOM_FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://example.org/base/">
<title>t</title><id>urn:t</id><updated>2022-05-25T08:53:43Z</updated>
<entry><title>one</title><id>urn:1</id><updated>2022-05-25T08:53:43Z</updated>
<link rel="alternate" href="http://example.org/1"/>
<link rel="enclosure" href="a/1.mp3" type="audio/mpeg" length="321"/>
<link rel="enclosure" href="http://example.org/2.mp3" length="12x"/>
</entry></feed>"""


def _fetched(body: bytes, content_type: str = "application/xml") -> Fetched:
    return Fetched(URL, 200, body, {"content-type": content_type}, datetime.now(UTC), 0.0)


def test_rss_and_atom_enclosures_on_both_parse_paths() -> None:
    for body, expected in (
        (RSS, RSS_EXPECTED),
        (
            ATOM_FEED,
            (
                Enclosure("http://example.org/base/a/1.mp3", "audio/mpeg", 321),
                # feedparser's default type of a link: text/html
                Enclosure("http://example.org/2.mp3", "text/html", None),
            ),
        ),
    ):
        fast = parse_fast(body, None, URL, TZ, None, 100)
        assert fast is not None  # the fast path read it itself
        assert fast.items[0].enclosures == expected
        slow = parse_feedparser(body, None, URL, None, TZ, None, 100)
        assert slow.items[0].enclosures == expected
    assert parse_fast(RSS, None, URL, TZ, None, 100).items[1].enclosures == ()  # type: ignore[union-attr]


def test_json_feed_attachments() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "t",
        "items": [
            {
                "id": "1",
                "url": "http://example.org/1",
                "content_text": "x",
                "date_published": "2022-05-25T16:53:43+08:00",
                "attachments": [
                    {"url": "http://cdn.example.org/1.mp3", "mime_type": "audio/mpeg",
                     "size_in_bytes": 1234, "duration_in_seconds": 60},
                    {"url": "/rel.mp4", "mime_type": "video/mp4", "size_in_bytes": 1.5},
                    {"url": "data:audio/mpeg;base64,AAAA", "mime_type": "audio/mpeg"},
                    {"url": "http://cdn.example.org/2.mp3", "size_in_bytes": True},
                    "not an object",
                ],
            },
            {"id": "2", "content_text": "y", "attachments": "nope"},
        ],
    }  # fmt: skip
    feed = parse_feed(_fetched(json.dumps(doc).encode(), "application/feed+json"), tz=TZ)
    assert feed.items[0].enclosures == (
        Enclosure("http://cdn.example.org/1.mp3", "audio/mpeg", 1234),
        Enclosure("http://127.0.0.1/rel.mp4", "video/mp4", None),
        Enclosure("http://cdn.example.org/2.mp3", None, None),
    )
    assert feed.items[1].enclosures == ()


def test_only_http_urls_and_sane_lengths() -> None:
    got = enclosures(
        [
            ("https://e.org/a.mp3", "audio/mpeg; codecs=mp3", "  42 "),
            ("mailto:x@e.org", "audio/mpeg", "1"),
            ("https://e.org/b.mp3", "<script>", "99999999999999999999999"),
            ("https://e.org/c.mp3", None, 0),
            (None, "audio/mpeg", 1),
        ],
        "http://e.org/",
    )
    assert got == (
        Enclosure("https://e.org/a.mp3", "audio/mpeg", 42),
        Enclosure("https://e.org/b.mp3", None, None),
        Enclosure("https://e.org/c.mp3", None, 0),
    )


def test_a_real_podcast_keeps_every_episodes_audio() -> None:
    feed = parse_feed(_fetched(PODCAST.read_bytes(), "application/rss+xml"), tz=TZ)
    assert [i.enclosures for i in feed.items] == [(e,) for e in EPISODES]


def test_merge_takes_the_winners_enclosures_else_the_next_ones() -> None:
    source = SourceConfig(id="a", url="http://e.org/", categories=("news",))
    (item,) = dedupe_feed(source, parse_feed(_fetched(RSS), tz=TZ)).items[:1]
    bare = replace(item, source_id="b", enclosures=())
    low = replace(item, source_id="c", priority=-1, enclosures=(EPISODES[0],))
    assert merge_versions([bare, low]).enclosures == (EPISODES[0],)  # the winner has none
    top = replace(item, source_id="d", priority=5)
    assert merge_versions([bare, low, top]).enclosures == RSS_EXPECTED
    # and they are part of what readers see: a changed enclosure changes the hash
    merged = merge_versions([top])
    moved = merge_versions([replace(top, enclosures=(EPISODES[1],))])
    assert merged_hash(merged, item.published) != merged_hash(moved, item.published)  # type: ignore[arg-type]
    # an item without any hashes as it did before enclosures were kept
    plain = merge_versions([replace(top, enclosures=())])
    assert plain.enclosures == ()
    assert merged_hash(plain, item.published) == merged_hash(  # type: ignore[arg-type]
        replace(plain, enclosures=()),
        item.published,  # type: ignore[arg-type]
    )


def test_enclosures_are_stored_and_read_back(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        source = SourceConfig(id="a", url="http://e.org/", categories=("news",))
        store.sync_config([source], [Category("news", "News")], datetime.now(UTC))
        deduped = dedupe_feed(source, parse_feed(_fetched(RSS), tz=TZ))
        store.apply_items("a", deduped.items, datetime.now(UTC))
        by_title = {e.title: e for e in store.entries(None, 10)}
        assert by_title["one"].enclosures == RSS_EXPECTED
        assert by_title["two"].enclosures == ()
        # the same document again changes nothing; a changed enclosure updates the one entry
        assert store.apply_items("a", deduped.items, datetime.now(UTC)).unchanged == 2
        changed = [replace(deduped.items[0], enclosures=(EPISODES[2],), content_hash="new")]
        assert store.apply_items("a", changed, datetime.now(UTC)).updated == 1
        by_title = {e.title: e for e in store.entries(None, 10)}
        assert by_title["one"].enclosures == (EPISODES[2],)
    finally:
        store.close()


def test_a_polled_podcast_reaches_the_atom_feed_with_type_and_length(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    loopback.add(
        "/podcast.xml", PODCAST.read_bytes(), headers={"Content-Type": "application/rss+xml"}
    )
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""[aggregator]
database = "sqlite:///db.sqlite"
output_dir = "public"

[categories.podcast]
title = "Podcast"

[[sources]]
id = "podcast"
url = "{loopback.url}/podcast.xml"
categories = ["podcast"]
""",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in ("podcast.atom", "all.atom"):
        root = etree.parse(str(tmp_path / "public" / name)).getroot()
        found = [
            [
                (link.get("href"), link.get("type"), link.get("length"))
                for link in entry.iter(f"{ATOM}link")
                if link.get("rel") == "enclosure"
            ]
            for entry in root.iter(f"{ATOM}entry")
        ]
        assert found == [[(e.url, e.type, str(e.length))] for e in EPISODES], name


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ('&lt;img alt="Foo" src="http://e.org/f.png"&gt;', "Foo"),
        ('&lt;a href="http://e.org/" title="Bar"&gt;&lt;img src="x.png"&gt;&lt;/a&gt;', "Bar"),
        ('&lt;a href="http://e.org/"&gt;Baz&lt;/a&gt;', "Baz"),
    ],
)
def test_a_title_that_is_only_an_image_is_named_by_its_alt_text(title: str, expected: str) -> None:
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:t</id>
<updated>2022-05-25T08:53:43Z</updated>
<entry><title type="html">{title}</title><id>urn:1</id>
<updated>2022-05-25T08:53:43Z</updated></entry></feed>""".encode()
    source = SourceConfig(id="a", url="http://e.org/", categories=("news",))
    fast = parse_fast(body, None, URL, TZ, None, 100)
    assert fast is not None and fast.items[0].title == expected
    deduped = dedupe_feed(source, parse_feed(_fetched(body), tz=TZ))
    assert [i.title for i in deduped.items] == [expected]  # kept, not dropped as untitled
