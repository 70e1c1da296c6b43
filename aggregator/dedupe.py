"""ParsedItem -> Item: identity, change hash, title fallback, publisher category.

Everything here is pure (no network, no database), so it is tested with
tables. Identity has one fallback chain, in this order:

    infoCode            ic:<infoCode>           shared by every source
    guid                src:<source>:guid:<guid>
    link                src:<source>:link:<link>
    title + date        src:<source>:th:<sha1>

A guid repeated inside one document with different content gets ``#<n>``
appended so distinct posts never collapse; an exact repeat is dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aggregator.canonical import canonical_link, permalink
from aggregator.digest import fields_digest
from aggregator.model import (
    RESERVED_CATEGORY_IDS,
    Category,
    CategoryNames,
    Item,
    ItemSource,
    ParsedFeed,
    ParsedItem,
)
from aggregator.parse.bounds import bounded_item, clean_text
from aggregator.postbody import post_raw
from aggregator.sanitize import clean_html, text_of
from aggregator.similar import normalized_title
from aggregator.slug import slug

TITLE_FROM_TEXT_MAX = 80
_TRACKING = re.compile(r"^(utm_[a-z]+|fbclid|gclid)$", re.IGNORECASE)
# an http(s) link whose query is name=value pairs of unreserved characters (RFC 3986 2.3):
# urlsplit/parse_qsl/urlencode/urlunsplit give it back unchanged
_PLAIN_QUERY = re.compile(
    r"https?://[^\s/?#;\[\]]+(?:/[^\s?#;\[\]]*)?"
    r"\?[\w.~-]+=[\w.~-]*(?:&[\w.~-]+=[\w.~-]*)*(?:#[^\s#]+)?",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Deduped:
    """One document after dedupe: its items keyed, what was skipped and why, and what the
    later stages read of the document itself (so the parsed feed never travels on)."""

    items: tuple[Item, ...]
    categories: tuple[Category, ...]  #: publisher categories these items file under
    warnings: tuple[str, ...]  #: the parser's and dedupe's
    skipped: int
    ttl: timedelta | None = None  #: the document's RSS <ttl>, a floor on the poll interval
    lenient: bool = False  #: read past an XML error: stored items are kept as they are


def publisher_category(name: str | None, known: CategoryNames | None = None) -> Category | None:
    """科技日报 -> Category("kejiribao", "科技日报新闻"), as the original site filed posts.

    A category titled ``<name>新闻`` already (declared so, or this publisher's) is
    reused. Otherwise the pinyin id, unless it is reserved for an output (``ALL``)
    or taken by another name (KeJiRiBao beside 科技日报, News beside a declared
    ``news``): then the id gets a hash of the name, the same on every run.
    """
    if not name or not name.strip():
        return None
    name = name.strip()
    title = f"{name}新闻"
    known = known or CategoryNames()
    if title in known.by_title:
        return Category(known.by_title[title], title)
    ident = slug(name, 100)
    if not ident:
        return None
    if ident in RESERVED_CATEGORY_IDS or ident in known.ids:
        digest = hashlib.sha1(name.encode("utf-8", "replace")).hexdigest()[:8]
        ident = f"{ident[:90].rstrip('-')}-{digest}"
    return Category(ident, title)


MAX_KEY = 400  #: longer keys are hashed: PostgreSQL's index rows stop at ~2.7 KB


def item_key(source_id: str, item: ParsedItem) -> str:
    """The identity of an item, by the fallback chain in the module docstring."""
    if item.infocode:
        return f"ic:{item.infocode}"
    if item.guid and item.guid.strip():
        return _bounded(f"src:{source_id}:guid:", item.guid.strip())
    if item.link and item.link.strip():
        return _bounded(f"src:{source_id}:link:", item.link.strip())
    stamp = item.published.isoformat() if item.published else ""
    digest = hashlib.sha1(f"{item.title or ''}|{stamp}".encode()).hexdigest()
    return f"src:{source_id}:th:{digest}"


def _bounded(prefix: str, value: str) -> str:
    if len(prefix) + len(value) <= MAX_KEY:
        return prefix + value
    return f"{prefix}sha1:{hashlib.sha1(value.encode('utf-8')).hexdigest()}"


def content_hash(item: ParsedItem, categories: Sequence[str], title: str | None = None) -> str:
    """A hash over what readers see; tracking parameters and feed-level noise left out.

    ``title``: the title readers see, when it is not ``item.title`` (no copy of the item).
    Fields are length-prefixed, so no two field lists hash alike (JSON-encoding them
    first cost 20 us an item: escaping CJK bodies).
    """
    fields = (
        (item.title if title is None else title) or "",
        _without_tracking(item.link) or "",
        item.content or "",
        item.summary or "",
        item.author or "",
        item.published.isoformat() if item.published else "",
        item.updated.isoformat() if item.updated else "",
        *sorted(categories),
    )
    if item.enclosures:  # only then: the hashes of items without any stay as they were
        fields += ("+enclosures", *(e.as_text() for e in item.enclosures))
    return fields_digest(fields)


def title_from_text(item: ParsedItem) -> str | None:
    """The item's title, else the start of its text (plain, at most 80 characters)."""
    if item.title and item.title.strip():
        return " ".join(item.title.split())
    text = text_of(item.content or item.summary or "")
    if not text:
        return None
    if len(text) <= TITLE_FROM_TEXT_MAX:
        return text
    return text[: TITLE_FROM_TEXT_MAX - 1].rstrip() + "…"


def dedupe_feed(
    source: ItemSource,
    feed: ParsedFeed,
    known: CategoryNames | None = None,
    key_id: str | None = None,
    tracking: frozenset[str] = frozenset(),
    raw_for_posts: bool = False,
    titles: bool = False,
) -> Deduped:
    """Key every item of one document and drop what must not be written.

    ``known``: the store's categories, for publisher category ids (``category_from``).
    ``key_id``: the source id its items' keys are made with, when the source was
    renamed since (its items keep their identity); else its own id.
    ``tracking``: query parameters the canonical links drop besides the built-in ones.
    ``raw_for_posts``: each raw body only where a post is written from it, as the store
    keeps it (``postbody.post_raw``): checked here, in the parse child, the writing process
    need not check every body again (~25 us an item, issue 19).
    ``titles``: each item's normalized title, for a source with ``[dedupe] similar`` on (the
    store makes the others' when a near-duplicate is looked for: store/joins.py).
    """
    dated = any(p.published or p.updated for p in feed.items)
    items: list[Item] = []
    warnings: list[str] = list(feed.warnings)
    publishers: dict[str, Category] = {}
    seen: dict[str, str] = {}  # key -> content hash of its first occurrence
    skipped = 0
    for position, parsed in enumerate(feed.items, start=1):
        parsed = bounded_item(parsed)
        title = title_from_text(parsed)
        if title is None:
            skipped += 1
            warnings.append(f"{source.id}: item {position} has neither title nor text; skipped")
            continue
        if dated and not (parsed.published or parsed.updated):
            skipped += 1
            warnings.append(f"{source.id}: item {position} ({title[:40]!r}) has no date; skipped")
            continue
        categories = list(source.categories)
        if source.category_from == "author":
            publisher = publisher_category(parsed.author, known)
            if publisher:
                if publisher.id not in publishers:  # the next name meets this one as taken
                    known = _with(known, publisher)
                publishers[publisher.id] = publisher
                categories.append(publisher.id)
        cats = tuple(sorted(set(categories)))
        if not cats:
            skipped += 1
            warnings.append(
                f"{source.id}: item {position} ({title[:40]!r}) has no category; skipped"
            )
            continue
        digest = content_hash(parsed, cats, title)
        key = item_key(key_id or source.id, parsed)
        if key in seen:
            if seen[key] == digest:
                continue
            n = 2
            while f"{key}#{n}" in seen:
                n += 1
            key = f"{key}#{n}"
        seen[key] = digest
        items.append(
            to_item(
                source,
                parsed,
                key=key,
                title=title,
                categories=cats,
                digest=digest,
                canon=canonical_link(parsed.link or permalink(parsed.guid), tracking),
                title_norm=normalized_title(title) if titles else None,
                content_raw=post_raw(parsed.content) if raw_for_posts else parsed.content,
            )
        )
    return Deduped(
        tuple(items),
        tuple(publishers.values()),
        tuple(warnings),
        skipped,
        ttl=feed.ttl,
        lenient=feed.lenient,
    )


def _with(known: CategoryNames | None, category: Category) -> CategoryNames:
    known = known or CategoryNames()
    return CategoryNames({**known.by_title, category.title: category.id}, known.ids | {category.id})


def to_item(
    source: ItemSource,
    parsed: ParsedItem,
    *,
    key: str,
    title: str,
    categories: tuple[str, ...],
    digest: str,
    canon: str | None = None,
    title_norm: str | None = None,
    content_raw: str | None,
) -> Item:
    published = parsed.published or parsed.updated
    return Item(
        key=key,
        source_id=source.id,
        priority=source.priority,
        title=title,
        link=parsed.link,
        guid=parsed.guid,
        infocode=parsed.infocode,
        content_raw=content_raw,
        content_html=clean_html(parsed.content, base_url=parsed.link),
        summary_html=clean_html(parsed.summary, base_url=parsed.link),
        author=parsed.author.strip() if parsed.author and parsed.author.strip() else None,
        published=published,
        updated=parsed.updated or published,
        categories=categories,
        content_hash=digest,
        detail_url=parsed.detail_url,
        detail_pending=bool(parsed.detail_url),
        enclosures=parsed.enclosures,
        canon=canon,
        title_norm=title_norm,
    )


def with_detail(item: Item, body: str | None) -> Item:
    """The item with the body its detail request gave (None: still pending)."""
    if body is None:
        return replace(item, detail_pending=True)
    body = clean_text(body)
    html = clean_html(body, base_url=item.link)
    return replace(item, content_raw=body, content_html=html, detail_pending=False)


def _without_tracking(link: str | None) -> str | None:
    if not link or "?" not in link:
        return link
    lower = link.lower()
    if "utm_" not in lower and "clid" not in lower and _PLAIN_QUERY.fullmatch(link):
        return link  # what the round trip below gives back (~30 us) for a plain query
    parts = urlsplit(link)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))
