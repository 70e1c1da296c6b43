"""Writing items: one source's versions in, merged items re-merged, in one transaction.

    apply_items(source, items)
      1. drop tombstoned keys (pruned items stay gone)
      2. classify each version against the stored one: new / changed / same
      3. same     -> last_seen only; the merged item is not touched
      4. new key  -> merged row from this one version, inserted directly
      5. the rest -> version written, its merged item re-merged from ALL versions
      6. the rules (rules.py) run on each merged item: dropped, filed, retitled
      7. a merged item whose hash changed gets a new ``updated``; its old and
         new categories get a bumped change counter

The versions are stored as the sources gave them; only the merged row holds
what the rules made of it, so a rule change is re-applied from what is
stored (rulings.py), never by a refetch.

The versions themselves (what each source said) are read and written by
versions.py; here they become merged items (what readers see).

Every step is one statement per batch (chunked IN lists, executemany), not a
round trip per item; the statements are built once, here, not per call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, delete, select, update

from aggregator.entryid import key_uuid
from aggregator.model import Item
from aggregator.rules import NO_RULES, ItemView, RuleOutcome, RuleSet, apply_rules
from aggregator.similar import SimilarRule
from aggregator.store import bodies, counts, rulings, versions
from aggregator.store import categories as cats
from aggregator.store.bulk import Inserts, Query, chunks
from aggregator.store.joins import joins
from aggregator.store.merge import Merged, merge_versions, merged_hash
from aggregator.store.records import ApplyResult
from aggregator.store.schema import item_categories, item_versions, items
from aggregator.store.sources import add_versions
from aggregator.store.versions import to_item

_v = item_versions.c
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
_SOURCE: BindParameter[Any] = bindparam("source_id")

#: the merged items being re-merged, one row per category they are filed under (or one, None)
_CURRENT = Query(
    select(
        items.c.id,
        items.c.key,
        items.c.updated,
        items.c.first_seen,
        items.c.published,
        items.c.content_hash,
        items.c.dropped,
        item_categories.c.category_id,
    )
    .select_from(items.outerjoin(item_categories, item_categories.c.item_id == items.c.id))
    .where(items.c.id.in_(bindparam("ids", expanding=True))),
    "ids",
)
#: the versions other sources carry of the items being re-merged
_OTHER_VERSIONS = Query(
    versions.VERSIONS.where(
        _v.item_id.in_(bindparam("ids", expanding=True)), _v.source_id != _SOURCE
    ),
    "ids",
)
_ALL_VERSIONS = Query(
    versions.VERSIONS.where(_v.item_id.in_(bindparam("ids", expanding=True))), "ids"
)
_MERGED_COLUMNS = (
    "infocode",
    "title",
    "link",
    "body",
    "author",
    "published",
    "content_hash",
    "post_category",
    "dropped",
    "base_title",
    "updated",
    "enclosures",
    "changed",
)
#: a fresh merged item: the merged columns plus its key and first sighting
_INSERT_ITEMS = Inserts(items, ("key", *_MERGED_COLUMNS, "first_seen", "uuid"))
_UPDATE_ITEMS = Query(
    update(items)
    .where(items.c.id == bindparam("b_id"))
    .values({name: bindparam(name) for name in _MERGED_COLUMNS})
)
_UNFILE = Query(
    delete(item_categories).where(item_categories.c.item_id.in_(bindparam("ids", expanding=True))),
    "ids",
)
_FILE = Inserts(item_categories, ("item_id", "category_id", "published", "key"))


#: a date further ahead of the item's first sighting is not believed (issue 13: an item
#: dated in year 9999 would head every feed for good)
AHEAD = timedelta(days=1)


#: serialize item writers: PostgreSQL takes an advisory lock; SQLite's BEGIN IMMEDIATE did
lock_items = cats.lock_items


def apply_items(
    conn: Connection,
    source_id: str,
    batch: Sequence[Item],
    now: datetime,
    rules: RuleSet = NO_RULES,
    *,
    force: bool = False,
    similar: SimilarRule | None = None,
) -> ApplyResult:
    """``force``: write every stored version given, even one whose hash is the same (a body
    read again by ``aggregator refetch``: the document did not change, the article did);
    ``similar``: near-duplicates join other sources' items (joins.py), besides links."""
    lock_items(conn)
    rules = rulings.in_force(conn, rules)  # a reload re-applied others since the poll began
    by_key: dict[str, Item] = {}
    for item in batch:
        if item.source_id != source_id:
            raise ValueError(f"item {item.key} is from {item.source_id}, not {source_id}")
        if item.key not in by_key:
            by_key[item.key] = bodies.kept(item)
    if not by_key:
        return ApplyResult()
    item_ids, stored = versions.stored_versions(conn, source_id, sorted(by_key))
    # a pruned key has no item left: only the keys without one can be tombstoned
    dead = versions.tombstoned(conn, [k for k in by_key if k not in item_ids])
    keys = sorted(k for k in by_key if k not in dead)
    new = [by_key[k] for k in keys if k not in stored]
    same = [k for k in keys if k in stored and not force and versions.is_same(stored[k], by_key[k])]
    unchanged = set(same)
    changed = [by_key[k] for k in keys if k in stored and k not in unchanged]

    versions.seen_again(conn, source_id, same, now)

    joined = joins(conn, source_id, [i for i in new if i.key not in item_ids], similar)
    item_ids.update((key, join.item_id) for key, join in joined.items())
    written = bodies.write(conn, [*new, *changed])
    body_keys = written.keys
    merger = Merger(conn, now, rules, (source_id, written))
    remerge = {item_ids[i.key]: i for i in new if i.key in item_ids}
    remerge.update((stored[i.key].item_id, i) for i in changed)
    if new:
        add_versions(conn, source_id, len(new))  # before the versions: they need its row
        item_ids.update(merger.insert_fresh([i for i in new if i.key not in item_ids]))
        rules_of = {key: join.rule for key, join in joined.items()}
        versions.insert_versions(conn, source_id, new, item_ids, body_keys, now, rules_of)
    if changed:
        versions.update_versions(conn, source_id, changed, body_keys, now)

    merger.remerge(source_id, remerge)
    bodies.collect(  # the bodies changed versions no longer name, once no item does either
        conn, [stored[i.key].body for i in changed if stored[i.key].body != body_keys[i.key]]
    )
    merger.write_counts()
    if merger.stamp is not None:  # every merged row written carries it already
        cats.bump(conn, merger.changed_categories, value=merger.stamp)
    else:
        cats.bump(conn, merger.changed_categories, merger.changed_keys)
    dropped = merger.dropped_keys
    return ApplyResult(
        new=sum(1 for i in new if i.key not in dropped),
        updated=sum(1 for i in changed if i.key not in dropped),
        unchanged=len(same),
        dropped=sum(1 for i in (*new, *changed) if i.key in dropped),
        tombstoned=len(by_key) - len(keys),
        future_dated=len(merger.future_dated),
        changed_categories=frozenset(merger.changed_categories),
        changed_keys=frozenset(merger.changed_keys),
    )


