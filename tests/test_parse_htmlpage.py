"""``type = "html"`` list pages (aggregator.parse.htmlpage): selectors -> parsed items."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import HtmlMapping
from aggregator.errors import EmptyFeed, NotAFeed
from aggregator.model import Fetched
from aggregator.parse.htmlpage import Pick, parse_html_page, split_pick

DATA = Path(__file__).parent / "data" / "fulltext"
URL = "http://news.example.org/news/list.html"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MAPPING = HtmlMapping(
    items="ul.list li",
    title="a",
    link="a@href",
    published="span.time",
    summary="p.digest",
    infocode="a@data-id",
)


def fetched(body: bytes, **headers: str) -> Fetched:
    return Fetched(URL, 200, body, headers, datetime(2022, 5, 25, tzinfo=UTC), 0.1)


def test_gbk_list_page_gives_items_with_absolute_links_dates_and_infocodes() -> None:
    feed = parse_html_page(fetched((DATA / "list.gbk.html").read_bytes()), MAPPING, tz=SHANGHAI)
    assert feed.title == "科技日报 - 要闻"
    assert [i.title for i in feed.items] == [
        "科技金融+组团发展 内江高新区力造百亿级产业集群",
        "话剧《约定无期限》河北各市巡演结束",
        "Testing Client-Side Applications with Django Post Mortem",
    ]
    assert [i.link for i in feed.items] == [
        "http://news.example.org/news/a/neijiang.html",
        "http://news.example.org/news/a/xinhua.html",
        "http://news.example.org/news/a/django.html",
    ]
    first = feed.items[0]
    assert first.published == datetime(2022, 5, 25, 16, 53, 43, tzinfo=SHANGHAI)
    assert first.infocode == "NW202205252391675717"
    assert first.guid == "NW202205252391675717"
    assert first.summary == "2014年，内江高新区诞生在沱江之畔，仅三年就获批成为国家级高新区。"
    assert feed.items[1].infocode is None and feed.items[1].guid == feed.items[1].link


def test_http_charset_wins_over_the_page_meta() -> None:
    body = '<meta charset="gbk"><ul class="list"><li><a href="/x">标题</a></li></ul>'.encode()
    feed = parse_html_page(
        fetched(body, **{"content-type": "text/html; charset=utf-8"}), MAPPING, tz=SHANGHAI
    )
    assert feed.items[0].title == "标题"
    assert feed.items[0].link == "http://news.example.org/x"


def test_base_href_and_attribute_of_the_item_itself() -> None:
    body = b'<base href="http://cdn.example.org/n/"><a class="i" href="1.html">One</a>'
    mapping = HtmlMapping(items="a.i", title="@class", link="@href")
    feed = parse_html_page(fetched(body), mapping, tz=SHANGHAI)
    assert feed.items[0].link == "http://cdn.example.org/n/1.html"


def test_a_redesigned_page_fails_naming_the_items_selector() -> None:
    with pytest.raises(EmptyFeed, match=r"items selector 'ul\.list li' matched nothing"):
        parse_html_page(fetched((DATA / "list-v2.html").read_bytes()), MAPPING, tz=SHANGHAI)


def test_a_title_selector_that_matches_in_no_item_fails_naming_it() -> None:
    mapping = HtmlMapping(items="ul.list li", title="h3 a", link="a@href")
    with pytest.raises(EmptyFeed, match=r"title selector 'h3 a' matched nothing in any of the 3"):
        parse_html_page(fetched((DATA / "list.gbk.html").read_bytes()), mapping, tz=SHANGHAI)


def test_an_empty_body_is_not_a_page() -> None:
    with pytest.raises(NotAFeed):
        parse_html_page(fetched(b""), MAPPING, tz=SHANGHAI)


@pytest.mark.parametrize(
    ("spec", "pick"),
    [
        ("a@href", Pick("a", "href")),
        ("span.time", Pick("span.time", None)),
        ("@data-id", Pick("", "data-id")),
        ('a[href*="@"]', Pick('a[href*="@"]', None)),
    ],
)
def test_picks(spec: str, pick: Pick) -> None:
    assert split_pick(spec) == pick


@pytest.mark.parametrize("spec", ["", "a@", "a..b@href", "@"])
def test_bad_picks(spec: str) -> None:
    with pytest.raises(ValueError):
        split_pick(spec)
