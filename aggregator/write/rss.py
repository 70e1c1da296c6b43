"""A Snapshot -> RSS 2.0 bytes (rssboard.org spec 2.0.11), the same bytes for the same entries.

Written with lxml rather than feedgen's ``rss_str``: feedgen stamps
``lastBuildDate`` with the clock unless told, writes ``<author>`` only from an
e-mail address (a publisher here is a name: ``dc:creator``), and keeps one
enclosure an entry through a different API than Atom's. Each item's ``guid``
is the entry's Atom id, ``isPermaLink="false"`` (it is a URN, not a page).
Dates are RFC 822 with the configured zone's offset (``+0800``).
"""

from __future__ import annotations

from email.utils import format_datetime

from lxml import etree

from aggregator import HOMEPAGE
from aggregator.config import AggregatorSettings
from aggregator.sanitize import strip_illegal_xml
from aggregator.write.atom import ATOM_NS, in_zone
from aggregator.write.snapshot import Snapshot, enclosures_of

RSS_TYPE = "application/rss+xml"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
DC_NS = "http://purl.org/dc/elements/1.1/"
_NSMAP = {"atom": ATOM_NS, "content": CONTENT_NS, "dc": DC_NS}


def _x(text: str | None) -> str:
    return strip_illegal_xml(text or "")


def render_rss(snapshot: Snapshot, settings: AggregatorSettings) -> bytes:
    """One RSS 2.0 document; items in the snapshot's order (newest first)."""
    tz = settings.tz
    feed = snapshot.feed
    sub = etree.SubElement
    rss = etree.Element("rss", nsmap=_NSMAP)  # type: ignore[arg-type]
    rss.set("version", "2.0")
    channel = sub(rss, "channel")
    sub(channel, "title").text = _x(feed.title).strip() or feed.name
    sub(channel, "link").text = _x(feed.alternate_url)
    sub(channel, "description").text = _x(feed.subtitle).strip() or _x(feed.title) or feed.name
    sub(channel, f"{{{ATOM_NS}}}link", href=_x(snapshot.url("rss")), rel="self", type=RSS_TYPE)
    if feed.hub_url:
        sub(channel, f"{{{ATOM_NS}}}link", href=_x(feed.hub_url), rel="hub")
    sub(channel, "language").text = feed.lang
    sub(channel, "lastBuildDate").text = format_datetime(in_zone(snapshot.updated, tz))
    sub(channel, "generator").text = f"aggregator ({HOMEPAGE})"
    sub(channel, "docs").text = "https://www.rssboard.org/rss-specification"
    for entry, guid in zip(snapshot.entries, snapshot.ids, strict=True):
        item = sub(channel, "item")
        sub(item, "title").text = _x(entry.title).strip() or guid
        link = _x(entry.link).strip()
        if link:
            sub(item, "link").text = link
        summary = _x(entry.summary_html)
        content = _x(entry.content_html)
        if summary or content:
            sub(item, "description").text = summary or content
        if content and summary:
            sub(item, f"{{{CONTENT_NS}}}encoded").text = content
        author = _x(entry.author).strip() if entry.author else ""
        if author:
            sub(item, f"{{{DC_NS}}}creator").text = author
        for cat_id in entry.categories:
            category = snapshot.categories.get(cat_id)
            label = _x(category.title if category else cat_id).strip() or cat_id
            sub(item, "category", domain=_x(snapshot.base_url)).text = label
        # RSS 2.0 has one enclosure an item (rssboard.org best practices); Atom and
        # JSON Feed carry every one
        for url, mime, length in enclosures_of(entry)[:1]:
            sub(item, "enclosure", url=_x(url), length=str(length or 0), type=_x(mime))
        sub(item, "guid", isPermaLink="false").text = guid
        sub(item, "pubDate").text = format_datetime(in_zone(entry.published, tz))
    return etree.tostring(rss, encoding="UTF-8", xml_declaration=True, pretty_print=True)