class Merger:
    """Writes merged rows for one apply and remembers which keys and categories changed."""

    def __init__(
        self,
        conn: Connection,
        now: datetime,
        rules: RuleSet = NO_RULES,
        in_hand: tuple[str, bodies.Written] = ("", bodies.Written({}, {})),
    ) -> None:
        self.conn = conn
        self.now = now
        self.rules = rules
        #: the source being applied, and its versions' bodies as bodies.write stored them
        self.in_hand = in_hand
        self.dropped_keys: set[str] = set()  #: merged items the rules drop
        self.changed_categories: set[str] = set()
        self.changed_keys: set[str] = set()
        self.future_dated: set[str] = set()  #: keys dated more than AHEAD past first sighting
        self.tally = counts.Tally()  #: item_categories rows written, for the categories' counts
        self._categories: cats.Categories | None = None
        self.stamp: int | None = None  #: the change counter the rows written carry

    def _stamp(self) -> int:
        """The counter value of this transaction, taken at its first merged row."""
        if self.stamp is None:
            self.stamp = cats.stamp(self.conn)
        return self.stamp

    @property
    def categories(self) -> cats.Categories:
        """Read once per apply: the merge's ranks and the counts' newest ``updated``."""
        if self._categories is None:
            self._categories = cats.read_categories(self.conn)
        return self._categories

    def _judge(
        self, batch: Sequence[tuple[Merged, Item, tuple[str, ...]]]
    ) -> list[tuple[bytes | None, RuleOutcome]]:
        """Each merged item's body key and what the rules make of it (``(merged, winner,
        sources)``), the whole batch in one loop before any row is built, so that the rules'
        code and RE2 sets stay in the processor's caches from one item to the next."""
        source_id, written = self.in_hand
        keys, texts, rules = written.keys, written.texts, self.rules
        judged = []
        for merged, winner, sources in batch:
            in_hand = winner.source_id == source_id and winner.key in keys
            body = keys[winner.key] if in_hand else bodies.key_of(winner)  # the merged texts' key
            # the merged body is the winner's: its plain text where this apply stored a body
            # with the same key, also when another source's version won (a story two carry)
            text = None if body is None else texts.get(body)
            judged.append((body, apply_rules(rules, view_of(merged, sources, text))))
        return judged

    def _row(
        self,
        merged: Merged,
        winner: Item,
        published: datetime,
        body: bytes | None,
        outcome: RuleOutcome,
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The merged row as the rules left it (``_judge``), and the categories it is filed
        under."""
        filed = () if outcome.dropped else outcome.categories
        if outcome.dropped:
            self.dropped_keys.add(merged.key)
        return {
            "infocode": merged.infocode,
            "title": outcome.title,
            "link": merged.link,
            "body": body,
            "author": merged.author,
            "enclosures": merged.enclosures,
            "published": published,
            "content_hash": merged_hash(merged, published, outcome.title, filed, body),
            "post_category": cats.post_category(
                filed, [c for c in winner.categories if c in filed], self.categories.ranks
            ),
            "dropped": outcome.dropped,
            "base_title": merged.title if outcome.title != merged.title else None,
        }, filed

    def _dated(self, key: str, moment: datetime | None, first_seen: datetime) -> datetime:
        """``moment`` where it is believable, else when the item was first seen."""
        if moment is None:
            return first_seen
        if moment > first_seen + AHEAD:
            self.future_dated.add(key)
            return first_seen
        return moment

    def insert_fresh(self, fresh: Sequence[Item]) -> dict[str, int]:
        """Keys no source carried before: the one version is the merged item."""
        if not fresh:
            return {}
        rows = []
        placed_fresh: list[tuple[str, ...]] = []
        merged_all = [merge_versions([item]) for item in fresh]
        judged = self._judge(
            [
                (merged, item, (item.source_id,))
                for merged, item in zip(merged_all, fresh, strict=True)
            ]
        )
        for item, merged, (body, outcome) in zip(fresh, merged_all, judged, strict=True):
            published = self._dated(item.key, merged.published, self.now)
            row, filed = self._row(merged, item, published, body, outcome)
            placed_fresh.append(filed)
            row.update(
                key=item.key,
                updated=self._dated(item.key, item.updated or item.published, self.now),
                first_seen=self.now,
                uuid=key_uuid(item.key),
                changed=self._stamp(),
            )
            rows.append(row)
        _INSERT_ITEMS.execute(self.conn, rows)
        ids: dict[str, int] = {}
        for part in chunks([item.key for item in fresh]):
            ids.update((row.key, row.id) for row in versions.ITEM_IDS.rows(self.conn, values=part))
        self._write_categories(
            {
                ids[item.key]: (item.key, row["published"], filed)
                for item, row, filed in zip(fresh, rows, placed_fresh, strict=True)
            }
        )
        for item, row, filed in zip(fresh, rows, placed_fresh, strict=True):
            self.changed_keys.add(item.key)
            self.changed_categories.update(filed)
            self.tally.add(filed, row["updated"])
        return ids

    def remerge(self, source_id: str, in_hand: Mapping[int, Item]) -> None:
        """Merge each item again from all its versions; write the ones whose hash changed.

        ``in_hand``: item id -> ``source_id``'s version, just written; only the
        other sources' versions are read back.
        """
        if not in_hand:
            return
        versions: dict[int, list[Item]] = {i: [in_hand[i]] for i in sorted(in_hand)}
        for part in chunks(sorted(in_hand)):
            for version in _OTHER_VERSIONS.rows(self.conn, {"source_id": source_id}, part):
                versions[version.item_id].append(to_item(version))
        self._write_merged(versions)

    def remerge_all(self, item_ids: Sequence[int]) -> None:
        """Merge each item again from all its stored versions (store/rejoin.py)."""
        versions: dict[int, list[Item]] = {i: [] for i in sorted(item_ids)}
        for part in chunks(sorted(item_ids)):
            for version in _ALL_VERSIONS.rows(self.conn, values=part):
                versions[version.item_id].append(to_item(version))
        self._write_merged(versions)

    def _write_merged(self, versions: Mapping[int, list[Item]]) -> None:
        item_ids = sorted(versions)
        current: dict[int, Any] = {}
        old_cats: dict[int, set[str]] = defaultdict(set)
        for part in chunks(item_ids):
            for row in _CURRENT.rows(self.conn, values=part):
                current[row.id] = row
                if row.category_id is not None:
                    old_cats[row.id].add(row.category_id)
        updates: list[dict[str, Any]] = []
        placed: dict[int, tuple[str, datetime, tuple[str, ...]]] = {}
        batch = []
        for item_id in item_ids:
            vs = versions[item_id]
            merged = merge_versions(vs)
            winner = next(x for x in vs if x.source_id == merged.winner)
            batch.append((merged, winner, tuple(sorted(x.source_id for x in vs))))
        for item_id, (merged, winner, _), (body, outcome) in zip(
            item_ids, batch, self._judge(batch), strict=True
        ):
            stored = current[item_id]
            published = self._dated(stored.key, merged.published, stored.first_seen)
            values, filed = self._row(merged, winner, published, body, outcome)
            if (values["content_hash"], values["dropped"]) == (
                stored.content_hash,
                bool(stored.dropped),
            ):
                continue
            own = merged.updated and self._dated(stored.key, merged.updated, stored.first_seen)
            values["updated"] = own if own is not None and own > stored.updated else self.now
            updates.append({"b_id": item_id, **values, "changed": self._stamp()})
            if (published, set(filed)) != (stored.published, old_cats[item_id]):
                placed[item_id] = (stored.key, published, filed)
            self.changed_keys.add(stored.key)
            self.changed_categories.update(old_cats[item_id], filed)
            self.tally.remove(old_cats[item_id], stored.updated)
            self.tally.add(filed, values["updated"])
        if not updates:
            return
        _UPDATE_ITEMS.many(self.conn, updates)
        self._write_categories(placed, replace=True)

    def _write_categories(
        self, placed: Mapping[int, tuple[str, datetime, tuple[str, ...]]], *, replace: bool = False
    ) -> None:
        if replace:
            _UNFILE.run(self.conn, values=sorted(placed))
        _FILE.execute(
            self.conn,
            (
                {"item_id": item_id, "category_id": cid, "published": published, "key": key}
                for item_id, (key, published, categories) in placed.items()
                for cid in categories
            ),
        )

    def write_counts(self) -> None:
        """The categories' counts, from the rows this apply filed and unfiled."""
        if self.tally:
            self.tally.write(self.conn, self.categories.newest)


def view_of(merged: Merged, sources: tuple[str, ...], text: str | None = None) -> ItemView:
    """The merged item as the rules see it; ``text``: its body's plain text, if at hand."""
    return ItemView(
        key=merged.key,
        title=merged.title,
        sources=sources,
        categories=merged.categories,
        content_html=merged.content_html,
        summary_html=merged.summary_html,
        author=merged.author,
        link=merged.link,
        text=text,
    )
