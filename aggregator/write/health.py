"""Health events -> the entries of ``health.atom`` (and its RSS, JSON Feed and page).

An admin subscribes to trouble in their own reader: each change of a
source's condition is one entry, titled with the source and what happened,
linking the status page, dated when the poll saw it. The entries go through
the same Snapshot and renderers as every other feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from aggregator.config import AggregatorSettings
from aggregator.model import Entry, HealthEvent
from aggregator.sanitize import strip_illegal_xml
from aggregator.write.atom import FeedMeta
from aggregator.write.snapshot import Snapshot, take_snapshot

HEALTH_FEED = "health"
STATUS_PAGE = "status.html"

_TITLES = {
    "failing": "{} is failing",
    "recovered": "{} recovered",
    "disabled": "{} is disabled (410 Gone)",
    "silent": "{} has gone silent",
}


def event_entry(event: HealthEvent, base_url: str) -> Entry:
    """One event as a feed entry; its id comes from the event's key, as an item's does."""
    title = _TITLES.get(event.kind, "{} " + event.kind).format(event.source_id)
    body = f"<p>{escape(strip_illegal_xml(event.message))}</p>"
    return Entry(
        key=event.key,
        infocode=None,
        title=title,
        link=f"{base_url}{STATUS_PAGE}#source-{event.source_id}",
        content_html=body,
        content_raw=None,
        summary_html=None,
        author=None,
        published=event.at,
        updated=event.at,
        categories=(),
        sources=(event.source_id,),
    )


def health_snapshot(
    events: Sequence[HealthEvent], settings: AggregatorSettings, empty_updated: datetime
) -> Snapshot:
    """The health feed's snapshot: ``events`` newest first."""
    base = settings.base_url
    meta = FeedMeta(
        name=HEALTH_FEED,
        title=f"{settings.title}: source health",
        self_url=f"{base}{HEALTH_FEED}.atom",
        alternate_url=f"{base}{STATUS_PAGE}",
        updated=empty_updated,
        subtitle="One entry each time a source starts failing, recovers, "
        "is disabled or goes silent",
        hub_url=settings.websub_hub,
        author=settings.title,
        lang=settings.language,
    )
    return take_snapshot(meta, (event_entry(e, base) for e in events), {}, base)
