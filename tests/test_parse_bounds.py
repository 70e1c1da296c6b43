"""The parse -> dedupe boundary (aggregator/parse/bounds.py), as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from aggregator.model import ParsedItem
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
