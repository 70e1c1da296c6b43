"""Atom, RSS 2.0, JSON Feed 1.1 and the HTML page of every feed, from one read (issue 17).

Polled through the CLI against the loopback server, on SQLite and PostgreSQL:
polls that add, change and drop items (out of a three-entry window) leave the
four files of every feed listing the same ids in the same order, with the
same titles and dates. The RSS is checked against the W3C Feed Validator's
main RSS 2.0 rules and the JSON Feed against the 1.1 spec's fields and types
(the validator itself is not installable here: see ``rss_problems``).
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree, html

from tests.finews_api import aggregator, snapshot
from tests.loopback import LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
STEMS = ("all", "tech", "news")
HOSTILE = '<p>body</p><script>alert("x")</script><img src=x onerror="alert(1)">'


def rss(items: list[tuple[int, str]], hostile: bool = False) -> str:
    """A source's RSS: (number, title) items, item n dated n hours into 2024-05-01."""
    parts = []
    for n, title in items:
        body = HOSTILE if hostile and n == items[0][0] else f"<p>{title} body</p>"
        parts.append(
            f"<item><title>{title}</title><link>https://example.org/{n}</link>"
            f"<guid>https://example.org/{n}</guid>"
            f"<pubDate>Wed, 01 May 2024 {n:02d}:00:00 +0000</pubDate>"
            f"<author>desk@example.org (Desk {n % 2})</author>"
            f"<description><![CDATA[{body}]]></description></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://example.org/</link><description>d</description>{''.join(parts)}"
        "</channel></rss>"
    )


def write_config(tmp_path: Path, base: str, db_url: str) -> Path:
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
base_url = "http://127.0.0.1:8080/"
timezone = "Asia/Shanghai"
entries_per_feed = 3

[categories.tech]
title = "Tech <&> 科技"

[categories.news]
title = "News"
description = "Everything new"

[[sources]]
id = "a"
url = "{base}/a.xml"
categories = ["tech", "news"]

[[sources]]
id = "b"
url = "{base}/b.xml"
categories = ["news"]
""",
        encoding="utf-8",
    )
    return config


# ------------------------------------------------------------------ reading the four formats


def atom_entries(data: bytes) -> list[dict[str, Any]]:
    root = etree.fromstring(data)
    return [
        {
            "id": e.findtext(f"{ATOM}id"),
            "title": e.findtext(f"{ATOM}title"),
            "published": datetime.fromisoformat(e.findtext(f"{ATOM}published")),
            "link": e.find(f"{ATOM}link[@rel='alternate']").get("href"),
        }
        for e in root.iterfind(f"{ATOM}entry")
    ]


def rss_items(data: bytes) -> list[dict[str, Any]]:
    root = etree.fromstring(data)
    return [
        {
            "id": i.findtext("guid"),
            "title": i.findtext("title"),
            "published": parsedate_to_datetime(i.findtext("pubDate")),
            "link": i.findtext("link"),
        }
        for i in root.iterfind("channel/item")
    ]


def json_items(data: bytes) -> list[dict[str, Any]]:
    return [
        {
            "id": i["id"],
            "title": i["title"],
            "published": datetime.fromisoformat(i["date_published"]),
            "link": i["url"],
        }
        for i in json.loads(data)["items"]
    ]


def page_articles(data: bytes) -> list[dict[str, Any]]:
    doc = html.document_fromstring(data)
    return [
        {
            "id": a.get("id"),
            "title": a.findtext("h2/a"),
            "published": datetime.fromisoformat(a.find(".//time").get("datetime")),
            "link": a.find("h2/a").get("href"),
        }
        for a in doc.iterfind(".//article")
    ]


def assert_formats_agree(public: Path) -> dict[str, list[str]]:
    """Every feed's four files list the same entries in the same order; its ids per feed."""
    ids = {}
    for stem in STEMS:
        atom = atom_entries((public / f"{stem}.atom").read_bytes())
        assert atom, stem
        assert rss_items((public / f"{stem}.rss").read_bytes()) == atom, stem
        assert json_items((public / f"{stem}.json").read_bytes()) == atom, stem
        assert page_articles((public / f"{stem}.html").read_bytes()) == atom, stem
        for ext in ("atom", "rss", "json", "html"):
            plain = (public / f"{stem}.{ext}").read_bytes()
            assert gzip.decompress((public / f"{stem}.{ext}.gz").read_bytes()) == plain
        ids[stem] = [e["id"] for e in atom]
    return ids


