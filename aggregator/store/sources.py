"""Per-source state rows: config sync, due-source leases, saving a poll's outcome.

A lease (``lease_owner`` until ``lease_expires_at``) lets several instances
share one database: ``claim_due`` hands each due source to one owner only,
and a crashed owner's sources come back once its leases expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from aggregator.model import ConfiguredSource, PollStatus, SourceState
from aggregator.store.bulk import chunks, insert_missing, upsert_statement
from aggregator.store.schema import item_categories, item_versions, metadata, sources

#: SourceState field -> column, for every field save_state writes (item_count is the store's own)
_SAVED = (
    "url",
    "etag",
    "last_modified",
    "validators_url",
    "last_poll_at",
    "last_success_at",
    "status",
    "error_kind",
    "error_message",
    "consecutive_failures",
    "next_due_at",
    "disabled_reason",
    "redirect_url",
    "redirect_seen",
)


def to_state(row: Row[Any]) -> SourceState:
    m = row._mapping
    return SourceState(
        source_id=m["id"],
        status=PollStatus(m["status"]),
        item_count=m["item_count"],
        key_id=m["key_id"],
        **{name: m[name] for name in _SAVED if name != "status"},
    )


def sync_sources(
    conn: Connection, configured: Sequence[ConfiguredSource], now: datetime
) -> set[str]:
    """New sources get a row, due now; known ones take the config's URL and enabled flag.

    A changed configured URL forgets the redirect learned for the old one. A new id
    with the URL of a source gone from the config is that source renamed: its row and
    versions move to the new id, and its items keep their keys (``key_id``). A source
    gone from the config is marked removed (its items leave the feeds). Returns the
    categories whose feeds that changes.
    """
    rows = conn.execute(
        select(sources.c.id, sources.c.configured_url, sources.c.enabled, sources.c.removed)
    )
    known = {row.id: row for row in rows}
    ids = {s.id for s in configured}
    gone = {sid: row for sid, row in known.items() if sid not in ids and row.configured_url}
    for s in configured:
        old = next((r for r in gone.values() if r.configured_url == s.url), None)
        if s.id not in known and old is not None:
            _rename(conn, old.id, s.id)
            known[s.id] = old
            del gone[old.id]
    new = [
        {"id": s.id, "configured_url": s.url, "enabled": s.enabled, "next_due_at": now}
        for s in configured
        if s.id not in known
    ]
    insert_missing(conn, sources, new, ["id"])
    for s in configured:
        row = known.get(s.id)
        if row is None or (row.configured_url, row.enabled) == (s.url, s.enabled):
            continue
        values: dict[str, Any] = {"configured_url": s.url, "enabled": s.enabled}
        if row.configured_url != s.url:
            values.update(url=None, redirect_url=None, redirect_seen=0)
        conn.execute(update(sources).where(sources.c.id == s.id).values(**values))
    back = sorted(sid for sid in ids if sid in known and known[sid].removed)
    newly_gone = sorted(sid for sid, row in gone.items() if not row.removed)
    touched = _categories_of(conn, [*back, *newly_gone])
    for part in chunks(back):
        conn.execute(update(sources).where(sources.c.id.in_(part)).values(removed=False))
    for part in chunks(newly_gone):
        conn.execute(update(sources).where(sources.c.id.in_(part)).values(removed=True))
    return touched


def _rename(conn: Connection, old: str, new: str) -> None:
    """The source ``old`` is now ``new``: its state, versions and pages move over."""
    row = conn.execute(select(sources).where(sources.c.id == old)).one()._mapping
    values = dict(row)
    values.update(id=new, key_id=row["key_id"] or old, removed=False)
    conn.execute(insert(sources).values(**values))
    for table in metadata.sorted_tables:  # what belongs to it (versions, pages) moves over
        if any(fk.column.table is sources for fk in table.foreign_keys):
            conn.execute(update(table).where(table.c.source_id == old).values(source_id=new))
    conn.execute(delete(sources).where(sources.c.id == old))


def _categories_of(conn: Connection, source_ids: Sequence[str]) -> set[str]:
    """The categories the items of these sources are filed under."""
    found: set[str] = set()
    v, ic = item_versions.c, item_categories.c
    for part in chunks(source_ids):
        found.update(
            conn.execute(
                select(ic.category_id)
                .distinct()
                .select_from(item_categories.join(item_versions, v.item_id == ic.item_id))
                .where(v.source_id.in_(part))
            ).scalars()
        )
    return found


_ADD_VERSIONS: dict[str, Any] = {}  #: dialect name -> statement, built on first use


def add_versions(conn: Connection, source_id: str, count: int) -> None:
    """``count`` more versions on the source's ``item_count``; a bare row for a source the
    config never named. One statement, in place of an insert and a recount per apply."""
    stmt = _ADD_VERSIONS.get(conn.dialect.name)
    if stmt is None:
        stmt = upsert_statement(conn, sources)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"item_count": sources.c.item_count + stmt.excluded.item_count},
        )
        _ADD_VERSIONS[conn.dialect.name] = stmt
    conn.execute(stmt, {"id": source_id, "configured_url": "", "item_count": count})


def ensure_source(conn: Connection, source_id: str) -> None:
    """A bare row for a source the config never named (its versions need one)."""
    insert_missing(conn, sources, [{"id": source_id, "configured_url": ""}], ["id"])


def get_state(conn: Connection, source_id: str) -> SourceState:
    row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if row is None:
        raise KeyError(source_id)
    return to_state(row)


def all_states(conn: Connection) -> list[SourceState]:
    return [to_state(row) for row in conn.execute(select(sources).order_by(sources.c.id))]


def claim_due(
    conn: Connection,
    now: datetime,
    limit: int,
    owner: str,
    lease: timedelta,
    source_ids: Sequence[str] | None,
    ahead: timedelta = timedelta(0),
) -> list[SourceState]:
    """Lease up to ``limit`` sources due by ``now + ahead`` to ``owner``, earliest due first;
    one statement. Leases expire on ``now`` itself: ``ahead`` never shortens another's.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` keeps concurrent claimers off each
    other's rows. SQLite: the caller's ``BEGIN IMMEDIATE`` serializes claimers.
    A source gone from the config (``removed``) is never due; ``source_ids`` narrows
    the claim further (the daemon passes None: an id list of every source, each
    second, cost more than the claim).
    """
    if limit <= 0 or (source_ids is not None and not source_ids):
        return []
    due = and_(
        sources.c.enabled.is_(True),
        sources.c.removed.is_(False),
        sources.c.disabled_reason.is_(None),
        sources.c.next_due_at <= now + ahead,
        or_(sources.c.lease_owner.is_(None), sources.c.lease_expires_at <= now),
    )
    if source_ids is not None:
        if len(source_ids) > 2000:  # keep the IN list bounded; the rest waits a tick
            source_ids = list(source_ids)[:2000]
        due = and_(due, sources.c.id.in_(list(source_ids)))
    picked = (
        select(sources.c.id)
        .where(due)
        .order_by(sources.c.next_due_at, sources.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(sources)
        .where(sources.c.id.in_(picked.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .returning(*sources.c)
    )
    states = [to_state(row) for row in conn.execute(stmt)]
    return sorted(states, key=lambda s: (s.next_due_at or now, s.source_id))


def renew_leases(
    conn: Connection, owner: str, source_ids: Sequence[str], until: datetime
) -> set[str]:
    """Push ``owner``'s leases on ``source_ids`` out to ``until``; the ids it still held."""
    held: set[str] = set()
    for part in chunks(sorted(set(source_ids))):
        stmt = (
            update(sources)
            .where(sources.c.id.in_(part), sources.c.lease_owner == owner)
            .values(lease_expires_at=until)
            .returning(sources.c.id)
        )
        held.update(conn.execute(stmt).scalars())
    return held


