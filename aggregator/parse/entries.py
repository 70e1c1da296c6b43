"""One feedparser entry -> ``ParsedItem``: which of its fields we take, and how.

* guid: the entry id as written (feedparser was given no base to resolve it);
* link: the alternate link, absolute, http(s) only; a guid that is not a URL
  is never taken for a link;
* title: plain text; content: the HTML body as given (``content:encoded``,
  Atom content, else the description), plain text escaped; summary: the
  description/summary when it is not the content itself;
* published: published, else created, else updated (Atom feeds often give
  only ``updated``); dates are read from the raw strings by ``parse_date``,
  feedparser's parsed tuples (UTC) only when ours fail;
* enclosures: feedparser's ``enclosures`` (RSS ``<enclosure>``, Atom
  ``rel="enclosure"`` links), http(s) only, made absolute.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aggregator.model import Enclosure, ParsedItem
from aggregator.parse.dates import parse_date
from aggregator.parse.infocode import find_infocode
from aggregator.parse.links import absolute_http, enclosures, is_absolute_http
from aggregator.parse.text import as_html, plain_text

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


def is_html_type(content_type: object) -> bool:
    """Whether feedparser's ``*_detail.type`` says the value is markup."""
    return isinstance(content_type, str) and content_type.lower() in _HTML_TYPES


def to_item(
    entry: Mapping[str, Any], base: str, tz: ZoneInfo, infocode_pattern: str | None
) -> ParsedItem | None:
    """The item, or None for an entry with nothing in it (no id, link, title or text)."""
    guid = _text(entry.get("id"))
    link = _link(entry, base)
    title_type = (entry.get("title_detail") or {}).get("type")
    title = plain_text(_text(entry.get("title")), is_html=is_html_type(title_type))
    content = _content(entry)
    summary = _detail_html(entry.get("summary"), entry.get("summary_detail"))
    if summary == content:
        summary = None
    if not any((guid, link, title, content, summary)):
        return None
    updated = _date(entry, "updated", tz)
    published = _date(entry, "published", tz) or _date(entry, "created", tz) or updated
    return ParsedItem(
        guid=guid,
        link=link,
        title=title,
        content=content,
        summary=summary,
        author=_author(entry),
        published=published,
        updated=updated,
        infocode=find_infocode(link, guid, infocode_pattern),
        enclosures=_enclosures(entry, base),
    )


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _link(entry: Mapping[str, Any], base: str) -> str | None:
    raw = _text(entry.get("link"))
    guid_copy = raw and entry.get("guidislink") and raw == _text(entry.get("id"))
    if guid_copy and not is_absolute_http(raw or ""):  # feedparser's copy of a non-URL guid
        return None
    return absolute_http(raw, base)


def _content(entry: Mapping[str, Any]) -> str | None:
    contents = [c for c in entry.get("content") or () if _text(c.get("value"))]
    chosen = next((c for c in contents if is_html_type(c.get("type"))), None)
    if chosen is None and contents:
        chosen = contents[0]
    if chosen is not None:
        return as_html(chosen.get("value"), is_html=is_html_type(chosen.get("type")))
    return _detail_html(entry.get("summary"), entry.get("summary_detail"))


def _detail_html(value: object, detail: Mapping[str, Any] | None) -> str | None:
    if not isinstance(value, str):
        return None
    return as_html(value, is_html=detail is None or is_html_type(detail.get("type")))


def _enclosures(entry: Mapping[str, Any], base: str) -> tuple[Enclosure, ...]:
    """RSS ``<enclosure>`` and Atom ``rel="enclosure"`` links, as feedparser lists them."""
    listed = entry.get("enclosures") or ()
    return enclosures(
        ((e.get("href"), e.get("type"), e.get("length")) for e in listed if isinstance(e, Mapping)),
        base,
    )


def _author(entry: Mapping[str, Any]) -> str | None:
    detail = entry.get("author_detail") or {}
    name = _text(detail.get("name")) or _text(entry.get("author"))
    return plain_text(name, is_html=False)


def _date(entry: Mapping[str, Any], key: str, tz: ZoneInfo) -> datetime | None:
    # dict.get: FeedParserDict answers "updated" with "published" when it has none
    # (feedparser issue 310), which would invent an update time.
    raw = dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)
    if isinstance(raw, str) and (parsed := parse_date(raw, tz)):
        return parsed
    key += "_parsed"
    fallback = dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)
    if fallback:
        try:
            year, month, day, hour, minute, second = fallback[:6]
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except (TypeError, ValueError):
            return None
    return None