def poll(config: Path) -> str:
    done = aggregator("poll", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_format_lists_the_same_entries_after_each_poll(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    config = write_config(tmp_path, loopback.url, db_url)
    public = tmp_path / "public"
    loopback.add("/a.xml", rss([(1, "a one"), (2, "a two"), (3, "a three")]))
    loopback.add("/b.xml", rss([(4, "b four")]))
    poll(config)
    first = assert_formats_agree(public)
    assert len(first["news"]) == 3 and len(first["tech"]) == 3

    # nothing changed: not a byte of any file, nor its mtime
    before = snapshot(public)
    poll(config)
    assert snapshot(public) == before

    # a changes a title and adds a newer item; b adds two and drops its old one:
    # the window of three moves, entries leave every format at once
    loopback.add("/a.xml", rss([(1, "a one"), (2, "a two, retitled"), (5, "a five")]))
    loopback.add("/b.xml", rss([(6, "b six"), (7, "b seven")]))
    poll(config)
    second = assert_formats_agree(public)
    titles = [e["title"] for e in atom_entries((public / "news.atom").read_bytes())]
    assert titles == ["b seven", "b six", "a five"]
    assert "a two, retitled" in [
        e["title"] for e in json_items((public / "tech.json").read_bytes())
    ]
    assert second["news"] != first["news"] and second["tech"] != first["tech"]
    # ids are the Atom ids, whatever the format (and stable: a two kept its id)
    assert set(first["tech"]) & set(second["tech"])


def test_formats_setting_limits_the_files(tmp_path: Path, loopback: LoopbackServer) -> None:
    config = write_config(tmp_path, loopback.url, f"sqlite:///{tmp_path}/db.sqlite")
    config.write_text(
        config.read_text().replace("entries_per_feed = 3", 'formats = ["rss"]'), encoding="utf-8"
    )
    loopback.add("/a.xml", rss([(1, "a one")]))
    loopback.add("/b.xml", rss([(4, "b four")]))
    poll(config)
    public = tmp_path / "public"
    assert (public / "news.rss").exists() and (public / "news.html").exists()
    assert not (public / "news.atom").exists() and not (public / "news.json").exists()
    page = html.document_fromstring((public / "news.html").read_bytes())
    alternates = [ln.get("href") for ln in page.iterfind("head/link[@rel='alternate']")]
    assert alternates == ["news.rss"]
    # the indexes point readers at a format that is there
    opml = etree.fromstring((public / "index.opml").read_bytes())
    urls = [o.get("xmlUrl") for o in opml.iterfind("body/outline")]
    assert urls and all(u.endswith(".rss") for u in urls)
    index = html.document_fromstring((public / "index.html").read_bytes())
    found = [ln.get("href") for ln in index.iterfind("head/link[@rel='alternate']")]
    assert found and all(h.endswith(".rss") for h in found)
    assert all((public / h).exists() for h in found)


def test_a_format_taken_out_of_formats_is_not_left_frozen(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """Its files go at the next poll, one that changed nothing too: left, they would be
    served as they were forever and their readers never learn the feed stopped."""
    config = write_config(tmp_path, loopback.url, f"sqlite:///{tmp_path}/db.sqlite")
    loopback.add("/a.xml", rss([(1, "a one")]))
    loopback.add("/b.xml", rss([(4, "b four")]))
    poll(config)
    public = tmp_path / "public"
    stems = (*STEMS, "health")
    assert all((public / f"{s}.{x}").exists() for s in stems for x in ("atom", "rss", "json"))
    config.write_text(
        config.read_text().replace("entries_per_feed = 3", 'formats = ["rss"]'), encoding="utf-8"
    )
    poll(config)  # the same content: only the setting changed
    # no .atom, .json, nor their gzip twins, of any feed (categories, all, health)
    assert sorted(p.name for p in public.iterdir() if ".atom" in p.name or ".json" in p.name) == []
    for stem in stems:
        assert (public / f"{stem}.rss").exists() and (public / f"{stem}.rss.gz").exists()
        assert (public / f"{stem}.html").exists()
    assert all((public / name).exists() for name in ("index.html", "index.opml", "status.html"))


def test_check_config_refuses_an_unknown_format(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1", f"sqlite:///{tmp_path}/db.sqlite")
    config.write_text(
        config.read_text().replace("entries_per_feed = 3", 'formats = ["atom", "rss2"]'),
        encoding="utf-8",
    )
    done = aggregator("check-config", "-c", str(config))
    assert done.returncode == 2
    assert "formats" in done.stdout + done.stderr


# ------------------------------------------------------------------ RSS 2.0 validity


_RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"
)
_CHANNEL_ELEMENTS = {
    "title", "link", "description", "language", "copyright", "managingEditor", "webMaster",
    "pubDate", "lastBuildDate", "category", "generator", "docs", "cloud", "ttl", "image",
    "rating", "textInput", "skipHours", "skipDays", "item", f"{ATOM}link",
}  # fmt: skip
_ITEM_ELEMENTS = {
    "title", "link", "description", "author", "category", "comments", "enclosure", "guid",
    "pubDate", "source", f"{DC}creator", f"{CONTENT}encoded",
}  # fmt: skip


def _date_problem(text: str | None, where: str) -> list[str]:
    """InvalidRFC2822Date and IncorrectDOW of the validator."""
    if text is None or not _RFC822.match(text):
        return [f"{where}: InvalidRFC2822Date {text!r}"]
    moment = parsedate_to_datetime(text)
    if moment.strftime("%a") != text[:3]:
        return [f"{where}: IncorrectDOW {text!r}"]
    return []


def rss_problems(data: bytes) -> list[str]:
    """The errors the W3C Feed Validator (rubys/feedvalidator: rss.py, channel.py, item.py)
    reports on RSS 2.0, for the elements we write: MissingElement, UndefinedElement,
    DuplicateElement, InvalidRFC2822Date/IncorrectDOW, ItemMustContainTitleOrDescription,
    InvalidFullLink, InvalidPermalink, Missing/Invalid enclosure attributes, self link."""
    problems: list[str] = []
    root = etree.fromstring(data)
    if root.tag != "rss" or root.get("version") != "2.0":
        problems.append("root: not <rss version='2.0'>")
    channels = root.findall("channel")
    if len(channels) != 1:
        return [*problems, "rss: exactly one channel"]
    channel = channels[0]
    for name in ("title", "link", "description"):
        if not (channel.findtext(name) or "").strip():
            problems.append(f"channel: MissingElement {name}")
    singles = ("title", "link", "description", "language", "lastBuildDate", "generator")
    for name in singles:
        if len(channel.findall(name)) > 1:
            problems.append(f"channel: DuplicateElement {name}")
    for child in channel:
        if child.tag not in _CHANNEL_ELEMENTS:
            problems.append(f"channel: UndefinedElement {child.tag}")
    if not re.match(r"^https?://", channel.findtext("link") or ""):
        problems.append("channel/link: InvalidFullLink")
    if channel.find("lastBuildDate") is not None:
        problems += _date_problem(channel.findtext("lastBuildDate"), "channel/lastBuildDate")
    selfs = [ln for ln in channel.iterfind(f"{ATOM}link") if ln.get("rel") == "self"]
    if len(selfs) != 1 or selfs[0].get("type") != "application/rss+xml":
        problems.append("channel: MissingAtomSelfLink")
    guids = []
    for n, item in enumerate(channel.iterfind("item")):
        where = f"item {n}"
        for child in item:
            if child.tag not in _ITEM_ELEMENTS:
                problems.append(f"{where}: UndefinedElement {child.tag}")
        for name in ("title", "link", "description", "guid", "pubDate", "author"):
            if len(item.findall(name)) > 1:
                problems.append(f"{where}: DuplicateElement {name}")
        if item.find("title") is None and item.find("description") is None:
            problems.append(f"{where}: ItemMustContainTitleOrDescription")
        link = item.findtext("link")
        if link is not None and not re.match(r"^https?://\S+$", link):
            problems.append(f"{where}/link: InvalidFullLink {link!r}")
        guid = item.find("guid")
        if guid is not None:
            guids.append(guid.text)
            permalink = guid.get("isPermaLink", "true")
            if permalink not in ("true", "false"):
                problems.append(f"{where}/guid: InvalidBooleanAttribute")
            elif permalink == "true" and not re.match(r"^https?://", guid.text or ""):
                problems.append(f"{where}/guid: InvalidPermalink")
        problems += _date_problem(item.findtext("pubDate"), f"{where}/pubDate")
        author = item.findtext("author")
        if author is not None and "@" not in author:
            problems.append(f"{where}/author: InvalidContact")
        for enclosure in item.iterfind("enclosure"):
            for attribute in ("url", "length", "type"):
                if not enclosure.get(attribute):
                    problems.append(f"{where}/enclosure: MissingAttribute {attribute}")
            if not (enclosure.get("length") or "").isdigit():
                problems.append(f"{where}/enclosure: InvalidIntegerAttribute length")
    if len(guids) != len(set(guids)):
        problems.append("channel: DuplicateItem guid")
    return problems


def test_rss_has_no_validator_errors(tmp_path: Path, loopback: LoopbackServer) -> None:
    config = write_config(tmp_path, loopback.url, f"sqlite:///{tmp_path}/db.sqlite")
    loopback.add("/a.xml", rss([(1, "a one &amp; more"), (2, "a two")], hostile=True))
    loopback.add("/b.xml", rss([(4, "b four")]))
    poll(config)
    public = tmp_path / "public"
    for stem in STEMS:
        data = (public / f"{stem}.rss").read_bytes()
        assert rss_problems(data) == [], stem
        root = etree.fromstring(data)
        item = root.find("channel/item")
        guid = item.find("guid")
        assert guid.get("isPermaLink") == "false" and guid.text.startswith("urn:")
        assert item.findtext("pubDate").endswith("+0800")  # the configured zone's offset
        assert root.find("channel").find(f"{ATOM}link").get("href") == (
            f"http://127.0.0.1:8080/{stem}.rss"
        )
    item = etree.fromstring((public / "tech.rss").read_bytes()).find("channel/item[2]")
    assert item.findtext(f"{DC}creator") == "Desk 1"
    assert [c.text for c in item.iterfind("category")] == ["News", "Tech <&> 科技"]
    # the sanitized body: no script, no handler, in RSS and JSON Feed alike
    assert item.findtext("title") == "a one & more"
    body = item.findtext("description")
    json_body = json.loads((public / "tech.json").read_bytes())["items"][1]["content_html"]
    for text in (body, json_body):
        assert "<p>body</p>" in text and "script" not in text and "onerror" not in text


def test_rss_checker_catches_what_the_validator_would() -> None:
    bad = (
        b'<rss version="2.0"><channel><title>t</title><link>/rel</link>'
        b"<item><guid>not a url</guid><pubDate>2024-05-01</pubDate><foo/></item>"
        b"<item><title>x</title><enclosure url='u'/></item></channel></rss>"
    )
    problems = rss_problems(bad)
    for expected in (
        "MissingElement description",
        "InvalidFullLink",
        "InvalidPermalink",
        "InvalidRFC2822Date",
        "UndefinedElement foo",
        "MissingAttribute length",
        "MissingAtomSelfLink",
    ):
        assert any(expected in p for p in problems), expected


# ------------------------------------------------------------------ JSON Feed 1.1


def json_feed_problems(doc: Any) -> list[str]:
    """The JSON Feed 1.1 spec (jsonfeed.org/version/1.1): required fields and their types."""
    problems: list[str] = []

    def typed(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> None:
        if key in obj and not isinstance(obj[key], kind):
            problems.append(f"{where}.{key}: not {kind}")

    if not isinstance(doc, dict):
        return ["top level is not an object"]
    if doc.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append("version: not https://jsonfeed.org/version/1.1")
    for key in ("title", "items"):
        if key not in doc:
            problems.append(f"{key}: required")
    for key in ("title", "home_page_url", "feed_url", "description", "language", "icon"):
        typed(doc, key, str, "feed")
    typed(doc, "items", list, "feed")
    typed(doc, "authors", list, "feed")
    typed(doc, "expired", bool, "feed")
    for hub in doc.get("hubs", []):
        if not isinstance(hub.get("type"), str) or not isinstance(hub.get("url"), str):
            problems.append("hubs: type and url are required strings")
    ids = []
    for n, item in enumerate(doc.get("items", [])):
        where = f"items[{n}]"
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"{where}.id: required string")
        ids.append(item.get("id"))
        if "content_html" not in item and "content_text" not in item:
            problems.append(f"{where}: content_html or content_text required")
        for key in ("url", "title", "content_html", "content_text", "summary", "image"):
            typed(item, key, str, where)
        for key in ("date_published", "date_modified"):
            if key in item:
                try:
                    moment = datetime.fromisoformat(item[key])
                except (TypeError, ValueError):
                    problems.append(f"{where}.{key}: not RFC 3339")
                else:
                    if moment.tzinfo is None:
                        problems.append(f"{where}.{key}: no offset (RFC 3339)")
        typed(item, "tags", list, where)
        if any(not isinstance(t, str) for t in item.get("tags", [])):
            problems.append(f"{where}.tags: strings only")
        for author in item.get("authors", []):
            if not isinstance(author, dict) or not any(
                isinstance(author.get(k), str) for k in ("name", "url", "avatar")
            ):
                problems.append(f"{where}.authors: an object with name, url or avatar")
        for a in item.get("attachments", []):
            if not isinstance(a.get("url"), str) or not isinstance(a.get("mime_type"), str):
                problems.append(f"{where}.attachments: url and mime_type are required strings")
            if "size_in_bytes" in a and not isinstance(a["size_in_bytes"], int):
                problems.append(f"{where}.attachments.size_in_bytes: not a number")
    if len(ids) != len(set(ids)):
        problems.append("items: ids repeat")
    return problems


def test_json_feed_follows_the_spec(tmp_path: Path, loopback: LoopbackServer) -> None:
    config = write_config(tmp_path, loopback.url, f"sqlite:///{tmp_path}/db.sqlite")
    loopback.add("/a.xml", rss([(1, "a one"), (2, "a two")], hostile=True))
    loopback.add("/b.xml", rss([(4, "b four")]))
    poll(config)
    public = tmp_path / "public"
    for stem in STEMS:
        doc = json.loads((public / f"{stem}.json").read_bytes())
        assert json_feed_problems(doc) == [], stem
        assert doc["feed_url"] == f"http://127.0.0.1:8080/{stem}.json"
        assert all(i["date_published"].endswith("+08:00") for i in doc["items"])
    news = json.loads((public / "news.json").read_bytes())
    assert news["description"] == "Everything new"
    assert news["items"][0]["authors"] == [{"name": "Desk 0"}]
    assert news["items"][0]["tags"] == ["News"]


@pytest.mark.parametrize(
    "doc",
    [
        {"title": "t", "items": []},
        {"version": "https://jsonfeed.org/version/1.1", "items": [{"id": 1, "content_html": ""}]},
        {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [{"id": "x"}]},
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "t",
            "items": [{"id": "x", "content_text": "", "date_published": "2024-05-01T00:00:00"}],
        },
    ],
)
def test_json_feed_checker_catches_spec_errors(doc: dict[str, Any]) -> None:
    assert json_feed_problems(doc)


def test_enclosures_in_rss_and_json_feed(tmp_path: Path, loopback: LoopbackServer) -> None:
    from tests.test_enclosures import EPISODES, PODCAST

    loopback.add("/a.xml", PODCAST.read_bytes())
    loopback.add("/b.xml", rss([(4, "b four")]))
    config = write_config(tmp_path, loopback.url, f"sqlite:///{tmp_path}/db.sqlite")
    config.write_text(config.read_text().replace("entries_per_feed = 3", ""), encoding="utf-8")
    poll(config)
    public = tmp_path / "public"
    rss_data = (public / "tech.rss").read_bytes()
    assert rss_problems(rss_data) == []
    found = [
        [(e.get("url"), e.get("type"), e.get("length")) for e in item.iterfind("enclosure")]
        for item in etree.fromstring(rss_data).iterfind("channel/item")
    ]
    assert found == [[(e.url, e.type, str(e.length))] for e in EPISODES]
    doc = json.loads((public / "tech.json").read_bytes())
    assert json_feed_problems(doc) == []
    attachments = [
        [(a["url"], a["mime_type"], a.get("size_in_bytes")) for a in item["attachments"]]
        for item in doc["items"]
    ]
    assert attachments == [[(e.url, e.type, e.length)] for e in EPISODES]
