"""The merge policy: many sources' versions of one item -> the one merged item (pure).

Where versions disagree, the winner is the version with the highest
``priority``, then the longest body, then the source id first in sort order.
That order is total (one version per source), so the result never depends
on which source was polled first. Title, body, link and author come from the
winner (link and author fall back to the next version, in the same order,
that has one, as enclosures do); ``published`` is the earliest any version
gives; categories are the union.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import EllipsisType

from aggregator.digest import fields_digest
from aggregator.model import Enclosure, Item
from aggregator.store.bodies import digest


@dataclass(frozen=True, slots=True)
class Merged:
    """What the merged item says, before the store adds its own timestamps."""

    key: str
    winner: str  #: source id of the version title and body came from
    infocode: str | None
    title: str
    link: str | None
    content_html: str | None
    content_raw: str | None
    summary_html: str | None
    author: str | None
    published: datetime | None  #: earliest of the versions'; None: no version dates it
    updated: datetime | None  #: the winner's own updated time
    categories: tuple[str, ...]  #: sorted union
    enclosures: tuple[Enclosure, ...] = ()  #: the winner's, else the next version's that has any


def body_length(version: Item) -> int:
    """How much text a version carries: its body, else its summary."""
    return len(version.content_raw or version.content_html or version.summary_html or "")


def precedence(version: Item) -> tuple[int, int, str]:
    """Sort key: the first version in this order wins."""
    return (-version.priority, -body_length(version), version.source_id)


def merge_versions(versions: Sequence[Item]) -> Merged:
    """Merge every source's version of one item; equal inputs in any order give equal results."""
    if not versions:
        raise ValueError("merge_versions needs at least one version")
    ordered = sorted(versions, key=precedence)
    winner = ordered[0]
    dates = [v.published for v in ordered if v.published is not None]
    return Merged(
        key=winner.key,
        winner=winner.source_id,
        infocode=next((v.infocode for v in ordered if v.infocode), None),
        title=winner.title,
        link=next((v.link for v in ordered if v.link), None),
        content_html=winner.content_html,
        content_raw=winner.content_raw,
        summary_html=winner.summary_html,
        author=next((v.author for v in ordered if v.author), None),
        published=min(dates) if dates else None,
        updated=winner.updated,
        categories=tuple(sorted({c for v in ordered for c in v.categories})),
        enclosures=next((v.enclosures for v in ordered if v.enclosures), ()),
    )


def merged_hash(
    merged: Merged,
    published: datetime,
    title: str | None = None,
    categories: tuple[str, ...] | None = None,
    body: bytes | None | EllipsisType = ...,
) -> str:
    """``shown_hash`` of the merged item; ``title`` and ``categories``: what the rules made
    of it, in place of the merged ones; ``body``: its texts' key, derived where not given."""
    if body is ...:
        body = digest(merged.content_html, merged.summary_html, merged.content_raw)
    return shown_hash(
        merged.title if title is None else title,
        merged.link,
        body,
        merged.author,
        published,
        merged.categories if categories is None else categories,
        merged.infocode,
        merged.enclosures,
    )


def shown_hash(
    title: str,
    link: str | None,
    body: bytes | None,
    author: str | None,
    published: datetime,
    categories: Sequence[str],
    infocode: str | None,
    enclosures: Sequence[Enclosure],
) -> str:
    """A hash over what a reader of the merged entry sees (``updated`` left out). The body
    counts by its key (bodies.digest over its three texts, ``items.body``), so an item is
    hashed without reading its body (issue 16: re-applying rules to every stored item)."""
    fields: tuple[str, ...] = (
        title,
        link or "",
        "" if body is None else body.hex(),
        author or "",
        (published if published.tzinfo is UTC else published.astimezone(UTC)).isoformat(),
        " ".join(categories),
        infocode or "",
    )
    if enclosures:  # only then: the hashes of items without any stay as they were
        fields += ("+enclosures", *(e.as_text() for e in enclosures))
    return fields_digest(fields)
