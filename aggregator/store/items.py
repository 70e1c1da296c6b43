"""Writing items: one source's versions in, merged items re-merged, in one transaction.

    apply_items(source, items)
      1. drop tombstoned keys (pruned items stay gone)
      2. classify each version against the stored one: new / changed / same
      3. same     -> last_seen only; the merged item is not touched
      4. new key  -> merged row from this one version, inserted directly
      5. the rest -> version written, its merged item re-merged from ALL versions
      6. a merged item whose hash changed gets a new ``updated``; its old and
         new categories get a bumped change counter

Every step is one statement per batch (chunked IN lists, executemany), not a
round trip per item.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from aggregator.model import Item
from aggregator.store import categories as cats
from aggregator.store import counts
from aggregator.store.bulk import chunks
from aggregator.store.merge import Merged, merge_versions, merged_hash
from aggregator.store.records import ApplyResult, KnownVersion
from aggregator.store.schema import item_categories, item_versions, items, tombstones
from aggregator.store.sources import ensure_source, recount_items

#: the Item fields a version row keeps, under the same names
_VERSION_FIELDS = (
    "guid",
    "link",
    "infocode",
    "title",
    "content_raw",
    "content_html",
    "summary_html",
    "author",
    "published",
    "updated",
    "priority",
    "content_hash",
    "detail_url",
    "detail_pending",
)


#: serialize item writers: PostgreSQL takes an advisory lock; SQLite's BEGIN IMMEDIATE did
lock_items = cats.lock_items


def tombstoned(conn: Connection, keys: Iterable[str]) -> frozenset[str]:
    wanted = sorted(set(keys))
    found: set[str] = set()
    for part in chunks(wanted):
        found.update(
            conn.execute(select(tombstones.c.key).where(tombstones.c.key.in_(part))).scalars()
        )
    return frozenset(found)


def known_versions(
    conn: Connection, source_id: str, keys: Iterable[str]
) -> dict[str, KnownVersion]:
    v = item_versions.c
    found: dict[str, KnownVersion] = {}
    for part in chunks(sorted(set(keys))):
        rows = conn.execute(
            select(v.key, v.content_hash, v.detail_pending, v.content_raw, v.content_html).where(
                v.source_id == source_id, v.key.in_(part)
            )
        )
        for row in rows:
            found[row.key] = KnownVersion(
                row.key,
                row.content_hash,
                bool(row.detail_pending),
                row.content_raw,
                row.content_html,
            )
    return found


@dataclass(frozen=True, slots=True)
class _Stored:
    """The stored version's fields that decide new / changed / same."""

    item_id: int
    content_hash: str
    priority: int
    categories: tuple[str, ...]
    detail_pending: bool


def _stored(conn: Connection, source_id: str, keys: Sequence[str]) -> dict[str, _Stored]:
    v = item_versions.c
    found: dict[str, _Stored] = {}
    for part in chunks(keys):
        rows = conn.execute(
            select(
                v.key, v.item_id, v.content_hash, v.priority, v.categories, v.detail_pending
            ).where(v.source_id == source_id, v.key.in_(part))
        )
        for r in rows:
            found[r.key] = _Stored(
                r.item_id, r.content_hash, r.priority, tuple(r.categories), bool(r.detail_pending)
            )
    return found


def _same(stored: _Stored, item: Item) -> bool:
    return (stored.content_hash, stored.priority, stored.categories, stored.detail_pending) == (
        item.content_hash,
        item.priority,
        _category_ids(item),
        item.detail_pending,
    )


def _category_ids(item: Item) -> tuple[str, ...]:
    return tuple(sorted(set(item.categories)))


def _version_row(item: Item, now: datetime) -> dict[str, Any]:
    row = {name: getattr(item, name) for name in _VERSION_FIELDS}
    row.update(categories=_category_ids(item), last_seen=now)
    return row


