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
come from the indexes on ``item_versions.canon`` and (``similar``) ``(title_norm,
published)``, the titles bounded by the window, each with whether the source carries
its item; bodies are read only for those in the window.

Normalized titles are made (by dedupe) and stored only for the sources with ``similar``
on: with it off, the default, each version would pay for making one and for a random
place in the title index, for nothing (issue 15). A source with it on fills in the
titles of the versions in its window that were stored without one (other sources', or
its own from before) as it looks for near-duplicates, so it finds every source's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, select, update

from aggregator.model import Item
from aggregator.similar import SimilarRule, normalized_title, shingles, similarity
from aggregator.store import bodies
from aggregator.store.bulk import Query, chunks
from aggregator.store.schema import item_versions

_v = item_versions.c
_other = item_versions.alias("other")
#: whether the applying source carries the candidate's item already (it never joins it)
_CARRIED = (
    exists()
    .where(_other.c.item_id == _v.item_id, _other.c.source_id == bindparam("source_id"))
    .label("carried")
)
_COLUMNS = select(
    _v.canon, _v.title_norm, _v.title, _v.item_id, _v.source_id, _v.key, _v.published, _CARRIED
)
#: candidates by link, and (``similar``) by normalized title published in the window, with
#: the versions in the window stored without one (``_filled``)
_BY_CANON = Query(_COLUMNS.where(_v.canon.in_(bindparam("canons", expanding=True))), "canons")
_WINDOW = _v.published.between(bindparam("lo"), bindparam("hi"))
_BY_TITLE = Query(  # the window in each arm: each is a range of the (title_norm, published) index
    _COLUMNS.where(
        (_v.title_norm.in_(bindparam("titles", expanding=True)) & _WINDOW)
        | (_v.title_norm.is_(None) & _WINDOW)
    ),
    "titles",
)
_SET_TITLE = (
    update(item_versions)
    .where(_v.source_id == bindparam("b_source"), _v.key == bindparam("b_key"))
    .values(title_norm=bindparam("b_title"))
)
_BODY = (
    select(bodies.CONTENT_HTML, bodies.SUMMARY_HTML)
    .select_from(bodies.joined(item_versions))
    .where(_v.source_id == bindparam("source_id"), _v.key == bindparam("key"))
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
    linked: dict[int, list[Any]] = defaultdict(list)  #: item id -> its versions by link
    titled: dict[str, list[Any]] = defaultdict(list)
    canons = sorted({i.canon for i in open_items if i.canon})
    mine: dict[str, str | None] = {}  #: normalized titles: only for ``similar``
    window: tuple[datetime, datetime] | None = None
    if rule is not None:
        mine = {i.key: title_norm(i) for i in open_items}
        moments = [i.published for i in open_items if mine[i.key] and i.published]
        if moments:
            window = (min(moments) - rule.window, max(moments) + rule.window)
    titles = sorted({t for t in mine.values() if t}) if window else []
    wanted_canons, wanted_titles = set(canons), set(titles)
    params: dict[str, Any] = {"source_id": source_id}
    by_link = [row for part in chunks(canons) for row in _BY_CANON.rows(conn, params, part)]
    by_title: list[Any] = []
    if window is not None:
        params = {**params, "lo": window[0], "hi": window[1]}
        found_by_title = (
            row for part in chunks(titles) for row in _BY_TITLE.rows(conn, params, part)
        )
        by_title = _filled(conn, list(found_by_title))
    carried = {row.item_id for row in (*by_link, *by_title) if row.carried}
    for row in by_link:
        if row.source_id != source_id and row.canon in wanted_canons:
            by_canon[row.canon].add(row.item_id)
            linked[row.item_id].append(row)
    for row in by_title:
        if row.source_id != source_id and row.title_norm in wanted_titles:
            titled[row.title_norm].append(row)
    taken: set[int] = set()
    found: dict[str, Join] = {}
    for item in open_items:
        ids = sorted(by_canon.get(item.canon or "", set()) - carried - taken)
        if len(ids) > 1:  # one link, several stories (anchors on an archive page): the title
            title = mine.get(item.key) or title_norm(item)
            ids = [i for i in ids if title in {title_norm(row) for row in linked[i]}]
        if ids:  # the lowest id: the item first seen
            found[item.key] = Join(ids[0], LINK)
            taken.add(ids[0])
            continue
        near = titled.get(mine.get(item.key) or "")
        if rule is None or not near:
            continue
        best = _most_similar(conn, item, near, rule, carried | taken)
        if best is not None:
            found[item.key] = best
            taken.add(best.item_id)
    return found


def title_norm(version: Any) -> str | None:
    """A version's normalized title: the one it was stored or made with, else made now
    from its title (dedupe makes it only for sources with ``similar`` on)."""
    return version.title_norm or normalized_title(version.title)


def _filled(conn: Connection, rows: Sequence[Any]) -> list[Any]:
    """``rows`` with the normalized titles of those stored without one (their sources have
    ``similar`` off) made, and stored: ``""`` where the title says too little, so each
    version is made one once."""
    made: dict[tuple[str, str], str] = {}
    out = []
    for row in rows:
        if row.title_norm is None:
            where = (row.source_id, row.key)
            if where in made:  # in every chunk's answer
                continue
            made[where] = normalized_title(row.title) or ""
            row = row._replace(title_norm=made[where])
        out.append(row)
    if made:
        conn.execute(
            _SET_TITLE,
            [{"b_source": s, "b_key": k, "b_title": title} for (s, k), title in made.items()],
        )
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
