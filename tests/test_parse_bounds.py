"""The parse -> dedupe boundary (aggregator/parse/bounds.py), as tables."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from aggregator.model import Enclosure, ParsedItem
from aggregator.parse.bounds import (
    EARLIEST,
    LATEST,
    bounded_date,
    bounded_item,
    clean_text,
    well_formed_http,
)

EST = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("plain", "plain"),
        ("a\x00b", "ab"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("科技\x00日报\udfff", "科技日报\ufffd"),
        ("pair 😀", "pair 😀"),
    ],
)
def test_clean_text(given: str, expected: str) -> None:
    assert clean_text(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(9999, 12, 31, 23, tzinfo=UTC), LATEST),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=EST), LATEST),  # past datetime.max in UTC
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), EARLIEST),
        (datetime(1890, 1, 1, tzinfo=UTC), datetime(1890, 1, 1, tzinfo=UTC)),
    ],
)
def test_bounded_date(given: datetime, expected: datetime) -> None:
    got = bounded_date(given)
    assert got == expected
    assert got is not None
    got.astimezone(timezone(timedelta(hours=14)))  # every offset fits
    got.astimezone(timezone(timedelta(hours=-12)))


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://example.org/a?b=1#c", True),
        ("https://example.org/新闻/1", True),
        ("http://example.org/<script>alert(1)</script>", False),
        ("http://example.org/a b", False),
        ('http://example.org/"onmouseover', False),
        ("javascript:alert(1)", False),
        ("http:///nohost", False),
        ("http://example.org:99999/", False),
        ("ftp://example.org/", False),
    ],
)
def test_well_formed_http(url: str, ok: bool) -> None:
    assert well_formed_http(url) is ok


def test_bounded_item() -> None:
    item = ParsedItem(
        guid="g\x00",
        link="http://example.org/<script>",
        title="t\ud800",
        infocode="NW" + "1" * 300,
        published=datetime(9999, 12, 31, 23, tzinfo=UTC),
    )
    got = bounded_item(item)
    assert (got.guid, got.link, got.title, got.infocode) == ("g", None, "t\ufffd", None)
    assert got.published == LATEST
    fine = ParsedItem(guid="g", link="http://example.org/", title="t", infocode="NW1")
    assert bounded_item(fine) is fine


@pytest.mark.parametrize(
    "url",
    [
        "HTTP://Example.org/a",
        "https://127.0.0.1:8000/a?b=1",
        "http://h:65535/",
        "http://h:65536/",
        "http://h:0/",
        "http://h:/",
        "http://h:08000#x",
        "http://user@h/",
        "http://[::1]:80/",
        "http://./",
        "http://h?q",
        "https://例子.测试/",
        "http:/h/",
        "httpx://h/",
    ],
)
def test_well_formed_http_as_urlsplit_reads_it(url: str) -> None:
    """The shortcut for plain hosts answers what urlsplit (hostname, port) answers."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range
        expected = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        expected = False
    assert well_formed_http(url) is expected


@pytest.mark.parametrize(
    "name", [f.name for f in fields(ParsedItem) if "str" in str(f.type) and f.name != "enclosures"]
)
def test_bounded_item_cleans_every_text_field(name: str) -> None:
    """Every string field loses its NUL (the fields are listed by hand for speed)."""
    value = "http://example.org/a\x00b" if name in ("link", "detail_url") else "a\x00b\ud800"
    got = getattr(bounded_item(ParsedItem(**{name: value})), name)
    assert got in ("http://example.org/ab", "ab\ufffd")


def test_bounded_item_cleans_enclosures() -> None:
    item = ParsedItem(
        title="t", enclosures=(Enclosure("http://e/a.mp3", "audio/\x00mpeg", 3), Enclosure("u"))
    )
    got = bounded_item(item)
    assert got.enclosures == (Enclosure("http://e/a.mp3", "audio/mpeg", 3), Enclosure("u"))
    assert got.enclosures[1] is item.enclosures[1]
    assert bounded_item(got) is got
