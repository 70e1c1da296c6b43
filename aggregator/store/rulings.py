"""Rules on what is stored: re-applied when they change, or tried without changing anything.

Every merged row keeps what the rules made of it (``dropped``, ``title`` with
``base_title`` before a retitle, its ``item_categories``); the versions under
it are kept as the sources gave them. So when the rules change, each stored
item is evaluated again from its merged view (the union of its versions'
categories, every source carrying it, its title before any rule), and only
the items whose outcome differs are written: no refetch (Miniflux #2683).

The digest of the rules the rows were made with is kept in ``meta``
(name ``rules``), so ``poll``, ``build`` and the daemon see an edit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, update

from aggregator.rules import ItemView, RuleOutcome, RuleSet, apply_rules
from aggregator.store import bodies as texts
from aggregator.store import categories as cats
from aggregator.store import counts
from aggregator.store.bulk import Inserts, chunks, upsert
from aggregator.store.merge import Merged, merged_hash
from aggregator.store.schema import item_categories, item_versions, items, meta

#: items read per round trip while evaluating
BATCH = 20_000
_DIGEST = "rules"

_i = items.c
_UPDATE = (
    update(items)
    .where(_i.id == bindparam("b_id"))
    .values(
        title=bindparam("title"),
        base_title=bindparam("base_title"),
        dropped=bindparam("dropped"),
        content_hash=bindparam("content_hash"),
        post_category=bindparam("post_category"),
        updated=bindparam("updated"),
    )
)
_UNFILE = delete(item_categories).where(
    item_categories.c.item_id.in_(bindparam("ids", expanding=True))
)
_FILE = Inserts(item_categories, ("item_id", "category_id", "published", "key"))


def digest_value(digest: str) -> int:
    """The rules' digest as the integer ``meta`` keeps (60 bits of it)."""
    return int(digest[:15], 16)