def save_state(conn: Connection, state: SourceState, release_lease_of: str | None) -> None:
    """Write a poll's outcome; drop the lease only if ``release_lease_of`` still holds it."""
    values: dict[str, Any] = {name: getattr(state, name) for name in _SAVED}
    values["status"] = PollStatus(state.status).value
    if release_lease_of is not None:
        held = sources.c.lease_owner == release_lease_of
        values["lease_owner"] = case((held, None), else_=sources.c.lease_owner)
        values["lease_expires_at"] = case((held, None), else_=sources.c.lease_expires_at)
    done = conn.execute(update(sources).where(sources.c.id == state.source_id).values(**values))
    if done.rowcount == 0:
        ensure_source(conn, state.source_id)
        conn.execute(update(sources).where(sources.c.id == state.source_id).values(**values))


def save_states(
    conn: Connection, states: Sequence[SourceState], release_lease_of: str | None
) -> None:
    """``save_state`` of many, as one executemany UPDATE (one statement compiled, not one
    per source); rows missing from the table are then made and saved one by one."""
    if not states:
        return
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in _SAVED}
    if release_lease_of is not None:
        held = sources.c.lease_owner == release_lease_of
        values["lease_owner"] = case((held, None), else_=sources.c.lease_owner)
        values["lease_expires_at"] = case((held, None), else_=sources.c.lease_expires_at)
    stmt = update(sources).where(sources.c.id == bindparam("v_id")).values(**values)
    rows = []
    for state in states:
        row = {f"v_{name}": getattr(state, name) for name in _SAVED}
        row["v_status"] = PollStatus(state.status).value
        row["v_id"] = state.source_id
        rows.append(row)
    done = conn.execute(stmt, rows)
    if done.rowcount != len(states):  # some source has no row yet (or the driver cannot say)
        for state in states:
            save_state(conn, state, release_lease_of)


def recount_items(conn: Connection, source_ids: Sequence[str]) -> None:
    """item_count = how many versions each source carries now."""
    counted = (
        select(func.count())
        .select_from(item_versions)
        .where(item_versions.c.source_id == sources.c.id)
        .scalar_subquery()
    )
    for part in chunks(sorted(set(source_ids))):
        conn.execute(update(sources).where(sources.c.id.in_(part)).values(item_count=counted))
