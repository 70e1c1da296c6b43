"""The parse -> dedupe boundary: what the network gave, made safe to store and write.

Every parsed item passes ``bounded_item`` once, in ``dedupe_feed``, whatever
format it came in (issue 13: one bad item must never stop its source or the
writers):

* strings lose NUL (PostgreSQL text cannot hold it) and lone surrogates
  (JSON's ``"\\ud800"``; UTF-8 cannot encode them), which become U+FFFD;
* dates are kept where every zone's offset still fits a ``datetime``
  (``9999-12-31T23:00:00Z`` in +08:00 overflows; the store then dates an item
  more than a day ahead when it was first seen);
* an infoCode longer than ``MAX_INFOCODE`` is not one (the store's column
  holds 64 characters, a post's file name is made of it): the item falls back
  to its guid or link for identity;
* a link is kept only when it is a well-formed http(s) URL: no spaces, quotes,
  angle brackets or control characters (a Jekyll post writes it as ``<LINK>``).
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aggregator.model import ParsedItem

#: the earliest and latest moments kept: a day inside datetime's range, so any offset fits
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)
#: NW + 18 digits is 20; other prefixes have fewer digits
MAX_INFOCODE = 40

_SURROGATE = re.compile("[\ud800-\udfff]")
#: what a well-formed URL never holds raw (RFC 3986 2: these are always percent-encoded)
_NOT_IN_URL = re.compile(r'[\x00-\x20\x7f-\x9f<>"\\^`{|}]')
#: http(s)://host[:port] with a plain host (no userinfo, no brackets), a port of 0-65535,
#: then a path, query, fragment or the end: what urlsplit reads as http(s) with a hostname
_PLAIN_HTTP = re.compile(
    r"(?i:https?)://[A-Za-z0-9._~-]+"
    r"(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"(?=[/?#]|\Z)"
)


def clean_text(value: str) -> str:
    """``value`` without NUL, its lone surrogates replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def bounded_date(value: datetime | None) -> datetime | None:
    """``value`` moved into [EARLIEST, LATEST] (in UTC when it had to move)."""
    if value is None:
        return None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past datetime.max in UTC
        return LATEST if value.year > 1 else EARLIEST
    if utc > LATEST:
        return LATEST
    if utc < EARLIEST:
        return EARLIEST
    return value


def well_formed_http(url: str) -> bool:
    """An absolute http(s) URL with a host, nothing a reader or Markdown would misread."""
    if _NOT_IN_URL.search(url):
        return False
    if _PLAIN_HTTP.match(url):  # what urlsplit would accept, without its ~4 us
        return True
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def bounded_item(item: ParsedItem) -> ParsedItem:
    """``item`` safe to store and write; the same object when nothing needed a change."""
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS:  # spelled out: fields() and a generic walk cost 6 us an item
        value = getattr(item, name)
        if isinstance(value, str) and (cleaned := clean_text(value)) is not value:
            changes[name] = cleaned
    if item.enclosures:
        enclosures = tuple(_cleaned(e) for e in item.enclosures)
        if any(a is not b for a, b in zip(enclosures, item.enclosures, strict=True)):
            changes["enclosures"] = enclosures
    for name in ("published", "updated"):
        value = getattr(item, name)
        if value is not None and (bounded := bounded_date(value)) is not value:
            changes[name] = bounded
    infocode = changes.get("infocode", item.infocode)
    if infocode is not None and len(infocode) > MAX_INFOCODE:
        changes["infocode"] = None  # the guid (hashed when long) keys it instead
    link = changes.get("link", item.link)
    if link is not None and not well_formed_http(link):
        changes["link"] = None
    return replace(item, **changes) if changes else item


#: the string fields of a ``ParsedItem`` (a test checks this is all of them)
_TEXT_FIELDS = (
    "guid", "link", "title", "content", "summary", "author", "infocode", "detail_url"
)  # fmt: skip


def _cleaned(record: Any) -> Any:
    """A frozen record (and the records in its tuples) with every string cleaned."""
    changes: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, str):
            cleaned: Any = clean_text(value)
        elif isinstance(value, tuple) and value:
            parts = tuple(
                _cleaned(v)
                if is_dataclass(v) and not isinstance(v, type)
                else clean_text(v)
                if isinstance(v, str)
                else v
                for v in value
            )
            cleaned = value if all(a is b for a, b in zip(parts, value, strict=True)) else parts
        else:
            continue
        if cleaned is not value and cleaned != value:
            changes[f.name] = cleaned
    return replace(record, **changes) if changes else record
