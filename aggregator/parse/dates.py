"""Date strings of every shape feeds and APIs write -> aware datetimes.

One parser for feeds and JSON APIs. A date without a zone is in the
source's zone (Chinese feeds and APIs write Beijing time bare). feedparser
misreads some common shapes (``2020/1/10 14:33:00`` as 2020-11-01,
``13:08:54+0900`` as nothing), so ``feed.py`` parses the raw strings with
``parse_date``. The same parser is registered with feedparser, zone-less read
as UTC there (its handlers take no zone), and its ``*_parsed`` fields are only
a fallback.

Zone names are read as their writer meant them (issue 13): a name the
source's zone itself uses is read by that zone (``CST`` from Asia/Shanghai is
China Standard Time, +08:00, as Java's ``Date.toString()`` writes it; from
America/Chicago it is -06:00); other names by the tables below (``CST`` then
is US Central, RFC 822's reading; ``ET``/``PT``... are the US zones with their
summer time). A name in neither is read as no zone, and reported to
``unknown_zone_names()``'s collector.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import feedparser

#: fixed-offset zone names (hours east of UTC). The ambiguous ones (CST, IST, BST, AST)
#: have their RFC 822 / most common meaning here, used when the source's zone does not
#: use the name itself.
_NAMED_ZONES = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEZ": 0, "WEST": 1, "WESZ": 1,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3, "NST": -3.5, "NDT": -2.5,
    "BST": 1, "IST": 5.5, "CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "MEZ": 1, "MESZ": 2,
    "EET": 2, "EEST": 3, "OEZ": 2, "OESZ": 3, "MSK": 3, "SAST": 2, "CAT": 2, "EAT": 3,
    "WAT": 1, "PKT": 5, "NPT": 5.75, "ICT": 7, "WIB": 7, "WITA": 8, "WIT": 9, "PHT": 8,
    "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AWST": 8, "ACST": 9.5, "ACDT": 10.5,
    "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
}  # fmt: skip
#: names of a region that has summer time: the local time there, on that date
_REGION_ZONES = {
    "ET": "America/New_York", "CT": "America/Chicago", "MT": "America/Denver",
    "PT": "America/Los_Angeles", "AT": "America/Halifax", "AKT": "America/Anchorage",
}  # fmt: skip
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
            ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
            ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}  # fmt: skip

_OFFSET = r"[+-]\d{1,2}(?::?\d{2})?"
_ZONE = (
    rf"(?P<zone>Z|{_OFFSET}|(?:UTC|GMT|UT)(?:{_OFFSET})?|[A-Za-z]{{2,5}}"
    r"|[A-Za-z]{2,14}/[A-Za-z0-9_+-]{1,20}(?:/[A-Za-z_]{1,20})?)"  # IANA: Etc/GMT
)
_TIME = r"(?P<H>\d{1,2})[:时](?P<M>\d{1,2})(?:[:分](?P<S>\d{1,2})(?:[.,](?P<f>\d+))?秒?)?"
_CLOCK = r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d+))?)?"
_SHAPES = [
    # ISO 8601 / RFC 3339 and its sloppy relatives: 2005-5-28 16:05:36, 2020/1/10, 2022年5月25日
    # (and Perforce's "Fri, 2006/09/15 08:19:53 EDT")
    re.compile(
        r"(?:[A-Za-z]{3},\s*)?(?P<y>\d{4})[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})日?"
        rf"(?:(?:\s*T\s*|\s+){_TIME})?\s*{_ZONE}?"
    ),
    # compact ISO 8601: 20220525, 20220525T165343Z, 20220525165343
    re.compile(
        r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"
        rf"(?:T?(?P<H>\d{{2}})(?P<M>\d{{2}})(?P<S>\d{{2}})?)?\s*{_ZONE}?"
    ),
    # RFC 822 / 2822: [Tue,] 27 Dec 2005 13:08:54 +0900 (the space before the zone optional)
    re.compile(
        r"(?:(?P<wd>[^\W\d_]+)\.?,?\s*)?(?P<d>\d{1,2})[\s-]+(?P<mon>[^\W\d_]+)\.?,?[\s-]+"
        rf"(?P<y>\d{{2,4}}),?(?:[\sT]+{_CLOCK})?\s*{_ZONE}?"
    ),
    # US: [Wednesday,] April 6, 2022 [at] 3:04 PM EST
    re.compile(
        r"(?:(?P<wd>[A-Za-z]+)\.?,?\s+)?(?P<mon>[A-Za-z]+)\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?"
        rf"\s+(?P<y>\d{{4}})(?:,?\s+(?:at\s+)?{_CLOCK}\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?\s*{_ZONE}?"
    ),
    # asctime / Unix date: Wed Apr  6 15:04:05 [UTC] 2022
    re.compile(
        r"(?P<wd>[A-Za-z]{3})\s+(?P<mon>[A-Za-z]{3})\s+(?P<d>\d{1,2})\s+"
        rf"{_CLOCK}\s+(?:{_ZONE}\s+)?(?P<y>\d{{4}})"
    ),
]
_EPOCH = re.compile(r"(?P<s>\d{9,10}(?:\.\d+)?)|(?P<ms>\d{13})")
_COMMENT = re.compile(r"\([^)]*\)")
_MIN_YEAR = 1900
#: longer strings are no date; cut before the comment regex (quadratic on "((((")
#: and before the cache (which would keep them)
_MAX_RAW = 1000

#: how the warning for a zone name no rule knows starts (logged once per source and name)
UNKNOWN_ZONE_WARNING = "dates: unknown zone name"

_UNKNOWN: ContextVar[set[str] | None] = ContextVar("unknown_zone_names", default=None)


@contextmanager
def unknown_zone_names() -> Iterator[set[str]]:
    """Collect the zone names ``parse_date`` could not read (in this thread) while open."""
    found: set[str] = set()
    token = _UNKNOWN.set(found)
    try:
        yield found
    finally:
        _UNKNOWN.reset(token)


def parse_date(value: str | int | float | None, tz: tzinfo) -> datetime | None:
    """Any date shape -> aware datetime (zone-less ones in ``tz``); None if unreadable.

    ``tz`` is the source's zone: zone-less dates are in it, and a zone name it
    uses is read its way.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if len(value) > _MAX_RAW:
        return None
    parsed, unknown = _parse_text(value, tz)
    if unknown and (found := _UNKNOWN.get()) is not None:
        found.add(unknown)
    return parsed


