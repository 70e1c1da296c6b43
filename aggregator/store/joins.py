"""Which stored item a source's new version joins: same canonical link, else near-duplicate.

    new version (no item has its key)
      1. infoCode key          -> its own key decides (never joined by link)
      2. canonical link        -> the first-seen item another source carries with that link;
                                  where several items share it (posts told apart only by
                                  a fragment), the one whose normalized title matches
      3. similar (if on)       -> the item whose version has the same normalized title,
                                  published within the window, with the most similar text
                                  (at least the threshold)
      else                     -> a fresh item under the version's own key

An item this source already carries is never joined (a source that reuses a URL
for two posts keeps them apart), nor is one item joined twice by one batch. The
joined item keeps its key, so its Atom id stays the one first written. Candidates
come from the indexes on ``item_versions.canon`` and ``(title_norm, published)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select

from aggregator.model import Item
from aggregator.similar import SimilarRule, shingles, similarity
from aggregator.store.bulk import chunks
from aggregator.store.schema import item_versions

_v = item_versions.c
_BY_CANON = select(_v.canon, _v.item_id, _v.source_id, _v.title_norm).where(
    _v.canon.in_(bindparam("canons", expanding=True))
)
_BY_TITLE = select(
    _v.title_norm,
    _v.item_id,
    _v.source_id,
    _v.published,
    _v.content_raw,
    _v.content_html,
    _v.summary_html,
).where(_v.title_norm.in_(bindparam("titles", expanding=True)))
_CARRIED = select(_v.item_id).where(
    _v.source_id == bindparam("source_id"), _v.item_id.in_(bindparam("ids", expanding=True))
)

LINK = "canonical link"


@dataclass(frozen=True, slots=True)
class Join:
    """A new version's item, and the rule that joined it (``merged_by``)."""

    item_id: int
    rule: str  #: ``canonical link`` or ``similar title+text 0.87``


def joins(
    conn: Connection, source_id: str, fresh: Sequence[Item], rule: SimilarRule | None
) -> dict[str, Join]:
    """Version key -> the item it joins, for the versions of ``fresh`` that join one."""
    open_items = [i for i in fresh if not i.key.startswith("ic:")]
    if not open_items:
        return {}
    by_canon: dict[str, set[int]] = defaultdict(set)
    titles_of: dict[int, set[str | None]] = defaultdict(set)
    canons = sorted({i.canon for i in open_items if i.canon})
    for part in chunks(canons):
        for row in conn.execute(_BY_CANON, {"canons": part}):
            if row.source_id != source_id:
                by_canon[row.canon].add(row.item_id)
                titles_of[row.item_id].add(row.title_norm)
    titled: dict[str, list[Any]] = defaultdict(list)
    if rule is not None:
        titles = sorted({i.title_norm for i in open_items if i.title_norm})
        for part in chunks(titles):
            for near in conn.execute(_BY_TITLE, {"titles": part}):
                if near.source_id != source_id:
                    titled[near.title_norm].append(near)
    candidates = {i for ids in by_canon.values() for i in ids}
    candidates |= {near.item_id for rows in titled.values() for near in rows}
    carried = _carried(conn, source_id, sorted(candidates))
    taken: set[int] = set()
    found: dict[str, Join] = {}
    for item in open_items:
        ids = sorted(by_canon.get(item.canon or "", set()) - carried - taken)
        if len(ids) > 1:  # one link, several stories (anchors on an archive page): the title
            ids = [i for i in ids if item.title_norm in titles_of[i]]
        if ids:  # the lowest id: the item first seen
            found[item.key] = Join(ids[0], LINK)
            taken.add(ids[0])
            continue
        if rule is None or not item.title_norm:
            continue
        best = _most_similar(item, titled.get(item.title_norm, []), rule, carried | taken)
        if best is not None:
            found[item.key] = best
            taken.add(best.item_id)
    return found


def _carried(conn: Connection, source_id: str, ids: Sequence[int]) -> set[int]:
    out: set[int] = set()
    for part in chunks(ids):
        out.update(conn.execute(_CARRIED, {"source_id": source_id, "ids": part}).scalars())
    return out


def _most_similar(
    item: Item, rows: list[Any], rule: SimilarRule, excluded: set[int]
) -> Join | None:
    from aggregator.sanitize import text_of  # only [dedupe] similar pays for nh3

    if item.published is None:
        return None
    mine: frozenset[str] | None = None  # made only when a candidate is in the window
    best: tuple[float, int] | None = None
    for row in rows:
        item_id = row.item_id
        if item_id in excluded or row.published is None:
            continue
        if abs(row.published - item.published) > rule.window:
            continue
        if mine is None:
            mine = shingles(text_of(item.content_html or item.summary_html or ""))
        body = row.content_html or row.summary_html
        score = similarity(mine, shingles(text_of(body or "")))
        if score >= rule.threshold and (best is None or (score, -item_id) > (best[0], -best[1])):
            best = (score, item_id)
    if best is None:
        return None
    return Join(best[1], f"similar title+text {best[0]:.2f}")
