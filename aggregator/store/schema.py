"""The tables, as SQLAlchemy Core metadata; migrations/ builds the same schema.

    sources ─┐                       categories ── category_changes
             └─< item_versions >── items ─< item_categories
                                         └─< item_aliases (ids of items merged into it)
                        └──── bodies ────┘   tombstones        meta (change counter)

``items`` holds one merged row per key; ``item_versions`` says which sources
carried it and what each said (the merge reads only these). Bodies live in
``bodies``, each once (bodies.py): a version and its merged item name theirs
by hash. Every timestamp is stored as UTC and read back aware.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.sql.expression import false, true
from sqlalchemy.types import TypeDecorator, TypeEngine

from aggregator.model import Enclosure


class _SQLiteText(DATETIME):
    """SQLite's DATETIME column, holding the text UTCDateTime already wrote (no processing)."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:
        return value
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: every datetime must be aware")
    return value.astimezone(UTC)


#: recent conversions: a batch writes each moment several times (first and last seen of
#: every row, an item's dates in its version, its merged row and its filings)
_SQLITE_TEXTS: dict[datetime, str] = {}


def _as_sqlite_text(value: datetime | None) -> str | None:
    """``2024-05-01 08:00:00.000000``: the UTC isoformat without its ``+00:00``."""
    if value is None:
        return None
    text = _SQLITE_TEXTS.get(value)
    if text is None:
        if len(_SQLITE_TEXTS) >= 4096:
            _SQLITE_TEXTS.clear()
        utc = _as_utc(value)
        assert utc is not None
        text = _SQLITE_TEXTS[value] = utc.isoformat(" ", "microseconds")[:-6]
    return text


def _read_utc(value: Any) -> datetime | None:
    """A stored datetime (SQLite: text; PostgreSQL: a datetime) as an aware UTC one."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _from_sqlite_text(value: str | None) -> datetime | None:
    """``_as_sqlite_text``'s text read back aware: parsed with its offset appended, ten
    times faster than ``replace(tzinfo=UTC)`` after (a text with an offset of its own:
    ``_read_utc``)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except (TypeError, ValueError):
        return _read_utc(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out.

    PostgreSQL: ``timestamptz``. SQLite: naive UTC text in the format SQLAlchemy's
    own DATETIME writes (``2024-05-01 08:00:00.000000``), which sorts as time
    does; made with isoformat(), several times faster than the dialect's own.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteText())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        return (_as_sqlite_text if dialect.name == "sqlite" else _as_utc)(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        """process_bind_param without TypeDecorator's wrapper (the impls have no processor
        of their own): it runs for every datetime of every row written."""
        return _as_sqlite_text if dialect.name == "sqlite" else _as_utc

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """SQLite: ``_from_sqlite_text``, without TypeDecorator's wrapper (every datetime
        of every row read: a re-application converts 160,000)."""
        if dialect.name == "sqlite":
            return _from_sqlite_text
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return _read_utc(value)


class IdList(TypeDecorator[tuple[str, ...]]):
    """A tuple of ids ([a-z0-9_-], never blank) as one space-separated text value."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Sequence[str] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = " ".join(value)
        if text.split() != list(value):  # an id blank or holding whitespace: not one word
            bad = next(one for one in value if not one or one.split() != [one])
            raise ValueError(f"not an id: {bad!r}")
        return text

    def process_result_value(self, value: str | None, dialect: Dialect) -> tuple[str, ...] | None:
        return None if value is None else tuple(value.split())