def unknown_zone_warnings(names: set[str], tz: tzinfo) -> tuple[str, ...]:
    """One warning per zone name ``unknown_zone_names`` collected."""
    return tuple(
        f"{UNKNOWN_ZONE_WARNING} {name!r}: read as no zone ({tz})" for name in sorted(names)
    )


@functools.lru_cache(maxsize=4096)  # each date string is read 2-3 times (fastfeed, to_item)
def _parse_text(value: str, tz: tzinfo) -> tuple[datetime | None, str | None]:
    """(the date, a zone name it has that was read as no zone)."""
    text = " ".join(_COMMENT.sub(" ", value).split())
    if not text or len(text) > 100:
        return None, None
    if m := _EPOCH.fullmatch(text):
        return _from_epoch(float(m.group("s") or int(m.group("ms")) / 1000)), None
    for shape in _SHAPES:
        m = shape.fullmatch(text)
        if m:
            try:
                return _build(m.groupdict(), tz)
            except (ValueError, OverflowError):
                return None, None
    return None, None


def _from_epoch(seconds: float) -> datetime | None:
    if seconds >= 1e11:  # milliseconds (seconds that large are past year 5000)
        seconds /= 1000
    if seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _build(parts: dict[str, str | None], tz: tzinfo) -> tuple[datetime | None, str | None]:
    year = int(parts["y"] or 0)
    if len(parts["y"] or "") == 2:
        year += 2000 if year < 50 else 1900  # RFC 2822 §4.3
    if year < _MIN_YEAR:
        return None, None
    if parts.get("mon") is not None:
        month = _MONTHS.get((parts["mon"] or "").lower())
        if month is None:
            return None, None
    else:
        month = int(parts["m"] or 0)
    hour, minute = int(parts.get("H") or 0), int(parts.get("M") or 0)
    second = min(int(parts.get("S") or 0), 59)  # a leap second is read as :59
    micro = int(((parts.get("f") or "") + "000000")[:6])
    ampm = (parts.get("ampm") or "").lower()[:1]
    if ampm and not 1 <= hour <= 12:
        return None, None
    if ampm == "p" and hour < 12:
        hour += 12
    elif ampm == "a" and hour == 12:
        hour = 0
    extra = timedelta()
    if hour == 24 and minute == second == micro == 0:  # ISO 8601 end of day
        hour, extra = 0, timedelta(days=1)
    stamp = datetime(year, month, int(parts["d"] or 0), hour, minute, second, micro)
    name = parts.get("zone")
    if not name:
        return stamp.replace(tzinfo=tz) + extra, None
    zone = _named_zone(name, tz, year)
    if zone is None:
        return None, None
    if zone is _UNKNOWN_NAME:
        return stamp.replace(tzinfo=tz) + extra, name
    return stamp.replace(tzinfo=zone) + extra, None


