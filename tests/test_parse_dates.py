"""parse_date: one table of every date shape feeds and APIs write."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
import pytest
from lxml import etree

from aggregator.parse.dates import parse_date, unknown_zone_names, unknown_zone_warnings
from tests.loopback import LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"

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


# ------------------------------------------- zone names as their writers meant them (issue 13)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHICAGO = ZoneInfo("America/Chicago")


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        # Java's Date.toString() on a Chinese server: CST is China Standard Time
        ("Wed May 25 16:53:43 CST 2022", SHANGHAI, "2022-05-25T16:53:43+08:00"),
        ("Wed, 25 May 2022 16:53:43 CST", SHANGHAI, "2022-05-25T16:53:43+08:00"),
        # ... and US Central where the source's zone is US Central, or does not use the name
        ("Wed May 25 16:53:43 CST 2022", CHICAGO, "2022-05-25T16:53:43-06:00"),
        ("Wed May 25 16:53:43 CDT 2022", CHICAGO, "2022-05-25T16:53:43-05:00"),
        ("Wed May 25 16:53:43 CST 2022", ZoneInfo("Europe/Berlin"), "2022-05-25T16:53:43-06:00"),
        # IST: Irish, Indian or Israeli; BST: British Summer Time; AST: Atlantic
        ("Thu, 30 Apr 2015 08:57:00 IST", ZoneInfo("Europe/Dublin"), "2015-04-30T08:57:00+01:00"),
        ("Thu, 30 Apr 2015 08:57:00 IST", ZoneInfo("Asia/Kolkata"), "2015-04-30T08:57:00+05:30"),
        ("Thu, 30 Apr 2015 08:57:00 IST", ZoneInfo("Asia/Jerusalem"), "2015-04-30T08:57:00+02:00"),
        ("Thu, 30 Apr 2015 08:57:00 IST", SHANGHAI, "2015-04-30T08:57:00+05:30"),
        ("Thu, 30 Apr 2015 08:57:00 BST", ZoneInfo("Europe/London"), "2015-04-30T08:57:00+01:00"),
        ("Thu, 30 Apr 2015 08:57:00 AST", SHANGHAI, "2015-04-30T08:57:00-04:00"),
        # the US regions with their summer time, whatever the source's zone
        ("Mon, 26 July 2004 16:31:00 ET", SHANGHAI, "2004-07-26T16:31:00-04:00"),
        ("Mon, 26 January 2004 16:31:00 PT", SHANGHAI, "2004-01-26T16:31:00-08:00"),
        ("Mon, 26 July 2004 16:31:00 PT", SHANGHAI, "2004-07-26T16:31:00-07:00"),
        # names the table knows (the configured zone took them before)
        ("Thu, 30 Apr 2015 08:57:00 MESZ", SHANGHAI, "2015-04-30T08:57:00+02:00"),
        ("Thu, 30 Apr 2015 08:57:00 WIB", SHANGHAI, "2015-04-30T08:57:00+07:00"),
        ("Thu, 30 Apr 2015 08:57:00 SAST", SHANGHAI, "2015-04-30T08:57:00+02:00"),
        # zone-less: the source's zone, with its summer time
        ("2022-05-25 16:53:43", CHICAGO, "2022-05-25T16:53:43-05:00"),
        ("2022-01-25 16:53:43", CHICAGO, "2022-01-25T16:53:43-06:00"),
    ],
)
def test_zone_names_are_read_as_the_source_means_them(
    text: str, zone: ZoneInfo, expected: str
) -> None:
    got = parse_date(text, zone)
    assert got is not None
    assert got == datetime.fromisoformat(expected)
    assert got.utcoffset() == datetime.fromisoformat(expected).utcoffset()


def test_an_unknown_name_is_collected_and_read_as_no_zone() -> None:
    with unknown_zone_names() as unknown:
        got = parse_date("Thu, 30 Apr 2015 08:57:00 XYZT", CHICAGO)
        again = parse_date("Thu, 30 Apr 2015 08:57:00 XYZT", CHICAGO)  # cached, still reported
        known = parse_date("Thu, 30 Apr 2015 08:57:00 CEST", CHICAGO)
    assert got == again == datetime(2015, 4, 30, 8, 57, tzinfo=CHICAGO)
    assert known == datetime(2015, 4, 30, 6, 57, tzinfo=UTC)
    assert unknown == {"XYZT"}
    assert unknown_zone_warnings(unknown, CHICAGO) == (
        "dates: unknown zone name 'XYZT': read as no zone (America/Chicago)",
    )


#: a selection of feedparser's own date tests (kurtmckee/feedparser, tests/test_date_parsers.py,
#: rfc822, asctime, perforce and w3dtf cases): input -> its UTC 6-tuple (zone-less as UTC)
FEEDPARSER_CASES = [
    ("Thu, 30 Apr 2015 08:57:00 MET", (2015, 4, 30, 7, 57, 0)),
    ("Thu, 30 Apr 2015 08:57:00 MEST", (2015, 4, 30, 6, 57, 0)),
    ("Thu, 01 Jan 04 19:48:21 GMT", (2004, 1, 1, 19, 48, 21)),
    ("Thu, 01 Jan 2004 19:48:21 GMT", (2004, 1, 1, 19, 48, 21)),
    ("Thu,  5 Apr 2012 10:00:00 GMT", (2012, 4, 5, 10, 0, 0)),
    ("Wed, 19 Aug 2009 18:28:00 Etc/GMT", (2009, 8, 19, 18, 28, 0)),
    ("Wed, 19 Feb 2012 22:40:00 GMT-01:01", (2012, 2, 19, 23, 41, 0)),
    ("Wed, 19 Feb 2012 22:40:00 -01:01", (2012, 2, 19, 23, 41, 0)),
    ("Mon, 13 Feb, 2012 06:28:00 UTC", (2012, 2, 13, 6, 28, 0)),
    ("Thu, 01 Jan 2004 00:00 GMT", (2004, 1, 1, 0, 0, 0)),
    ("Thu, 01 Jan 2004", (2004, 1, 1, 0, 0, 0)),
    ("Mon, 26 January 2004 16:31:00 AT", (2004, 1, 26, 20, 31, 0)),
    ("Mon, 26 January 2004 16:31:00 ET", (2004, 1, 26, 21, 31, 0)),
    ("Mon, 26 January 2004 16:31:00 CT", (2004, 1, 26, 22, 31, 0)),
    ("Mon, 26 January 2004 16:31:00 MT", (2004, 1, 26, 23, 31, 0)),
    ("Mon, 26 January 2004 16:31:00 PT", (2004, 1, 27, 0, 31, 0)),
    ("Sun, 16 Dec 2012 1:2:3:4 GMT", None),
    ("Sun, 16 zzz 2012 11:47:32 GMT", None),
    ("Sun, Dec x 2012 11:47:32 GMT", None),
    ("Sun, 16 Dec zz 11:47:32 GMT", None),
    ("Sun, 16 Dec 2012 11:47:32 +zz:00", None),
    ("Sun, 16 Dec 2012 11:47:32 +00:zz", None),
    ("Sun, 99 Jun 2009 12:00:00 GMT", None),
    ("Sun Jan  4 16:29:06 2004", (2004, 1, 4, 16, 29, 6)),
    ("Sun Jul 15 01:16:00 +0000 2012", (2012, 7, 15, 1, 16, 0)),
    ("Fri, 2006/09/15 08:19:53 EDT", (2006, 9, 15, 12, 19, 53)),
    ("2003-12-31T10:14:55Z", (2003, 12, 31, 10, 14, 55)),
    ("2003-12-31T10:14:55-08:00", (2003, 12, 31, 18, 14, 55)),
    ("2003-12-31T18:14:55+08:00", (2003, 12, 31, 10, 14, 55)),
    ("2007-04-23T23:25:47.538+10:00", (2007, 4, 23, 13, 25, 47)),
    ("2003-12-31", (2003, 12, 31, 0, 0, 0)),
    ("2004-02-28T18:14:55-08:00", (2004, 2, 29, 2, 14, 55)),
    ("2003-02-28T18:14:55-08:00", (2003, 3, 1, 2, 14, 55)),
    ("2000-02-28T18:14:55-08:00", (2000, 2, 29, 2, 14, 55)),
    ("2003-12-31T25:14:55Z", None),
    ("2003-12-31T10:61:55Z", None),
    ("2013-01-28T11:30:00-06:00Textra", None),
    ("2013-xx-27", None),
    ("2013-01-28T09:xx:00Z", None),
    ("2004-07-08 23:56:58 -00:20", (2004, 7, 9, 0, 16, 58)),
    ("2004-07-08 23:56:58", (2004, 7, 8, 23, 56, 58)),
    ("2004-07-08 23:56:58.0", (2004, 7, 8, 23, 56, 58)),
]


@pytest.mark.parametrize(("text", "expected"), FEEDPARSER_CASES)
def test_feedparsers_own_date_cases(text: str, expected: tuple[int, ...] | None) -> None:
    got = parse_date(text, UTC)
    assert (got.astimezone(UTC).timetuple()[:6] if got else None) == expected


# ------------------------------------------------------------ end to end, through a poll


def _rss(site: str, *dates: str) -> bytes:
    """Each source's own links: items of two sources with one link merge (issue 15)."""
    items = "".join(
        f"<item><title>item {i}</title><link>http://example.org/{site}/{i}</link>"
        f"<pubDate>{date}</pubDate></item>"
        for i, date in enumerate(dates)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://example.org/</link>{items}</channel></rss>"
    ).encode()