class Enclosures(TypeDecorator[tuple[Enclosure, ...]]):
    """An item's enclosures as one JSON text value (``[[url, type, length], ...]``); none: NULL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Sequence[Enclosure] | None, dialect: Dialect) -> str | None:
        if not value:
            return None
        return json.dumps([[e.url, e.type, e.length] for e in value], ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: Dialect) -> tuple[Enclosure, ...]:
        if not value:
            return ()
        return tuple(Enclosure(url, mime, length) for url, mime, length in json.loads(value))


#: integer primary key: a rowid alias on SQLite, 64-bit elsewhere
Id = BigInteger().with_variant(Integer(), "sqlite")
#: a body's key: 16 bytes of BLAKE2b over its texts (bodies.py)
Body = LargeBinary(16)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

sources = Table(
    "sources",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("configured_url", Text, nullable=False, server_default=""),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("url", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("validators_url", Text),
    Column("last_poll_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("status", String(16), nullable=False, server_default="never"),
    Column("error_kind", String(64)),
    Column("error_message", Text),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("next_due_at", UTCDateTime),
    Column("item_count", Integer, nullable=False, server_default="0"),
    Column("disabled_reason", Text),
    Column("redirect_url", Text),
    Column("redirect_seen", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime),
    # the condition the health feed last reported (sourcewatch.py): ok|failing|disabled|silent
    Column("health", String(16), nullable=False, server_default="ok"),
    # no longer in the config: its items leave every feed (unless a configured source carries
    # them); kept, so the source comes back whole when it is configured again
    Column("removed", Boolean, nullable=False, server_default=false()),
    # the id its items' keys were made with, when it was renamed (its URL kept): None, its own
    Column("key_id", String(100)),
    Index(None, "next_due_at"),
)

categories = Table(
    "categories",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text),
    Column("origin", String(16), nullable=False),  # 'config' | 'publisher'
    Column("publisher", Boolean, nullable=False, server_default=false()),  # some item's publisher
    Column("position", Integer),  # order in the config; None for publisher categories
    # kept in step with item_categories by counts.py, in the writers' transactions
    Column("entry_count", Integer, nullable=False, server_default="0"),
    Column("updated", UTCDateTime),  # newest ``updated`` of its items; None: no items
)

items = Table(
    "items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, unique=True),
    Column("infocode", String(64)),
    Column("title", Text, nullable=False),
    Column("link", Text),
    Column("body", Body),  # the winning version's (bodies.hash); None: it has none
    Column("author", Text),
    Column("published", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("post_category", String(100)),
    Column("enclosures", Enclosures),  # the merged item's: the winner's, else the next one's
    # rules (rules.py): a dropped item is in no feed; base_title is the merged title
    # before a retitle rule changed ``title`` (None: no rule did)
    Column("dropped", Boolean, nullable=False, server_default=false()),
    Column("base_title", Text),
    # meta 'changes' of the transaction that last changed it (None: before 0007): the posts
    # to rewrite are exactly the items changed after the counter the files were written at
    Column("changed", BigInteger),
    # the uuid of its Atom id (``urn:uuid:``, made from the key): uuid5 is one-way, so
    # ``aggregator explain`` of an Atom id finds the item by this index
    Column("uuid", String(36)),
    Index(None, "changed"),
    Index(None, "uuid"),
)

#: the keys (and Atom uuids) of items merged into another after they were written (the
#: stories stored twice before 0010, store/duplicates.py): ``explain`` finds the survivor
#: by them, the posts writer removes their posts; ``changed``: the meta 'changes' value
item_aliases = Table(
    "item_aliases",
    metadata,
    Column("key", Text, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("item_id", Id, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("changed", BigInteger, nullable=False),
    Index(None, "uuid"),
    Index(None, "item_id"),
    Index(None, "changed"),
)

item_versions = Table(
    "item_versions",
    metadata,
    Column("source_id", String(100), ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("item_id", Id, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("guid", Text),
    Column("link", Text),
    Column("infocode", String(64)),
    Column("title", Text, nullable=False),
    Column("body", Body),  # bodies.hash; None: it has none
    Column("author", Text),
    Column("published", UTCDateTime),
    Column("updated", UTCDateTime),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("categories", IdList, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("detail_url", Text),
    Column("detail_pending", Boolean, nullable=False, server_default=false()),
    Column("enclosures", Enclosures),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    # joins.py: a new version of another source joins the item whose versions share its
    # canonical link (or, with ``similar``, its normalized title); merged_by says which rule
    # joined it (None: the version the item was made from, or its infoCode key)
    Column("canon", Text),
    Column("title_norm", Text),
    Column("merged_by", String(64)),
    PrimaryKeyConstraint("source_id", "key"),
    Index(None, "item_id"),
    Index(None, "canon"),
    Index(None, "title_norm", "published"),
    Index(None, "body"),  # is a body still named? (bodies.collect)
)

#: each distinct body once: sanitized body, summary, and the raw body only where a Jekyll
#: post is written from it (bodies.py); ``raw_is_html``: the raw body is ``content_html``;
#: ``plain_text``: what rules on ``text`` read of it, derived once (None: not yet, issue 16)
bodies = Table(
    "bodies",
    metadata,
    Column("hash", Body, primary_key=True),
    Column("content_html", Text),
    Column("summary_html", Text),
    Column("content_raw", Text),
    Column("raw_is_html", Boolean, nullable=False, server_default=false()),
    Column("plain_text", Text),
)

#: the article page behind one source's item (``fulltext`` sources): its validators
#: for a conditional GET when the item changes, and when it was last read
detail_pages = Table(
    "detail_pages",
    metadata,
    Column("source_id", String(100), ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("fetched_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("source_id", "key"),
)

item_categories = Table(
    "item_categories",
    metadata,
    Column("item_id", Id, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("category_id", String(100), nullable=False),
    Column("published", UTCDateTime, nullable=False),
    Column("key", Text, nullable=False),
    PrimaryKeyConstraint("item_id", "category_id"),
)

#: newest first by published, ties by key: the order of every feed (entries())
Index("ix_items_newest", items.c.published.desc(), items.c.key)
Index(
    "ix_item_categories_newest",
    item_categories.c.category_id,
    item_categories.c.published.desc(),
    item_categories.c.key,
)

tombstones = Table(
    "tombstones",
    metadata,
    Column("key", Text, primary_key=True),
    Column("pruned_at", UTCDateTime, nullable=False),
)

#: name='changes': bumped once per transaction that changed any feed;
#: name='rules': the rules the stored items were last evaluated with (digest prefix)
meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: the rules of meta 'rules', one row each in config order (its JSON): what changed in an
#: edit, so a re-application evaluates only the items the changed rules could act on
applied_rules = Table(
    "applied_rules",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("rule", Text, nullable=False),
)

#: per category: the value of meta 'changes' when its entries last changed
category_changes = Table(
    "category_changes",
    metadata,
    Column("category_id", String(100), primary_key=True),
    Column("counter", BigInteger, nullable=False),
)

#: one row per change of a source's condition: the entries of health.atom (store/health.py)
source_events = Table(
    "source_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source_id", String(100), nullable=False),  # kept after the source is removed
    Column("kind", String(16), nullable=False),  # failing | recovered | disabled | silent
    Column("at", UTCDateTime, nullable=False),
    Column("message", Text, nullable=False),
    Index(None, "at"),
)

#: new items per day (the status page's charts)
Index("ix_items_first_seen", items.c.first_seen)
#: when each source's items arrived, newest first: the usual gap that silence is measured by
Index("ix_item_versions_arrivals", item_versions.c.source_id, item_versions.c.first_seen)