#: what ``_named_zone`` gives for a name it does not know: read the date as zone-less
_UNKNOWN_NAME = timezone(timedelta(0), "unknown")


@functools.lru_cache(maxsize=256)  # a feed writes one or two zones, building one costs 4 us
def _named_zone(text: str, tz: tzinfo, year: int) -> tzinfo | None:
    """The zone a name or offset stands for; None for a bad offset, or ``_UNKNOWN_NAME``."""
    upper = text.upper()
    if "/" in text:  # an IANA name
        try:
            return ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return _UNKNOWN_NAME
    for prefix in ("UTC", "GMT", "UT"):
        if upper.startswith(prefix) and upper[len(prefix) : len(prefix) + 1] in ("+", "-"):
            upper = upper[len(prefix) :]
            break
    if upper[:1] not in ("+", "-"):  # a name
        own = _names_used(tz, year).get(upper)
        if own is not None:
            return own
        if upper in _NAMED_ZONES:
            return timezone(timedelta(hours=_NAMED_ZONES[upper]))
        if upper in _REGION_ZONES:
            return ZoneInfo(_REGION_ZONES[upper])
        return _UNKNOWN_NAME
    digits = upper[1:].replace(":", "")
    hours, minutes = (digits, "0") if len(digits) <= 2 else (digits[:-2], digits[-2:])
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > timedelta(hours=18) or int(minutes) >= 60:
        return None
    return timezone(-offset if upper[0] == "-" else offset)


@functools.lru_cache(maxsize=256)
def _names_used(tz: tzinfo, year: int) -> dict[str, tzinfo]:
    """The abbreviations ``tz`` uses in ``year`` (sampled weekly), each with its offset."""
    names: dict[str, tzinfo] = {}
    start = datetime(min(max(year, 1901), 9998), 1, 1, 12, tzinfo=UTC)
    for week in range(53):
        local = (start + timedelta(weeks=week)).astimezone(tz)
        name, offset = local.tzname(), local.utcoffset()
        if name and name[:1].isalpha() and offset is not None:
            names.setdefault(name.upper(), timezone(offset))
    return names


def _feedparser_handler(text: str) -> time.struct_time | None:
    """feedparser date handler: UTC 9-tuple (zone-less read as UTC), None if unreadable."""
    parsed = parse_date(text, UTC)
    return parsed.astimezone(UTC).timetuple() if parsed else None


@functools.cache
def register_with_feedparser() -> None:
    """Put ``parse_date`` first among feedparser's date handlers (once a process)."""
    feedparser.registerDateHandler(_feedparser_handler)


register_with_feedparser()
