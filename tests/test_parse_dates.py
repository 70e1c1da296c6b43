"""parse_date: one table of every date shape feeds and APIs write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import feedparser
import pytest

from aggregator.parse.dates import parse_date

BEIJING = timezone(timedelta(hours=8), "Beijing")


def tz(hours: float) -> timezone:
    return timezone(timedelta(hours=hours))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # zone-less: the configured zone (feedparser reads 2020/1/10 as 2020-11-01)
        ("2020/1/10 14:33:00", datetime(2020, 1, 10, 14, 33, tzinfo=BEIJING)),
        ("2005-5-28 16:05:36", datetime(2005, 5, 28, 16, 5, 36, tzinfo=BEIJING)),
        ("2022-05-25 16:53:43", datetime(2022, 5, 25, 16, 53, 43, tzinfo=BEIJING)),
        ("2012-11-13T14:36:22", datetime(2012, 11, 13, 14, 36, 22, tzinfo=BEIJING)),
        ("2019-08-27", datetime(2019, 8, 27, tzinfo=BEIJING)),
        ("2022年5月25日 16:53", datetime(2022, 5, 25, 16, 53, tzinfo=BEIJING)),
        ("2022.05.25 16:53", datetime(2022, 5, 25, 16, 53, tzinfo=BEIJING)),
        ("20220525", datetime(2022, 5, 25, tzinfo=BEIJING)),
        ("20220525T165343Z", datetime(2022, 5, 25, 16, 53, 43, tzinfo=UTC)),
        # RFC 822 / 2822
        ("Tue, 27 Dec 2005 13:08:54+0900", datetime(2005, 12, 27, 13, 8, 54, tzinfo=tz(9))),
        ("Tue, 27 Dec 2005 13:08:54 +0900", datetime(2005, 12, 27, 13, 8, 54, tzinfo=tz(9))),
        ("Wed, 6 Apr 2022 21:07:47 +0000", datetime(2022, 4, 6, 21, 7, 47, tzinfo=UTC)),
        ("Wed, 06 Apr 2022 21:07:47 GMT", datetime(2022, 4, 6, 21, 7, 47, tzinfo=UTC)),
        ("6 Apr 2022 21:07 UT", datetime(2022, 4, 6, 21, 7, tzinfo=UTC)),
        ("Mon, 16 Oct 2017 15:10:00 EST", datetime(2017, 10, 16, 15, 10, tzinfo=tz(-5))),
        ("Mon, 16 Oct 2017 15:10:00 EDT", datetime(2017, 10, 16, 15, 10, tzinfo=tz(-4))),
        ("Mon, 16 Oct 2017 15:10:00 CST", datetime(2017, 10, 16, 15, 10, tzinfo=tz(-6))),  # US
        ("Mon, 16 Oct 2017 15:10:00 PDT", datetime(2017, 10, 16, 15, 10, tzinfo=tz(-7))),
        ("Mon, 16 Oct 2017 15:10:00 Z", datetime(2017, 10, 16, 15, 10, tzinfo=UTC)),
        ("Mon, 16 Oct 2017 15:10:00 GMT+8", datetime(2017, 10, 16, 15, 10, tzinfo=BEIJING)),
        ("Mon, 16 Oct 2017 15:10:00", datetime(2017, 10, 16, 15, 10, tzinfo=BEIJING)),
        ("Mon, 16 Oct 17 15:10:00 GMT", datetime(2017, 10, 16, 15, 10, tzinfo=UTC)),
        ("Monday, 16-Oct-2017 15:10:00 GMT", datetime(2017, 10, 16, 15, 10, tzinfo=UTC)),
        ("Tue, 10 Jun 2003 04:00:00 GMT (Pacific)", datetime(2003, 6, 10, 4, tzinfo=UTC)),
        ("Sun, 29 Sept 2019 10:00:00 +0530", datetime(2019, 9, 29, 10, tzinfo=tz(5.5))),
        (" Wed, 29 May 2019 10:16:00 +0000 ", datetime(2019, 5, 29, 10, 16, tzinfo=UTC)),
        # ISO 8601 / RFC 3339 with zones
        ("2022-05-25T16:53:43Z", datetime(2022, 5, 25, 16, 53, 43, tzinfo=UTC)),
        ("2022-05-25T16:53:43+08:00", datetime(2022, 5, 25, 16, 53, 43, tzinfo=BEIJING)),
        ("2022-05-25T16:53:43+0800", datetime(2022, 5, 25, 16, 53, 43, tzinfo=BEIJING)),
        ("2022-05-25T16:53:43-05:00", datetime(2022, 5, 25, 16, 53, 43, tzinfo=tz(-5))),
        ("2022-05-25 16:53:43 +08", datetime(2022, 5, 25, 16, 53, 43, tzinfo=BEIJING)),
        ("2005-10-21T08:11:00.123+08:00", datetime(2005, 10, 21, 8, 11, 0, 123000, tzinfo=BEIJING)),
        ("2022-05-25T24:00:00Z", datetime(2022, 5, 26, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        # epoch seconds and milliseconds
        ("1518478934", datetime(2018, 2, 12, 23, 42, 14, tzinfo=UTC)),
        ("1653829208000", datetime(2022, 5, 29, 13, 0, 8, tzinfo=UTC)),
        ("1518478934.5", datetime(2018, 2, 12, 23, 42, 14, 500000, tzinfo=UTC)),
        # US and asctime shapes
        ("April 6, 2022 3:04 PM EST", datetime(2022, 4, 6, 15, 4, tzinfo=tz(-5))),
        ("Apr 6th, 2022", datetime(2022, 4, 6, tzinfo=BEIJING)),
        ("Wed Apr  6 15:04:05 2022", datetime(2022, 4, 6, 15, 4, 5, tzinfo=BEIJING)),
        ("Wed Apr  6 15:04:05 UTC 2022", datetime(2022, 4, 6, 15, 4, 5, tzinfo=UTC)),
    ],
)
def test_shapes(text: str, expected: datetime) -> None:
    got = parse_date(text, BEIJING)
    assert got == expected
    assert got is not None and got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "garbage",
        "Κυρ, 29 Ιούλ 2004 12:53:00 GMT",  # Greek names (enc__iso-8859-7_date fixture)
        "\u039a\u03c5\u03c1, 29 \u0399\u03bf\u03cd\u03bb 2004",
        "今天 16:25",  # relative: no absolute date to give
        "2022-02-30",
        "2022-13-01 10:00",
        "2022-05-25 25:00:00",
        "1800-01-01",  # before 1900: a placeholder, not a date
        "0000-00-00 00:00:00",
        "Mon, 16 Foo 2017 15:10:00 GMT",
        "Mon, 16 Oct 2017 15:10:00 +9900",
        "12345",
        "-1518478934",
        "0",
        "1" * 200,
        "\x00\x01",
    ],
)
def test_unreadable_gives_none(text: str) -> None:
    assert parse_date(text, BEIJING) is None


def test_numbers_and_none() -> None:
    assert parse_date(1518478934, BEIJING) == datetime(2018, 2, 12, 23, 42, 14, tzinfo=UTC)
    assert parse_date(1653829208000, BEIJING) == datetime(2022, 5, 29, 13, 0, 8, tzinfo=UTC)
    assert parse_date(1653829208000.0, BEIJING) == datetime(2022, 5, 29, 13, 0, 8, tzinfo=UTC)
    assert parse_date(None, BEIJING) is None
    assert parse_date(True, BEIJING) is None
    assert parse_date(0, BEIJING) is None
    assert parse_date(-5, BEIJING) is None
    assert parse_date(10**30, BEIJING) is None


def test_results_are_always_aware() -> None:
    for text in ("2019-08-27", "Wed Apr  6 15:04:05 2022", "1518478934", "20220525"):
        got = parse_date(text, BEIJING)
        assert got is not None and got.tzinfo is not None


def test_unknown_zone_names_fall_back_to_the_configured_zone() -> None:
    got = parse_date("Mon, 16 Oct 2017 15:10:00 XYZ", BEIJING)
    assert got == datetime(2017, 10, 16, 15, 10, tzinfo=BEIJING)


def test_registered_with_feedparser_reading_zoneless_as_utc() -> None:
    doc = (
        b'<rss version="2.0"><channel><item><title>a</title>'
        b"<pubDate>2020/1/10 14:33:00</pubDate></item><item><title>b</title>"
        b"<pubDate>Tue, 27 Dec 2005 13:08:54+0900</pubDate></item></channel></rss>"
    )
    entries = feedparser.parse(doc).entries
    assert tuple(entries[0].published_parsed)[:6] == (2020, 1, 10, 14, 33, 0)
    assert tuple(entries[1].published_parsed)[:6] == (2005, 12, 27, 4, 8, 54)
