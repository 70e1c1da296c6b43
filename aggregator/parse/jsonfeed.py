"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) -> ``ParsedFeed``.

feedparser 6 does not read JSON Feed, and the format is small enough to map
by hand: ``id``, ``url`` (else ``external_url``), ``title``, ``content_html``
(else ``content_text``, escaped), ``summary``, ``authors``/``author``,
``date_published``, ``date_modified``, ``attachments`` (as enclosures).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from aggregator.errors import NotAFeed, Unparseable
from aggregator.model import Enclosure, ParsedFeed, ParsedItem
from aggregator.parse.dates import parse_date
from aggregator.parse.infocode import find_infocode
from aggregator.parse.links import absolute_http, enclosures
from aggregator.parse.text import as_html, plain_text

_VERSIONS = ("https://jsonfeed.org/version/1", "http://jsonfeed.org/version/1")


def looks_like_json(text: str, content_type: str | None) -> bool:
    """A JSON body: says so in its Content-Type, or starts like an object or array."""
    start = text.lstrip(" \t\r\n\ufeff")[:1]
    if start == "<":
        return False
    return start in ("{", "[") or "json" in (content_type or "").lower()


def parse_json_feed(
    text: str,
    *,
    base: str,
    tz: ZoneInfo,
    infocode_pattern: str | None = None,
    max_items: int = 1000,
) -> ParsedFeed:
    """Raises ``Unparseable`` for broken JSON, ``NotAFeed`` for JSON that is no JSON Feed."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Unparseable(f"broken JSON: {exc}") from exc
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith(_VERSIONS):
        raise NotAFeed("a JSON document, not a JSON Feed (no jsonfeed.org version)")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise Unparseable("a JSON Feed without an items array")

    feed_link = absolute_http(doc.get("home_page_url"), base)
    warnings: list[str] = []
    items: list[ParsedItem] = []
    for raw in raw_items:
        if len(items) == max_items:
            warnings.append(f"items: more than {max_items}, kept the first {max_items}")
            break
        if not isinstance(raw, dict):
            warnings.append("items: an item that is not an object dropped")
            continue
        items.append(_item(raw, base or feed_link or "", tz, infocode_pattern))
    return ParsedFeed(
        title=plain_text(_str(doc.get("title")), is_html=False),
        link=feed_link,
        items=tuple(items),
        warnings=tuple(warnings),
    )


def _item(raw: Mapping[str, Any], base: str, tz: ZoneInfo, pattern: str | None) -> ParsedItem:
    guid = _str(raw.get("id"))
    link = absolute_http(raw.get("url"), base) or absolute_http(raw.get("external_url"), base)
    content = as_html(_str(raw.get("content_html")), is_html=True) or as_html(
        _str(raw.get("content_text")), is_html=False
    )
    updated = parse_date(_str(raw.get("date_modified")), tz)
    return ParsedItem(
        guid=guid,
        link=link,
        title=plain_text(_str(raw.get("title")), is_html=False),
        content=content,
        summary=as_html(_str(raw.get("summary")), is_html=False),
        author=_author(raw),
        published=parse_date(_str(raw.get("date_published")), tz) or updated,
        updated=updated,
        infocode=find_infocode(link, guid, pattern),
        enclosures=_attachments(raw.get("attachments"), base),
    )


def _attachments(value: object, base: str) -> tuple[Enclosure, ...]:
    """``attachments``: ``url``, ``mime_type``, ``size_in_bytes``."""
    if not isinstance(value, list):
        return ()
    return enclosures(
        (
            (a.get("url"), a.get("mime_type"), a.get("size_in_bytes"))
            for a in value
            if isinstance(a, dict)
        ),
        base,
    )


def _author(raw: Mapping[str, Any]) -> str | None:
    authors = raw.get("authors")
    candidates = authors if isinstance(authors, list) else [raw.get("author")]
    for author in candidates:
        if isinstance(author, dict) and (name := _str(author.get("name"))):
            return plain_text(name, is_html=False)
    return None


def _str(value: object) -> str | None:
    """Strings as they are, numbers as their digits (ids), anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None