def stored_digest(conn: Connection) -> int | None:
    return conn.execute(select(meta.c.value).where(meta.c.name == _DIGEST)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored item: its merged view before rules, and what the rules made of it."""

    item_id: int
    view: ItemView
    title: str
    dropped: bool
    filed: frozenset[str]
    post_category: str | None


def body_column() -> Any:
    """The stored body rules read (``text``, ``content``): the sanitized body, else the
    summary; one column, so the body's raw copy is never read."""
    return func.coalesce(func.nullif(texts.CONTENT_HTML, ""), texts.SUMMARY_HTML)


def stored_items(
    conn: Connection, *, bodies: bool, source_id: str | None = None
) -> Iterator[Stored]:
    """Every stored item (of ``source_id``), ``BATCH`` at a time, in id order.

    ``bodies``: read the body (rules on text or content); the view's ``content_html``
    holds it (the summary where there is no body).
    """
    columns = [_i.id, _i.key, _i.title, _i.base_title, _i.dropped, _i.author, _i.link]
    columns.append(_i.post_category)
    if bodies:
        columns.append(body_column())
    v, ic = item_versions.c, item_categories.c
    last = 0
    while True:
        query = select(*columns).where(_i.id > last).order_by(_i.id).limit(BATCH)
        if bodies:
            query = query.select_from(texts.joined(items))
        if source_id is not None:
            query = query.where(_i.id.in_(select(v.item_id).where(v.source_id == source_id)))
        rows = conn.execute(query).all()
        if not rows:
            return
        lo, hi = rows[0][0], rows[-1][0]
        last = hi
        sources: dict[int, list[str]] = defaultdict(list)
        base: dict[int, set[str]] = defaultdict(set)
        for item_id, source, categories in conn.execute(
            select(v.item_id, v.source_id, v.categories).where(v.item_id.between(lo, hi))
        ):
            sources[item_id].append(source)
            base[item_id].update(categories)
        filed: dict[int, set[str]] = defaultdict(set)
        for item_id, category in conn.execute(
            select(ic.item_id, ic.category_id).where(ic.item_id.between(lo, hi))
        ):
            filed[item_id].add(category)
        for r in rows:
            item_id = r[0]
            yield Stored(
                item_id=item_id,
                view=ItemView(
                    key=r[1],
                    title=r[3] if r[3] is not None else r[2],
                    sources=tuple(sorted(sources[item_id])),
                    categories=tuple(sorted(base[item_id])),
                    content_html=r[8] if bodies else None,
                    author=r[5],
                    link=r[6],
                ),
                title=r[2],
                dropped=bool(r[4]),
                filed=frozenset(filed[item_id]),
                post_category=r[7],
            )


def needs_bodies(rules: RuleSet) -> bool:
    return any(r.field in ("text", "content", "any") for r in rules.rules)


def differs(stored: Stored, outcome: RuleOutcome) -> bool:
    """The rules now make something else of this item than what is stored."""
    filed = frozenset(() if outcome.dropped else outcome.categories)
    return (outcome.title, outcome.dropped, filed) != (stored.title, stored.dropped, stored.filed)


@dataclass(frozen=True, slots=True)
class Reapplied:
    """What re-applying changed rules did to the stored items."""

    evaluated: int = 0
    changed: int = 0  #: items whose title, categories or dropped state changed
    dropped: int = 0  #: of those, newly dropped
    restored: int = 0  #: of those, no longer dropped
    changed_categories: frozenset[str] = field(default_factory=frozenset)
    current: bool = False  #: the rules had not changed: nothing was evaluated


def reapply(conn: Connection, rules: RuleSet, now: datetime) -> Reapplied:
    """Evaluate every stored item again when the rules differ from the stored digest."""
    cats.lock_items(conn)
    stored = stored_digest(conn)
    value = digest_value(rules.digest)
    if stored == value:
        return Reapplied(current=True)
    if stored is None and not rules.rules:  # every row was made without rules: as they are
        upsert(conn, meta, [{"name": _DIGEST, "value": value}], ["name"], ["value"])
        return Reapplied()
    evaluated = 0
    moved: list[tuple[Stored, RuleOutcome]] = []
    for one in stored_items(conn, bodies=needs_bodies(rules)):
        evaluated += 1
        outcome = apply_rules(rules, one.view)
        if differs(one, outcome):
            moved.append((one, outcome))
    changed_categories = _write(conn, moved, now) if moved else set()
    cats.bump(conn, changed_categories, [s.view.key for s, _ in moved])  # posts follow them
    upsert(conn, meta, [{"name": _DIGEST, "value": value}], ["name"], ["value"])
    return Reapplied(
        evaluated=evaluated,
        changed=len(moved),
        dropped=sum(1 for s, o in moved if o.dropped and not s.dropped),
        restored=sum(1 for s, o in moved if s.dropped and not o.dropped),
        changed_categories=frozenset(changed_categories),
    )


def _write(conn: Connection, moved: list[tuple[Stored, RuleOutcome]], now: datetime) -> set[str]:
    """The moved items' rows, filing and counts; returns the categories whose feeds change."""
    ranks = cats.read_categories(conn)
    tally = counts.Tally()
    changed: set[str] = set()
    ids = [s.item_id for s, _ in moved]
    full: dict[int, Any] = {}
    for part in chunks(ids):
        for r in conn.execute(
            select(items, *texts.COLUMNS).select_from(texts.joined(items)).where(_i.id.in_(part))
        ):
            full[r.id] = r
    updates: list[dict[str, Any]] = []
    filings: list[dict[str, Any]] = []
    for stored, outcome in moved:
        row = full[stored.item_id]
        filed = () if outcome.dropped else outcome.categories
        shown = Merged(
            key=row.key,
            winner="",
            infocode=row.infocode,
            title=outcome.title,
            link=row.link,
            content_html=row.content_html,
            content_raw=row.content_raw,
            summary_html=row.summary_html,
            author=row.author,
            published=row.published,
            updated=None,
            categories=filed,
            enclosures=tuple(row.enclosures or ()),
        )
        post = stored.post_category if stored.post_category in filed else None
        if post is None and filed:
            post = cats.post_category(filed, (), ranks.ranks)
        updates.append(
            {
                "b_id": stored.item_id,
                "title": outcome.title,
                "base_title": stored.view.title if outcome.title != stored.view.title else None,
                "dropped": outcome.dropped,
                "content_hash": merged_hash(shown, row.published),
                "post_category": post,
                "updated": now,
            }
        )
        filings += [
            {
                "item_id": stored.item_id,
                "category_id": c,
                "published": row.published,
                "key": row.key,
            }
            for c in filed
        ]
        tally.remove(stored.filed, row.updated)
        tally.add(filed, now)
        changed.update(stored.filed, filed)
    conn.execute(_UPDATE, updates)
    for part in chunks(sorted(ids)):
        conn.execute(_UNFILE, {"ids": part})
    _FILE.execute(conn, filings)
    tally.write(conn, ranks.newest)
    return changed
