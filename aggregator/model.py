"""The frozen records that cross stage boundaries.

    config ──Source──▶ schedule ──FetchJob──▶ fetch ──Fetched|NotModified──▶
    parse ──ParsedFeed(ParsedItem…)──▶ dedupe ──Item…──▶ store ──Entry…──▶ write

Every datetime here is timezone-aware. Nothing here is mutated after it is
made; a stage that wants to change a record makes a new one
(``dataclasses.replace``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from operator import attrgetter
from typing import Any, Protocol

#: stem of the feed over every category (``all.atom``), beside one ``<category id>.atom`` each
ALL_FEED = "all"
#: file stems the outputs use beside the categories' (CONTRACT.md): no category may take one
RESERVED_CATEGORY_IDS = frozenset({ALL_FEED, "index", "health", "status"})
#: the feed formats ``[aggregator] formats`` may name, in the order files are written
FEED_FORMATS = ("atom", "rss", "json")


class ConfiguredSource(Protocol):
    """What the store keeps of a configured source (config's ``SourceConfig`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def url(self) -> str: ...  #: as configured; the store keeps the redirected one apart
    @property
    def enabled(self) -> bool: ...


class ItemSource(Protocol):
    """What dedupe reads of the source its items came from (``SourceConfig`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def priority(self) -> int: ...  #: where sources disagree on an item, the higher wins
    @property
    def categories(self) -> tuple[str, ...]: ...  #: declared category ids
    @property
    def category_from(self) -> str | None: ...  #: "author": also file under the publisher


@dataclass(frozen=True, slots=True)
class SourceRef:
    """An ``ItemSource`` as a plain record: what goes to a parse child with the dedupe call.
    A config ``SourceConfig`` would make every child import pydantic and the config schema
    to unpickle it (~0.15 s of CPU a child, issue 19)."""

    id: str
    priority: int
    categories: tuple[str, ...]
    category_from: str | None = None

    @classmethod
    def of(cls, source: ItemSource) -> SourceRef:
        return cls(source.id, source.priority, tuple(source.categories), source.category_from)


class PollStatus(StrEnum):
    """The word ``aggregator poll`` prints and the store keeps per source."""

    NEVER = "never"
    OK = "ok"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    DISABLED = "disabled"


class SourceHealth(StrEnum):
    """How a source is doing, as ``/healthz`` and ``aggregator sources`` say it."""

    OK = "ok"
    FAILING = "failing"
    DISABLED = "disabled"  #: by the config (``enabled = false``) or by a 410 Gone


@dataclass(frozen=True, slots=True)
class Category:
    id: str  #: [a-z0-9-] id, also the feed's file stem (``kejiribao`` -> kejiribao.atom)
    title: str  #: label written in every entry's <category label=…> and the feed title
    description: str | None = None


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    """A category as the listings show it (index.html, index.opml): the store makes it."""

    id: str  #: category id, the feed's file stem
    title: str
    description: str | None = None
    entry_count: int = 0  #: entries the category holds (the feed shows at most entries_per_feed)
    updated: datetime | None = None  #: newest ``updated`` of its entries; None while empty
    origin: str = "config"  #: "config" (declared) or "publisher" (found in items)


@dataclass(frozen=True, slots=True)
class CategoryNames:
    """The categories the store knows, for choosing a publisher's category id (dedupe)."""

    by_title: Mapping[str, str] = field(default_factory=dict)  #: title -> id, declared first
    ids: frozenset[str] = frozenset()  #: every id in use


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers of one source between polls."""

    source_id: str
    url: str | None = None  #: URL after a confirmed permanent redirect; None = configured URL
    etag: str | None = None
    last_modified: str | None = None
    validators_url: str | None = None  #: the URL the validators above belong to
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    status: PollStatus = PollStatus.NEVER
    error_kind: str | None = None
    error_message: str | None = None
    consecutive_failures: int = 0
    next_due_at: datetime | None = None
    item_count: int = 0
    disabled_reason: str | None = None  #: set when a 410 disabled the source
    redirect_url: str | None = None  #: permanent-redirect target seen, not yet trusted
    redirect_seen: int = 0  #: how many polls in a row answered with redirect_url
    key_id: str | None = None  #: the id its items' keys were made with, if it was renamed

    def health(self, *, enabled: bool = True) -> SourceHealth:
        """Disabled (by the config, or a 410), failing (its last poll failed), else ok."""
        if not enabled or self.disabled_reason is not None:
            return SourceHealth.DISABLED
        if self.status == PollStatus.FAILED:
            return SourceHealth.FAILING
        return SourceHealth.OK

    def problem(self) -> str | None:
        """What is wrong, for people: why it is disabled, else ``<kind>: <message>``."""
        if self.disabled_reason:
            return self.disabled_reason
        if self.error_kind:
            return f"{self.error_kind}: {self.error_message or ''}".rstrip(": ")
        return None


@dataclass(frozen=True, slots=True)
class FetchJob:
    """One request to make: where, and the validators to send back."""

    source_id: str
    url: str  #: the URL to request now (state.url or the configured one)
    configured_url: str  #: what the admin wrote; decides the SSRF policy
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """A 200 answer with its (decompressed, size-capped) body."""

    url: str  #: final URL after redirects
    status: int
    body: bytes
    headers: Mapping[str, str]  #: lower-case names
    fetched_at: datetime
    elapsed: float  #: seconds
    permanent_redirect: str | None = None  #: target when every hop was 301/308
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class NotModified:
    """A 304 answer: nothing to parse, validators refreshed."""

    url: str
    headers: Mapping[str, str]
    fetched_at: datetime
    elapsed: float
    etag: str | None = None
    last_modified: str | None = None


FetchOutcome = Fetched | NotModified


@dataclass(frozen=True, slots=True)
class Enclosure:
    """A media file an item carries (RSS ``<enclosure>``, Atom ``rel="enclosure"``,
    JSON Feed ``attachments``): a podcast's audio, a video."""

    url: str  #: absolute http(s)
    type: str | None = None  #: MIME type as the source gave it
    length: int | None = None  #: size in bytes, >= 0; None: not given (or nonsense)

    def as_text(self) -> str:
        """url, type and length, space-separated (a URL has no space): what hashes hash."""
        return f"{self.url} {self.type or ''} {'' if self.length is None else self.length}"


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One item as its document gave it; HTML is raw (not yet sanitized)."""

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    content: str | None = None  #: HTML body as the source gave it
    summary: str | None = None  #: HTML or text digest
    author: str | None = None  #: original publisher / author name
    published: datetime | None = None
    updated: datetime | None = None
    infocode: str | None = None  #: normalized (NW + 18 digits) where known
    detail_url: str | None = None  #: JSON sources: where the full body is asked for
    enclosures: tuple[Enclosure, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    items: tuple[ParsedItem, ...]
    ttl: timedelta | None = None  #: RSS <ttl>, a floor on the poll interval
    warnings: tuple[str, ...] = ()
    lenient: bool = False  #: read past an XML error: items may be cut short (truncated body)


@dataclass(frozen=True, slots=True)
class Item:
    """One source's version of an item, keyed and ready to store."""

    key: str  #: identity across sources: ``ic:<infoCode>`` or ``src:<source>:…``
    source_id: str
    priority: int
    title: str  #: never blank: taken from the text when the source gave none
    link: str | None
    guid: str | None
    infocode: str | None
    #: HTML as given (Jekyll posts keep it byte for byte); stored only where a post is
    #: written from it (safe as it is: store/bodies.py), else None once stored, or once
    #: a parse child trimmed it as the store will (dedupe's ``raw_for_posts``)
    content_raw: str | None
    content_html: str | None  #: sanitized once (feeds)
    summary_html: str | None  #: sanitized
    author: str | None
    published: datetime | None  #: None: the source dates nothing, the store uses first-seen
    updated: datetime | None
    categories: tuple[str, ...]  #: sorted category ids, publisher category included
    content_hash: str  #: over what readers see; decides new/changed/same
    detail_url: str | None = None
    detail_pending: bool = False  #: body still to be asked for at the next poll
    enclosures: tuple[Enclosure, ...] = ()
    #: canonical link (canonical.py) of its link or permalink guid: joins other sources' items
    canon: str | None = None
    title_norm: str | None = None  #: normalized title (similar.py): near-duplicate candidates

    def __reduce__(self) -> tuple[type[Item], tuple[Any, ...]]:
        """Pickled as its values, in field order (parse children send every Item back):
        the dataclass's own state functions walk ``fields()`` for each one (issue 19)."""
        return (Item, _item_values(self))


_item_values = attrgetter(*(f.name for f in fields(Item)))


@dataclass(frozen=True, slots=True)
class KnownVersion:
    """What the store holds of one source's version: the decider compares items with it."""

    key: str
    content_hash: str
    detail_pending: bool
    content_raw: str | None  #: the body kept so far (a detail request may have given it)
    content_html: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """A merged item as the writers see it."""

    key: str
    infocode: str | None
    title: str
    link: str | None
    content_html: str | None
    content_raw: str | None  #: the raw body where the post is written from it, else None
    summary_html: str | None
    author: str | None
    published: datetime
    updated: datetime
    categories: tuple[str, ...]
    post_category: str | None = None  #: where the Jekyll post is filed (publisher first)
    #: ids of the sources that carry it, sorted (the HTML pages). Not part of the entry's
    #: identity or content: a source that starts carrying an item changes no feed, and the
    #: pages show the new list at the feed's next change
    sources: tuple[str, ...] = field(default=(), compare=False)
    enclosures: tuple[Enclosure, ...] = ()  #: the winning version's, else the next that has any
    #: the other sources' links to it (Atom ``rel="via"``), sorted; not part of its identity
    via: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What one poll of one source did; one line of ``aggregator poll``."""

    source_id: str
    status: PollStatus
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    dropped: int = 0  #: new or changed items the rules dropped (not counted in new/updated)
    error_kind: str | None = None
    error_message: str | None = None
    warnings: tuple[str, ...] = ()
    changed_categories: frozenset[str] = field(default_factory=frozenset)
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class DetailPage:
    """The article page a ``fulltext`` source's item was last read from."""

    key: str  #: the item's key
    url: str  #: where it was fetched (after redirects)
    etag: str | None = None  #: validators for a conditional GET when the item changes
    last_modified: str | None = None


class Condition(StrEnum):
    """SourceHealth plus silence: what the health feed tells admins (sourcewatch.py)."""

    OK = "ok"
    FAILING = "failing"
    DISABLED = "disabled"  #: by a 410 Gone (not by the config: that is the admin's own doing)
    SILENT = "silent"  #: polled fine, but no new item for 3x its usual gap


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """One change of a source's condition: one entry of ``health.atom``."""

    source_id: str
    kind: str  #: "failing", "recovered", "disabled" or "silent"
    at: datetime  #: when the poll that saw the change ended
    message: str  #: what happened, for people (the error kind and message of a failure)

    @property
    def key(self) -> str:
        """Stable forever and the same from every instance (made of what the store keeps);
        the entry id is made from it as from an item's key."""
        return f"health {self.source_id} {self.kind} {self.at.isoformat()}"
