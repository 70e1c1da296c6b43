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

from aggregator.digest import fields_digest
from aggregator.model import Enclosure, Item


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
) -> str:
    """A hash over what a reader of the merged entry sees (``updated`` left out); ``title``
    and ``categories``: what the rules made of it, in place of the merged ones."""
    fields: tuple[str, ...] = (
        merged.title if title is None else title,
        merged.link or "",
        merged.content_html or "",
        merged.content_raw or "",
        merged.summary_html or "",
        merged.author or "",
        published.astimezone(UTC).isoformat(),
        " ".join(merged.categories if categories is None else categories),
        merged.infocode or "",
    )
    if merged.enclosures:  # only then: the hashes of items without any stay as they were
        fields += ("+enclosures", *(e.as_text() for e in merged.enclosures))
    return fields_digest(fields)
