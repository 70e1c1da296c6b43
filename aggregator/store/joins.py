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
come from one query on the indexes on ``item_versions.canon`` and ``(title_norm,
published)``, the titles bounded by the window; bodies are read only for those in it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from sqlalchemy import Connection, bindparam, select

from aggregator.model import Item
from aggregator.similar import SimilarRule, shingles, similarity
from aggregator.store import bodies
from aggregator.store.bulk import chunks
from aggregator.store.schema import item_versions

_v = item_versions.c
_CANONS = _v.canon.in_(bindparam("canons", expanding=True))
_COLUMNS = select(_v.canon, _v.title_norm, _v.item_id, _v.source_id, _v.key, _v.published)
_BY_CANON = _COLUMNS.where(_CANONS)
#: one indexed query for both kinds of candidate: same canonical link, or same normalized
#: title published within the window of the batch's dates (no bodies: few are compared)
_CANDIDATES = _COLUMNS.where(
    _CANONS
    | (
        _v.title_norm.in_(bindparam("titles", expanding=True))
        & _v.published.between(bindparam("lo"), bindparam("hi"))
    )
)
_BODY = (
    select(bodies.CONTENT_HTML, bodies.SUMMARY_HTML)
    .select_from(bodies.joined(item_versions))
    .where(_v.source_id == bindparam("source_id"), _v.key == bindparam("key"))
)
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
    titled: dict[str, list[Any]] = defaultdict(list)
    canons = sorted({i.canon for i in open_items if i.canon})
    dated = [i for i in open_items if i.title_norm and i.published] if rule else []
    titles = sorted({i.title_norm for i in dated if i.title_norm})
    wanted_canons, wanted_titles = set(canons), set(titles)
    for row in _candidates(conn, canons, titles, dated, rule):
        if row.source_id == source_id:
            continue
        if row.canon in wanted_canons:
            by_canon[row.canon].add(row.item_id)
            titles_of[row.item_id].add(row.title_norm)
        if row.title_norm in wanted_titles:
            titled[row.title_norm].append(row)
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
        near = titled.get(item.title_norm or "")
        if rule is None or not near:
            continue
        best = _most_similar(conn, item, near, rule, carried | taken)
        if best is not None:
            found[item.key] = best
            taken.add(best.item_id)
    return found


def _candidates(
    conn: Connection,
    canons: Sequence[str],
    titles: Sequence[str],
    dated: Sequence[Item],
    rule: SimilarRule | None,
) -> list[Any]:
    """Other versions with one of ``canons``, or (``rule``) one of ``titles`` near in time."""
    if not titles or rule is None:
        return [row for part in chunks(canons) for row in conn.execute(_BY_CANON, {"canons": part})]
    moments = [i.published for i in dated if i.published is not None]
    bounds = {"lo": min(moments) - rule.window, "hi": max(moments) + rule.window}
    rows: list[Any] = []
    for canon_part, title_part in zip_longest(chunks(canons), chunks(titles), fillvalue=()):
        params = {"canons": list(canon_part), "titles": list(title_part), **bounds}
        rows.extend(conn.execute(_CANDIDATES, params))
    return rows


def _carried(conn: Connection, source_id: str, ids: Sequence[int]) -> set[int]:
    out: set[int] = set()
    for part in chunks(ids):
        out.update(conn.execute(_CARRIED, {"source_id": source_id, "ids": part}).scalars())
    return out


def _most_similar(
    conn: Connection, item: Item, rows: list[Any], rule: SimilarRule, excluded: set[int]
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
        body = conn.execute(_BODY, {"source_id": row.source_id, "key": row.key}).one()
        score = similarity(mine, shingles(text_of(body.content_html or body.summary_html or "")))
        if score >= rule.threshold and (best is None or (score, -item_id) > (best[0], -best[1])):
            best = (score, item_id)
    if best is None:
        return None
    return Join(best[1], f"similar title+text {best[0]:.2f}")
