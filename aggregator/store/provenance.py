"""Where one entry came from: its versions, their sources, and the rule that joined each.

Read by ``aggregator explain``. An entry is found by its Atom id
(``urn:infocode:…`` or ``urn:uuid:…``, by index), its key, or any link to it (a link is
compared by its canonical form, so a copy with tracking parameters finds it). The ids
of an item merged into another (item_aliases) find the one it was merged into.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from aggregator.canonical import canonical_link
from aggregator.entryid import atom_id
from aggregator.store.schema import item_aliases, item_versions, items

_v = item_versions.c


@dataclass(frozen=True, slots=True)
class Version:
    """One source's version of the entry."""

    source_id: str
    key: str  #: the version's own key (the entry's, unless it joined by a rule)
    title: str
    link: str | None
    first_seen: datetime
    rule: str  #: why it is part of the entry: ``first seen``, ``infoCode NW…``, ``canonical link``…


@dataclass(frozen=True, slots=True)
class Provenance:
    """An entry and its versions, oldest first."""

    key: str
    atom_id: str
    title: str
    link: str | None
    versions: tuple[Version, ...]


def find(conn: Connection, query: str, tracking: frozenset[str] = frozenset()) -> Provenance | None:
    """The entry ``query`` names (Atom id, key or link); None: no such entry."""
    item_id = _item_id(conn, query.strip(), tracking)
    if item_id is None:
        return None
    row = conn.execute(
        select(items.c.key, items.c.infocode, items.c.title, items.c.link).where(
            items.c.id == item_id
        )
    ).one()
    versions = conn.execute(
        select(_v.source_id, _v.key, _v.title, _v.link, _v.first_seen, _v.infocode, _v.merged_by)
        .where(_v.item_id == item_id)
        .order_by(_v.first_seen, _v.source_id)
    ).all()
    return Provenance(
        key=row.key,
        atom_id=atom_id(row.key, row.infocode),
        title=row.title,
        link=row.link,
        versions=tuple(
            Version(
                v.source_id,
                v.key,
                v.title,
                v.link,
                v.first_seen,
                _rule(row.key, v.key, v.infocode, v.merged_by, first=i == 0),
            )
            for i, v in enumerate(versions)
        ),
    )


def _rule(item_key: str, key: str, infocode: str | None, merged_by: str | None, first: bool) -> str:
    if merged_by:
        return merged_by
    if key == item_key and key.startswith("ic:"):
        return f"infoCode {infocode or key[3:]}"
    return "first seen" if first or key == item_key else "same key"


def _item_id(conn: Connection, query: str, tracking: frozenset[str]) -> int | None:
    if query.startswith("urn:infocode:"):
        return _one(conn, select(items.c.id).where(items.c.key == "ic:" + query[13:]))
    if query.startswith("urn:uuid:"):
        uuid = query[9:].lower()
        found = _one(conn, select(items.c.id).where(items.c.uuid == uuid))
        if found is None:  # an item merged into another since (store/duplicates.py)
            found = _one(conn, select(item_aliases.c.item_id).where(item_aliases.c.uuid == uuid))
        return found
    found = _one(conn, select(items.c.id).where(items.c.key == query))
    if found is None:
        found = _one(conn, select(_v.item_id).where(_v.key == query).order_by(_v.item_id))
    canon = canonical_link(query, tracking)
    if found is None and canon is not None:
        found = _one(conn, select(_v.item_id).where(_v.canon == canon).order_by(_v.item_id))
    return found


def _one(conn: Connection, stmt: object) -> int | None:
    value = conn.execute(stmt.limit(1)).scalar()  # type: ignore[attr-defined]
    return None if value is None else int(value)