def test_a_poll_reads_each_sources_dates_in_its_own_zone(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """Java's ``Wed May 25 16:53:43 CST 2022`` from a Shanghai source is +08:00 in the Atom
    feed; the same text from a source in Chicago is US Central; an unknown name is one
    warning naming the source, and its date is read in the source's zone."""
    loopback.add("/java.xml", _rss("java", "Wed May 25 16:53:43 CST 2022"))
    loopback.add("/chicago.xml", _rss("chicago", "Wed May 25 16:53:43 CST 2022"))
    loopback.add(
        "/odd.xml", _rss("odd", "Wed, 25 May 2022 16:53:43 XYZT", "Wed, 25 May 2022 17:53:43 XYZT")
    )
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""[aggregator]
database = "sqlite:///db.sqlite"
output_dir = "public"
timezone = "Asia/Shanghai"

[categories.java]
title = "Java"
[categories.chicago]
title = "Chicago"
[categories.odd]
title = "Odd"

[[sources]]
id = "java"
url = "{loopback.url}/java.xml"
categories = ["java"]
timezone = "Asia/Shanghai"

[[sources]]
id = "chicago"
url = "{loopback.url}/chicago.xml"
categories = ["chicago"]
timezone = "America/Chicago"

[[sources]]
id = "odd"
url = "{loopback.url}/odd.xml"
categories = ["odd"]
timezone = "Europe/Berlin"
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

    def published(category: str) -> list[str]:
        root = etree.parse(str(tmp_path / "public" / f"{category}.atom")).getroot()
        return [el.text or "" for el in root.iter(f"{ATOM}published")]

    assert published("java") == ["2022-05-25T16:53:43+08:00"]
    assert published("chicago") == ["2022-05-26T06:53:43+08:00"]  # 16:53:43-06:00
    # Berlin in May is +02:00: 16:53:43+02:00 is 22:53:43+08:00
    assert sorted(published("odd")) == ["2022-05-25T22:53:43+08:00", "2022-05-25T23:53:43+08:00"]
    warned = [line for line in done.stderr.splitlines() if "XYZT" in line]
    assert len(warned) == 1, done.stderr
    assert "odd: dates: unknown zone name 'XYZT'" in warned[0]


def test_a_source_timezone_must_be_a_known_zone(tmp_path: Path) -> None:
    config = tmp_path / "aggregator.toml"
    config.write_text(
        """[aggregator]
database = "sqlite:///db.sqlite"
[categories.news]
title = "News"
[[sources]]
id = "a"
url = "http://127.0.0.1/a.xml"
categories = ["news"]
timezone = "Mars/Olympus_Mons"
""",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "timezone" in done.stderr + done.stdout
    assert "Mars/Olympus_Mons" in done.stderr + done.stdout