def apply_items(
    conn: Connection, source_id: str, batch: Sequence[Item], now: datetime
) -> ApplyResult:
    lock_items(conn)
    by_key: dict[str, Item] = {}
    for item in batch:
        if item.source_id != source_id:
            raise ValueError(f"item {item.key} is from {item.source_id}, not {source_id}")
        by_key.setdefault(item.key, item)
    if not by_key:
        return ApplyResult()
    ensure_source(conn, source_id)
    dead = tombstoned(conn, by_key)
    keys = sorted(k for k in by_key if k not in dead)
    stored = _stored(conn, source_id, keys)
    new = [by_key[k] for k in keys if k not in stored]
    changed = [by_key[k] for k in keys if k in stored and not _same(stored[k], by_key[k])]
    same = [k for k in keys if k in stored and _same(stored[k], by_key[k])]

    v = item_versions.c
    for part in chunks(same):
        conn.execute(
            update(item_versions)
            .where(v.source_id == source_id, v.key.in_(part))
            .values(last_seen=now)
        )

    merger = _Merger(conn, now)
    item_ids = _merged_ids(conn, [i.key for i in new])
    fresh = [i for i in new if i.key not in item_ids]
    remerge = {item_ids[i.key]: i for i in new if i.key in item_ids}
    item_ids.update(merger.insert_fresh(fresh))
    remerge.update((stored[i.key].item_id, i) for i in changed)

    if new:
        rows = []
        for item in new:
            row = _version_row(item, now)
            row.update(
                source_id=source_id, key=item.key, item_id=item_ids[item.key], first_seen=now
            )
            rows.append(row)
        conn.execute(insert(item_versions), rows)
    if changed:
        stmt = (
            update(item_versions)
            .where(v.source_id == source_id, v.key == bindparam("b_key"))
            .values(
                {name: bindparam(name) for name in (*_VERSION_FIELDS, "categories", "last_seen")}
            )
        )
        conn.execute(stmt, [{"b_key": i.key, **_version_row(i, now)} for i in changed])

    merger.remerge(remerge)
    merger.tally.write(conn)
    if new:
        recount_items(conn, [source_id])
    cats.bump(conn, merger.changed_categories)
    return ApplyResult(
        new=len(new),
        updated=len(changed),
        unchanged=len(same),
        tombstoned=len(by_key) - len(keys),
        changed_categories=frozenset(merger.changed_categories),
        changed_keys=frozenset(merger.changed_keys),
    )


