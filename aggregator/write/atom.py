"""Entries -> Atom 1.0 bytes (RFC 4287), the same bytes for the same entries.

Built with feedgen, with its three traps handled: ``add_entry`` prepends
unless ``order="append"``; feed and entry ``updated`` default to now (always
set here, so nothing depends on the clock); and ``FeedEntry.atom_entry``
drops every attribute of an entry's ``<link>`` but ``href`` (feedgen 1.0
shadows the link dict with the element it builds). feedgen writes the feed's
own elements; the entries are built here with lxml, in feedgen's element
order and with ``rel`` kept (golden files prove the bytes are the same).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from feedgen.feed import FeedGenerator
from lxml import etree

from aggregator import HOMEPAGE, entryid
from aggregator.config import AggregatorSettings
from aggregator.model import ALL_FEED, Category, Entry
from aggregator.sanitize import strip_illegal_xml

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml"
#: xml:lang of a FeedMeta made without one; also the config's default ``language``
DEFAULT_LANG = "zh-CN"
#: reads feedgen's own head back (our bytes: no entity or network access needed)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What one Atom file says about itself, apart from its entries."""

    name: str  #: file stem and feed key: a category id, or ``all``
    title: str
    self_url: str  #: base_url + ``<name>.atom``; also the feed's atom:id
    alternate_url: str  #: the HTML page for people (index.html under base_url)
    updated: datetime  #: the feed's updated while it has no entries (never now())
    subtitle: str | None = None
    hub_url: str | None = None  #: WebSub hub, written as ``<link rel="hub">``
    author: str | None = None  #: feed-level author, so entries without one stay valid
    lang: str = DEFAULT_LANG  #: xml:lang on <feed>

    @property
    def file_name(self) -> str:
        return f"{self.name}.atom"


def feed_meta(
    category: Category | None, settings: AggregatorSettings, updated: datetime
) -> FeedMeta:
    """The FeedMeta of a category's feed, or of ``all.atom`` when ``category`` is None."""
    name = category.id if category else ALL_FEED
    return FeedMeta(
        name=name,
        title=category.title if category else settings.title,
        self_url=f"{settings.base_url}{name}.atom",
        alternate_url=settings.base_url,
        updated=updated,
        subtitle=category.description if category else None,
        hub_url=settings.websub_hub,
        author=settings.title,
        lang=settings.language,
    )


def entry_id(entry: Entry) -> str:
    """Atom id, stable forever and independent of base_url (entryid.py)."""
    return entryid.atom_id(entry.key, entry.infocode)


def in_zone(moment: datetime, tz: tzinfo) -> datetime:
    """``moment`` in the configured zone, whole seconds (2022-05-25T16:53:43+08:00).

    The offset is whole minutes (RFC 3339 5.6 has no seconds in it): before 1901
    Asia/Shanghai is local mean time, +08:05:43, written as +08:06.
    """
    local = moment.astimezone(tz)
    offset = local.utcoffset()
    if offset is not None and offset.seconds % 60:
        minutes = round(offset.total_seconds() / 60)
        local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    return local.replace(microsecond=0)


def _x(text: str | None) -> str:
    return strip_illegal_xml(text or "")


def render_atom(
    feed: FeedMeta,
    entries: Sequence[Entry],
    categories: Mapping[str, Category],
    settings: AggregatorSettings,
) -> bytes:
    """One Atom document; ``entries`` are written in the order given (newest first).

    Entries whose atom:id repeats an earlier one are left out (RFC 4287 4.1.1:
    ids are unique within a feed).
    """
    tz = settings.tz
    fg = FeedGenerator()
    fg.id(_x(feed.self_url))
    fg.title(_x(feed.title) or feed.name)
    if feed.subtitle and _x(feed.subtitle).strip():
        fg.subtitle(_x(feed.subtitle))
    fg.author(name=_x(feed.author or settings.title) or "aggregator")
    fg.link(href=_x(feed.self_url), rel="self", type=ATOM_TYPE)
    fg.link(href=_x(feed.alternate_url), rel="alternate", type="text/html")
    if feed.hub_url:
        fg.link(href=_x(feed.hub_url), rel="hub")
    fg.language(feed.lang)
    # No version: an upgrade alone should not rewrite every feed (and change its ETag).
    fg.generator("aggregator", uri=HOMEPAGE)

    seen: set[str] = set()
    elements: list[etree._Element] = []
    newest: datetime | None = None
    for entry in entries:
        atom_id = entry_id(entry)
        if atom_id in seen:
            continue
        seen.add(atom_id)
        elements.append(_entry_element(entry, atom_id, categories, tz))
        if newest is None or entry.updated > newest:
            newest = entry.updated
    fg.updated(in_zone(newest or feed.updated, tz))
    # feedgen's public output, parsed back: its private _create_atom would save the parse
    root = etree.fromstring(fg.atom_str(pretty=False), _PARSER)
    root.extend(elements)  # feedgen writes entries last, after every feed element
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _entry_element(
    entry: Entry, atom_id: str, categories: Mapping[str, Category], tz: tzinfo
) -> etree._Element:
    """One ``<entry>``, element for element what feedgen 1.0's ``FeedEntry.atom_entry``
    builds (plain tag names, as feedgen does), but with ``rel`` kept on the link and
    without feedgen's per-entry bookkeeping (most of the render time)."""
    sub = etree.SubElement
    element = etree.Element("entry")
    sub(element, "id").text = atom_id
    sub(element, "title").text = _x(entry.title).strip() or atom_id
    sub(element, "updated").text = in_zone(entry.updated, tz).isoformat()
    author = _x(entry.author).strip() if entry.author else ""
    if author:
        sub(sub(element, "author"), "name").text = author
    link = _x(entry.link).strip()
    content = summary = None
    if entry.content_html:
        content = _x(entry.content_html)
    elif entry.summary_html and link:
        summary = _x(entry.summary_html)
    elif not link:
        # RFC 4287 4.1.2: an entry without an alternate link must have content.
        content = _x(entry.summary_html)
    if content is not None:
        _html(sub(element, "content"), content)
    if link:
        sub(element, "link", href=link).set("rel", "alternate")
    for other in entry.via:  # the other sources' links to the same story
        sub(element, "link", href=_x(other).strip(), rel="via")
    for enclosure in entry.enclosures:  # RFC 4287 4.2.7.2: length is the size in octets
        media = sub(element, "link", href=_x(enclosure.url), rel="enclosure")
        if enclosure.type:
            media.set("type", _x(enclosure.type))
        if enclosure.length is not None:
            media.set("length", str(enclosure.length))
    if summary is not None:
        _html(sub(element, "summary"), summary)
    for cat_id in entry.categories:
        cat = categories.get(cat_id)
        category = sub(element, "category", term=_x(cat_id))
        label = _x(cat.title if cat else cat_id)
        if label:
            category.set("label", label)
    sub(element, "published").text = in_zone(entry.published, tz).isoformat()
    return element


def _html(element: etree._Element, text: str) -> None:
    if text:
        element.text = text
    element.set("type", "html")
