"""One feed read once from the store: every format of it is written from this record.

RSS-Bridge's formats list different items (its #4731) because each is built
from its own read. Here a category's entries are read once per write, and
the Atom, RSS, JSON Feed and HTML files are all rendered from that one
``Snapshot``, so they hold the same entries, in the same order, with the
same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from aggregator.config import AggregatorSettings
from aggregator.model import Category, Entry
from aggregator.write.atom import FeedMeta, entry_id, render_atom

#: an entry's body in a feed stops here (characters); the store keeps it whole. One 9 MB
#: body a poll would otherwise grow all.atom without bound (issue 13)
MAX_FEED_BODY = 100_000


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A feed's metadata and its newest entries, as read in one transaction."""

    feed: FeedMeta
    entries: tuple[Entry, ...]  #: newest first; each id once (the first of each kept)
    ids: tuple[str, ...]  #: the entries' ids (Atom id = RSS guid = JSON Feed id)
    categories: Mapping[str, Category]  #: every category, for labels
    base_url: str  #: where output_dir is served

    def url(self, extension: str) -> str:
        """The public address of this feed's file of that format (``…/kejiribao.rss``)."""
        return f"{self.base_url}{self.feed.name}.{extension}"

    @property
    def updated(self) -> datetime:
        """The newest entry's ``updated``, else the fixed one of an empty feed (never now)."""
        return max((e.updated for e in self.entries), default=self.feed.updated)


def take_snapshot(
    feed: FeedMeta,
    entries: Iterable[Entry],
    categories: Mapping[str, Category],
    base_url: str,
) -> Snapshot:
    """Entries in the order given, an entry whose id repeats an earlier one left out
    (RFC 4287 4.1.1; JSON Feed 1.1: ids are unique in a feed)."""
    kept: list[Entry] = []
    ids: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        key = entry_id(entry)
        if key not in seen:
            seen.add(key)
            kept.append(bounded(entry))
            ids.append(key)
    return Snapshot(feed, tuple(kept), tuple(ids), categories, base_url)


Renderer = Callable[[Snapshot, AggregatorSettings], bytes]


def _atom(snapshot: Snapshot, settings: AggregatorSettings) -> bytes:
    return render_atom(snapshot.feed, snapshot.entries, snapshot.categories, settings)


def renderers() -> dict[str, Renderer]:
    """Format name (also the file extension) -> its renderer."""
    from aggregator.write.jsonfeed import render_json
    from aggregator.write.rss import render_rss

    return {"atom": _atom, "rss": render_rss, "json": render_json}


#: (url, media type, length in bytes or None) of one enclosure
EnclosureRow = tuple[str, str, int | None]


def enclosures_of(entry: Entry) -> list[EnclosureRow]:
    """The entry's enclosures as every writer reads them: a type always (RSS and JSON Feed
    require one: ``application/octet-stream`` when the source named none)."""
    return [
        (e.url, e.type or "application/octet-stream", e.length) for e in entry.enclosures if e.url
    ]


def bounded(entry: Entry) -> Entry:
    """``entry`` with a body and summary of at most ``MAX_FEED_BODY`` characters each."""
    if len(entry.content_html or "") <= MAX_FEED_BODY >= len(entry.summary_html or ""):
        return entry
    return replace(
        entry, content_html=_cut(entry.content_html), summary_html=_cut(entry.summary_html)
    )


def _cut(html: str | None) -> str | None:
    """The start of ``html`` up to a tag boundary, its open tags closed again, then "…"."""
    if html is None or len(html) <= MAX_FEED_BODY:
        return html
    from aggregator.sanitize import clean_html

    end = MAX_FEED_BODY - 1000  # room for the tags closed again
    opened = html.rfind("<", 0, end)
    if opened > html.rfind(">", 0, end):  # inside a tag: cut before it
        end = opened
    elif (amp := html.rfind("&", max(0, end - 12), end)) != -1 and ";" not in html[amp:end]:
        end = amp  # never half a character reference
    return clean_html(html[:end]) + "<p>…</p>"
