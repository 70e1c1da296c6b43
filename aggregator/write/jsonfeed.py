"""A Snapshot -> JSON Feed 1.1 bytes (jsonfeed.org/version/1.1), stable for the same entries.

Keys are written in one fixed order, UTF-8 unescaped, one key a line, so the
same snapshot always gives the same bytes. Each item's ``id`` is the entry's
Atom id; ``content_html`` is the sanitized body (else the summary: an item
must carry content_html or content_text); dates are RFC 3339 with the
configured zone's offset.
"""

from __future__ import annotations

import json
from typing import Any

from aggregator.config import AggregatorSettings
from aggregator.sanitize import strip_illegal_xml
from aggregator.write.atom import in_zone
from aggregator.write.snapshot import Snapshot, enclosures_of

JSON_FEED_TYPE = "application/feed+json"
VERSION = "https://jsonfeed.org/version/1.1"


def _s(text: str | None) -> str:
    """The XML feeds' text rules for JSON too: no control characters, no lone surrogates."""
    return strip_illegal_xml(text or "")


def render_json(snapshot: Snapshot, settings: AggregatorSettings) -> bytes:
    """One JSON Feed 1.1 document; items in the snapshot's order (newest first)."""
    tz = settings.tz
    feed = snapshot.feed
    doc: dict[str, Any] = {
        "version": VERSION,
        "title": _s(feed.title).strip() or feed.name,
        "home_page_url": _s(feed.alternate_url),
        "feed_url": _s(snapshot.url("json")),
    }
    if feed.subtitle and _s(feed.subtitle).strip():
        doc["description"] = _s(feed.subtitle)
    doc["language"] = feed.lang
    doc["authors"] = [{"name": _s(feed.author or settings.title) or "aggregator"}]
    if feed.hub_url:
        doc["hubs"] = [{"type": "WebSub", "url": _s(feed.hub_url)}]
    items = []
    for entry, item_id in zip(snapshot.entries, snapshot.ids, strict=True):
        item: dict[str, Any] = {"id": item_id}
        link = _s(entry.link).strip()
        if link:
            item["url"] = link
        item["title"] = _s(entry.title).strip() or item_id
        item["content_html"] = _s(entry.content_html or entry.summary_html)
        item["date_published"] = in_zone(entry.published, tz).isoformat()
        item["date_modified"] = in_zone(entry.updated, tz).isoformat()
        author = _s(entry.author).strip() if entry.author else ""
        if author:
            item["authors"] = [{"name": author}]
        tags = []
        for cat_id in entry.categories:
            category = snapshot.categories.get(cat_id)
            tags.append(_s(category.title if category else cat_id).strip() or cat_id)
        if tags:
            item["tags"] = tags
        attachments = []
        for url, mime, length in enclosures_of(entry):
            attachment: dict[str, Any] = {"url": _s(url), "mime_type": _s(mime)}
            if length is not None:
                attachment["size_in_bytes"] = length
            attachments.append(attachment)
        if attachments:
            item["attachments"] = attachments
        items.append(item)
    doc["items"] = items
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