def _merged_ids(conn: Connection, keys: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(sorted(keys)):
        found.update(
            (row.key, row.id)
            for row in conn.execute(select(items.c.key, items.c.id).where(items.c.key.in_(part)))
        )
    return found


def to_item(row: Row[Any]) -> Item:
    """A stored version as the Item the merge reads."""
    m = row._mapping
    return Item(
        key=m["key"],
        source_id=m["source_id"],
        categories=tuple(m["categories"]),
        **{name: m[name] for name in _VERSION_FIELDS},
    )


class _Merger:
    """Writes merged rows for one apply and remembers which keys and categories changed."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.changed_categories: set[str] = set()
        self.changed_keys: set[str] = set()
        self.tally = counts.Tally()  #: item_categories rows written, for the categories' counts
        self._ranks: dict[str, cats.CategoryRank] | None = None

    def _post_category(self, merged: Merged, winner: Item) -> str | None:
        if self._ranks is None:
            self._ranks = cats.ranks(self.conn)
        return cats.post_category(merged.categories, winner.categories, self._ranks)

    def _row(self, merged: Merged, winner: Item, published: datetime) -> dict[str, Any]:
        return {
            "infocode": merged.infocode,
            "title": merged.title,
            "link": merged.link,
            "content_html": merged.content_html,
            "content_raw": merged.content_raw,
            "summary_html": merged.summary_html,
            "author": merged.author,
            "published": published,
            "content_hash": merged_hash(merged, published),
            "post_category": self._post_category(merged, winner),
        }

    def insert_fresh(self, fresh: Sequence[Item]) -> dict[str, int]:
        """Keys no source carried before: the one version is the merged item."""
        if not fresh:
            return {}
        rows = []
        for item in fresh:
            merged = merge_versions([item])
            published = merged.published or self.now
            row = self._row(merged, item, published)
            row.update(
                key=item.key,
                updated=item.updated or item.published or self.now,
                first_seen=self.now,
            )
            rows.append(row)
        result = self.conn.execute(insert(items).returning(items.c.key, items.c.id), rows)
        ids = {row.key: row.id for row in result}
        self._write_categories(
            {
                ids[item.key]: (item.key, row["published"], tuple(sorted(set(item.categories))))
                for item, row in zip(fresh, rows, strict=True)
            }
        )
        for item, row in zip(fresh, rows, strict=True):
            self.changed_keys.add(item.key)
            self.changed_categories.update(item.categories)
            self.tally.add(item.categories, row["updated"])
        return ids

    def remerge(self, in_hand: Mapping[int, Item]) -> None:
        """Merge each item again from all its versions; write the ones whose hash changed.

        ``in_hand``: item id -> this source's version, just written; an item no
        other source carries is merged from it without reading it back.
        """
        if not in_hand:
            return
        conn = self.conn
        item_ids = sorted(in_hand)
        current: dict[int, Any] = {}
        old_cats: dict[int, set[str]] = defaultdict(set)
        versions: dict[int, list[Item]] = defaultdict(list)
        for part in chunks(item_ids):
            for row in conn.execute(
                select(
                    items.c.id,
                    items.c.key,
                    items.c.updated,
                    items.c.first_seen,
                    items.c.content_hash,
                ).where(items.c.id.in_(part))
            ):
                current[row.id] = row
            for link in conn.execute(
                select(item_categories.c.item_id, item_categories.c.category_id).where(
                    item_categories.c.item_id.in_(part)
                )
            ):
                old_cats[link.item_id].add(link.category_id)
            shared = set()
            for carrier in conn.execute(
                select(item_versions.c.item_id, item_versions.c.source_id).where(
                    item_versions.c.item_id.in_(part)
                )
            ):
                if carrier.source_id != in_hand[carrier.item_id].source_id:
                    shared.add(carrier.item_id)
            for item_id in part:
                if item_id not in shared:
                    versions[item_id].append(in_hand[item_id])
            if shared:
                for version in conn.execute(
                    select(item_versions).where(item_versions.c.item_id.in_(sorted(shared)))
                ):
                    versions[version.item_id].append(to_item(version))
        updates: list[dict[str, Any]] = []
        placed: dict[int, tuple[str, datetime, tuple[str, ...]]] = {}
        for item_id in item_ids:
            stored, vs = current[item_id], versions[item_id]
            merged = merge_versions(vs)
            published = merged.published or stored.first_seen
            winner = next(x for x in vs if x.source_id == merged.winner)
            values = self._row(merged, winner, published)
            if values["content_hash"] == stored.content_hash:
                continue
            own = merged.updated
            values["updated"] = own if own is not None and own > stored.updated else self.now
            updates.append({"b_id": item_id, **values})
            placed[item_id] = (stored.key, published, merged.categories)
            self.changed_keys.add(stored.key)
            self.changed_categories.update(old_cats[item_id], merged.categories)
            self.tally.remove(old_cats[item_id], stored.updated)
            self.tally.add(merged.categories, values["updated"])
        if not updates:
            return
        columns = [name for name in updates[0] if name != "b_id"]
        conn.execute(
            update(items)
            .where(items.c.id == bindparam("b_id"))
            .values({name: bindparam(name) for name in columns}),
            updates,
        )
        self._write_categories(placed, replace=True)

    def _write_categories(
        self, placed: Mapping[int, tuple[str, datetime, tuple[str, ...]]], *, replace: bool = False
    ) -> None:
        if replace:
            for part in chunks(sorted(placed)):
                self.conn.execute(
                    delete(item_categories).where(item_categories.c.item_id.in_(part))
                )
        rows = [
            {"item_id": item_id, "category_id": cid, "published": published, "key": key}
            for item_id, (key, published, categories) in placed.items()
            for cid in categories
        ]
        if rows:
            self.conn.execute(insert(item_categories), rows)
