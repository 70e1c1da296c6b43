"""Date strings of every shape feeds and APIs write -> aware datetimes.

One parser for feeds and JSON APIs. A date without a zone is in the
configured zone (Chinese feeds and APIs write Beijing time bare). feedparser
misreads some common shapes (``2020/1/10 14:33:00`` as 2020-11-01,
``13:08:54+0900`` as nothing), so ``feed.py`` parses the raw strings with
``parse_date``. The same parser is registered with feedparser, zone-less read
as UTC there (its handlers take no zone), and its ``*_parsed`` fields are only
a fallback.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import feedparser

#: named zones of RFC 822 and common usage; CST/EST... are the US ones (RFC 822 §5)
_NAMED_ZONES = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3, "NST": -3.5, "NDT": -2.5,
    "BST": 1, "IST": 5.5, "CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "WEST": 1, "EET": 2,
    "EEST": 3, "MSK": 3, "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AWST": 8, "ACST": 9.5,
    "ACDT": 10.5, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
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
_ZONE = rf"(?P<zone>Z|{_OFFSET}|(?:UTC|GMT|UT)(?:{_OFFSET})?|[A-Za-z]{{2,5}})"
_TIME = r"(?P<H>\d{1,2})[:时](?P<M>\d{1,2})(?:[:分](?P<S>\d{1,2})(?:[.,](?P<f>\d+))?秒?)?"
_CLOCK = r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d+))?)?"
_SHAPES = [
    # ISO 8601 / RFC 3339 and its sloppy relatives: 2005-5-28 16:05:36, 2020/1/10, 2022年5月25日
    re.compile(
        r"(?P<y>\d{4})[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})日?"
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


def parse_date(value: str | int | float | None, tz: tzinfo) -> datetime | None:
    """Any date shape -> aware datetime (zone-less ones in ``tz``); None if unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if len(value) > _MAX_RAW:
        return None
    return _parse_text(value, tz)


@functools.lru_cache(maxsize=4096)  # each date string is read 2-3 times (fastfeed, to_item)
def _parse_text(value: str, tz: tzinfo) -> datetime | None:
    text = " ".join(_COMMENT.sub(" ", value).split())
    if not text or len(text) > 100:
        return None
    if m := _EPOCH.fullmatch(text):
        return _from_epoch(float(m.group("s") or int(m.group("ms")) / 1000))
    for shape in _SHAPES:
        m = shape.fullmatch(text)
        if m:
            try:
                return _build(m.groupdict(), tz)
            except (ValueError, OverflowError):
                return None
    return None


def _from_epoch(seconds: float) -> datetime | None:
    if seconds >= 1e11:  # milliseconds (seconds that large are past year 5000)
        seconds /= 1000
    if seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _build(parts: dict[str, str | None], tz: tzinfo) -> datetime | None:
    year = int(parts["y"] or 0)
    if len(parts["y"] or "") == 2:
        year += 2000 if year < 50 else 1900  # RFC 2822 §4.3
    if year < _MIN_YEAR:
        return None
    if parts.get("mon") is not None:
        month = _MONTHS.get((parts["mon"] or "").lower())
        if month is None:
            return None
    else:
        month = int(parts["m"] or 0)
    hour, minute = int(parts.get("H") or 0), int(parts.get("M") or 0)
    second = min(int(parts.get("S") or 0), 59)  # a leap second is read as :59
    micro = int(((parts.get("f") or "") + "000000")[:6])
    ampm = (parts.get("ampm") or "").lower()[:1]
    if ampm and not 1 <= hour <= 12:
        return None
    if ampm == "p" and hour < 12:
        hour += 12
    elif ampm == "a" and hour == 12:
        hour = 0
    extra = timedelta()
    if hour == 24 and minute == second == micro == 0:  # ISO 8601 end of day
        hour, extra = 0, timedelta(days=1)
    zone = _zone(parts.get("zone"), tz)
    if zone is None:
        return None
    stamp = datetime(year, month, int(parts["d"] or 0), hour, minute, second, micro)
    return stamp.replace(tzinfo=zone) + extra


def _zone(text: str | None, tz: tzinfo) -> tzinfo | None:
    """The zone a date names; ``tz`` when it names none (or one we do not know)."""
    if not text:
        return tz
    return _named_zone(text, tz)


@functools.lru_cache(maxsize=256)  # a feed writes one or two zones, building one costs 4 us
def _named_zone(text: str, tz: tzinfo) -> tzinfo | None:
    upper = text.upper()
    if upper in _NAMED_ZONES:
        return timezone(timedelta(hours=_NAMED_ZONES[upper]))
    for prefix in ("UTC", "GMT", "UT"):
        if upper.startswith(prefix) and upper[len(prefix) : len(prefix) + 1] in ("+", "-"):
            upper = upper[len(prefix) :]
            break
    if upper[:1] not in ("+", "-"):
        return tz  # an unknown name: the configured zone beats no date at all
    digits = upper[1:].replace(":", "")
    hours, minutes = (digits, "0") if len(digits) <= 2 else (digits[:-2], digits[-2:])
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > timedelta(hours=18) or int(minutes) >= 60:
        return None
    return timezone(-offset if upper[0] == "-" else offset)


def _feedparser_handler(text: str) -> time.struct_time | None:
    """feedparser date handler: UTC 9-tuple (zone-less read as UTC), None if unreadable."""
    parsed = parse_date(text, UTC)
    return parsed.astimezone(UTC).timetuple() if parsed else None


@functools.cache
def register_with_feedparser() -> None:
    """Put ``parse_date`` first among feedparser's date handlers (once a process)."""
    feedparser.registerDateHandler(_feedparser_handler)


register_with_feedparser()
