"""write.index: the OPML list and the HTML page name every feed and escape everything."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree, html

from aggregator.config import AggregatorSettings
from aggregator.model import CategoryInfo
from aggregator.write import render_index, render_opml

SETTINGS = AggregatorSettings(
    base_url="https://feeds.example.org/news/", timezone="Asia/Shanghai", title="金融消息"
)
ROWS = [
    CategoryInfo(
        "kejiribao",
        "科技日报新闻",
        "Science and Technology Daily",
        42,
        datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC),
    ),
    CategoryInfo("emnews", "东财滚动新闻", None, 0, None),
    CategoryInfo("evil", '<script>alert("x")</script> & "q"', "<b>desc</b>\x01", 1, None),
]
ATOM = "application/atom+xml"


def test_opml_lists_every_feed() -> None:
    out = render_opml(ROWS, SETTINGS)
    assert out.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<opml version=\"2.0\">")
    root = etree.fromstring(out)
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == "金融消息"
    outlines = root.findall("body/outline")
    assert [o.get("xmlUrl") for o in outlines] == [
        "https://feeds.example.org/news/all.atom",
        "https://feeds.example.org/news/kejiribao.atom",
        "https://feeds.example.org/news/emnews.atom",
        "https://feeds.example.org/news/evil.atom",
    ]
    assert {o.get("type") for o in outlines} == {"rss"}
    assert [o.get("text") for o in outlines] == ["金融消息", *(r.title for r in ROWS)]
    assert outlines[1].get("description") == "Science and Technology Daily"
    assert outlines[3].get("description") == "<b>desc</b>"  # escaped, control char gone


def test_opml_is_byte_stable() -> None:
    assert render_opml(ROWS, SETTINGS) == render_opml(list(ROWS), SETTINGS)


def test_index_autodiscovery_and_rows() -> None:
    out = render_index(ROWS, SETTINGS)
    assert out.startswith(b"<!DOCTYPE html>\n")
    doc = html.document_fromstring(out)
    assert doc.get("lang") == "zh-CN"
    assert doc.find("head/meta[@charset]").get("charset") == "utf-8"
    assert doc.findtext("head/title") == "金融消息"
    feeds = [
        (ln.get("title"), ln.get("href"))
        for ln in doc.iterfind("head/link")
        if ln.get("rel") == "alternate" and ln.get("type") == ATOM
    ]
    assert feeds == [("金融消息", "all.atom")] + [(r.title, f"{r.id}.atom") for r in ROWS]
    rows = doc.findall(".//tbody/tr")
    assert len(rows) == len(ROWS)
    first = [td.text_content() for td in rows[0].findall("td")]
    assert first == [
        "科技日报新闻Science and Technology Daily",
        "42",
        "2022-05-25 16:53",
        "kejiribao.atom · kejiribao.rss · kejiribao.json",
    ]
    assert rows[0].find(".//time").get("datetime") == "2022-05-25T16:53:43+08:00"
    links = [a.get("href") for a in rows[0].iterfind(".//a")]
    assert links == ["kejiribao.html", "kejiribao.atom", "kejiribao.rss", "kejiribao.json"]
    assert rows[1].findall("td")[2].text_content() == "—"


def test_index_escapes_everything_and_is_self_contained() -> None:
    out = render_index(ROWS, SETTINGS)
    doc = html.document_fromstring(out)
    assert doc.find(".//script") is None
    assert doc.find(".//b") is None
    assert b"\x01" not in out
    assert b"&lt;script&gt;" in out
    title = doc.findall(".//tbody/tr")[2].findall("td")[0].text_content()
    assert title == '<script>alert("x")</script> & "q"<b>desc</b>'
    evil = [ln for ln in doc.iterfind("head/link") if ln.get("href") == "evil.atom"]
    assert evil[0].get("title") == '<script>alert("x")</script> & "q"'
    # no external assets: nothing loaded from elsewhere
    assert doc.find(".//img") is None
    for el in doc.iter():
        assert el.get("src") is None
        if el.tag == "link":
            assert el.get("rel") in {"alternate", "outline"}
            assert "//" not in (el.get("href") or "")


def test_index_is_byte_stable() -> None:
    assert render_index(ROWS, SETTINGS) == render_index(list(ROWS), SETTINGS)
