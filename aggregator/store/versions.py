"""One source's versions of items: what each source said, as it said it.

Each (source, key) has one version row; the merged item readers see is made
from all of an item's versions (items.py). Here: which versions are stored,
which are the same again, and writing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, Row, bindparam, select, update

from aggregator.model import Item, KnownVersion
from aggregator.store import bodies
from aggregator.store.bulk import Inserts, Query, chunks
from aggregator.store.schema import item_versions, items, tombstones

#: what the Item has besides the row's columns: its body's texts
BODY_FIELDS = ("content_html", "summary_html", "content_raw")

#: the Item fields a version row keeps, under the same names (its texts: in ``bodies``)
VERSION_FIELDS = (
    "guid",
    "link",
    "infocode",
    "title",
    "author",
    "published",
    "updated",
    "priority",
    "content_hash",
    "detail_url",
    "detail_pending",
    "enclosures",
    "canon",
    "title_norm",
)

_v = item_versions.c
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
_SOURCE: BindParameter[Any] = bindparam("source_id")

_TOMBSTONED = Query(select(tombstones.c.key).where(tombstones.c.key.in_(_KEYS)), "keys")
_KNOWN = Query(
    select(_v.key, _v.content_hash, _v.detail_pending, bodies.CONTENT_RAW, bodies.CONTENT_HTML)
    .select_from(bodies.joined(item_versions))
    .where(_v.source_id == _SOURCE, _v.key.in_(_KEYS)),
    "keys",
)
#: this source's stored versions, with the items they belong to
_STORED = Query(
    select(
        _v.key, _v.item_id, _v.content_hash, _v.priority, _v.categories, _v.detail_pending, _v.body
    ).where(_v.source_id == _SOURCE, _v.key.in_(_KEYS)),
    "keys",
)
#: whole versions, with their bodies' texts: what ``to_item`` reads
VERSIONS = select(item_versions, *bodies.COLUMNS).select_from(bodies.joined(item_versions))
#: merged items' ids by key
ITEM_IDS = Query(select(items.c.key, items.c.id).where(items.c.key.in_(_KEYS)), "keys")
_SEEN_AGAIN = Query(
    update(item_versions)
    .where(_v.source_id == bindparam("b_source"), _v.key.in_(bindparam("b_keys", expanding=True)))
    .values(last_seen=bindparam("b_now")),
    "b_keys",
)
_INSERT_VERSIONS = Inserts(
    item_versions,
    (
        "source_id",
        "key",
        "item_id",
        *VERSION_FIELDS,
        "body",
        "categories",
        "first_seen",
        "last_seen",
        "merged_by",
    ),
)
_UPDATE_VERSIONS = Query(
    update(item_versions)
    .where(_v.source_id == bindparam("b_source"), _v.key == bindparam("b_key"))
    .values(
        {name: bindparam(name) for name in (*VERSION_FIELDS, "body", "categories", "last_seen")}
    )
)


def tombstoned(conn: Connection, keys: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for part in chunks(sorted(set(keys))):
        found.update(row.key for row in _TOMBSTONED.rows(conn, values=part))
    return frozenset(found)


def known_versions(
    conn: Connection, source_id: str, keys: Iterable[str]
) -> dict[str, KnownVersion]:
    found: dict[str, KnownVersion] = {}
    for part in chunks(sorted(set(keys))):
        for row in _KNOWN.rows(conn, {"source_id": source_id}, part):
            found[row.key] = KnownVersion(
                row.key,
                row.content_hash,
                bool(row.detail_pending),
                row.content_raw,
                row.content_html,
            )
    return found


@dataclass(frozen=True, slots=True)
class Stored:
    """The stored version's fields that decide new / changed / same."""

    item_id: int
    content_hash: str
    priority: int
    categories: tuple[str, ...]
    detail_pending: bool
    body: bytes | None  #: its body's key


def stored_versions(
    conn: Connection, source_id: str, keys: Sequence[str]
) -> tuple[dict[str, int], dict[str, Stored]]:
    """Item ids of the keys already merged, and this source's versions among them.

    A version that joined another item (joins.py) has a key of its own: its item is
    found through the version; the shared keys (infoCode) through the items.
    """
    item_ids: dict[str, int] = {}
    versions: dict[str, Stored] = {}
    for part in chunks(keys):
        for r in _STORED.rows(conn, {"source_id": source_id}, part):
            item_ids[r.key] = r.item_id
            versions[r.key] = Stored(
                r.item_id,
                r.content_hash,
                r.priority,
                tuple(r.categories),
                bool(r.detail_pending),
                r.body,
            )
    for part in chunks([k for k in keys if k not in versions]):
        item_ids.update((r.key, r.id) for r in ITEM_IDS.rows(conn, values=part))
    return item_ids, versions


def is_same(stored: Stored, item: Item) -> bool:
    return (stored.content_hash, stored.priority, stored.categories, stored.detail_pending) == (
        item.content_hash,
        item.priority,
        _category_ids(item),
        item.detail_pending,
    )


def _category_ids(item: Item) -> tuple[str, ...]:
    return tuple(sorted(set(item.categories)))


def _version_row(item: Item, body: bytes | None, now: datetime) -> dict[str, Any]:
    row = {name: getattr(item, name) for name in VERSION_FIELDS}
    row.update(body=body, categories=_category_ids(item), last_seen=now)
    return row


def seen_again(conn: Connection, source_id: str, keys: Sequence[str], now: datetime) -> None:
    """Versions carried again unchanged: only their ``last_seen`` moves."""
    _SEEN_AGAIN.run(conn, {"b_source": source_id, "b_now": now}, keys)


def insert_versions(
    conn: Connection,
    source_id: str,
    fresh: Sequence[Item],
    item_ids: Mapping[str, int],
    body_keys: Mapping[str, bytes | None],
    now: datetime,
    merged_by: Mapping[str, str] | None = None,
) -> None:
    """Versions this source never carried, each under its merged item's id, naming the
    bodies ``body_keys`` gives (bodies.write); ``merged_by``: key -> the rule that joined
    the version to another source's item."""
    rows = []
    merged_by = merged_by or {}
    for item in fresh:
        row = _version_row(item, body_keys[item.key], now)
        row.update(
            source_id=source_id,
            key=item.key,
            item_id=item_ids[item.key],
            first_seen=now,
            merged_by=merged_by.get(item.key),
        )
        rows.append(row)
    _INSERT_VERSIONS.execute(conn, rows)


def update_versions(
    conn: Connection,
    source_id: str,
    changed: Sequence[Item],
    body_keys: Mapping[str, bytes | None],
    now: datetime,
) -> None:
    _UPDATE_VERSIONS.many(
        conn,
        (
            {"b_source": source_id, "b_key": i.key, **_version_row(i, body_keys[i.key], now)}
            for i in changed
        ),
    )


def to_item(row: Row[Any]) -> Item:
    """A stored version (a row of ``VERSIONS``, or of a Query of it) as the Item the merge reads."""
    return Item(
        key=row.key,
        source_id=row.source_id,
        categories=tuple(row.categories),
        **{name: getattr(row, name) for name in (*VERSION_FIELDS, *BODY_FIELDS)},
    )
