"""Health events: each saved poll's condition compared with the last one reported.

Runs in the transaction that saves the polls' states, so an event is written
once, by the instance that polled (it holds the source's lease), and every
instance then reads the same rows. Every saved poll bumps the change counter
under the reserved id ``status`` (the status page shows each source's last
and next poll), and a change of condition under ``health`` too: every
instance then rewrites the status page, and the health feeds when needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, Integer, Select, bindparam, cast, func, insert, select, update

from aggregator.model import Condition, HealthEvent, PollStatus, SourceState
from aggregator.sourcewatch import ARRIVALS_KEPT, change, condition
from aggregator.store import categories as cats
from aggregator.store.bulk import chunks
from aggregator.store.feeds import carried
from aggregator.store.schema import item_categories, item_versions, items, source_events, sources

#: the change-counter id under which health changes are announced (a reserved category id)
HEALTH = "health"
#: the change-counter id under which every saved poll outcome is announced (status.html)
STATUS = "status"


def _arrivals_statement() -> Select[tuple[str, datetime]]:
    """Each source's newest ``ARRIVALS_KEPT`` distinct first_seen times, for ``ids``."""
    v = item_versions.c
    times = (
        select(v.source_id, v.first_seen)
        .where(v.source_id.in_(bindparam("ids", expanding=True)))
        .group_by(v.source_id, v.first_seen)
        .subquery()
    )
    ranked = select(
        times.c.source_id,
        times.c.first_seen,
        func.row_number()
        .over(partition_by=times.c.source_id, order_by=times.c.first_seen.desc())
        .label("n"),
    ).subquery()
    return select(ranked.c.source_id, ranked.c.first_seen).where(ranked.c.n <= ARRIVALS_KEPT)


#: built once: made anew for every batch of saved states, building it and its cache key
#: was most of ``save_states``' CPU (issue 19)
_ARRIVALS = _arrivals_statement()
_HEALTH = select(sources.c.id, sources.c.health).where(
    sources.c.id.in_(bindparam("ids", expanding=True))
)


def arrivals(conn: Connection, source_ids: Sequence[str]) -> dict[str, list[datetime]]:
    """The newest ``ARRIVALS_KEPT`` distinct times each source's new items were first seen."""
    found: dict[str, list[datetime]] = defaultdict(list)
    for part in chunks(list(source_ids)):
        for row in conn.execute(_ARRIVALS, {"ids": list(part)}):
            found[row.source_id].append(row.first_seen)
    return found


def record_changes(conn: Connection, states: Sequence[SourceState]) -> list[HealthEvent]:
    """Write an event for each source whose condition changed with ``states``, and announce
    the saved states (and the events, if any) on the change counter; the events."""
    ids = [s.source_id for s in states]
    previous: dict[str, str] = {}
    for part in chunks(ids):
        for row in conn.execute(_HEALTH, {"ids": list(part)}):
            previous[row.id] = row.health
    polled_fine = [
        s.source_id
        for s in states
        if s.status in (PollStatus.OK, PollStatus.UNCHANGED) and not s.disabled_reason
    ]
    times = arrivals(conn, polled_fine) if polled_fine else {}
    events: list[HealthEvent] = []
    for state in states:
        now = state.last_poll_at or datetime.now(UTC)
        mine = times.get(state.source_id, [])
        current = condition(state, mine, now)
        before = Condition(previous.get(state.source_id, Condition.OK))
        event = change(before, current, state, mine, now)
        if event is None:
            continue
        events.append(event)
        conn.execute(
            update(sources).where(sources.c.id == state.source_id).values(health=current.value)
        )
    if events:
        conn.execute(
            insert(source_events),
            [
                {"source_id": e.source_id, "kind": e.kind, "at": e.at, "message": e.message}
                for e in events
            ],
        )
    if states:  # one bump per transaction: both ids stamped with the same value
        cats.bump(conn, [STATUS, HEALTH] if events else [STATUS])
    return events


def recent_events(conn: Connection, limit: int) -> list[HealthEvent]:
    """The newest ``limit`` events, newest first (ties by id, so every instance agrees)."""
    e = source_events.c
    rows = conn.execute(select(source_events).order_by(e.at.desc(), e.id.desc()).limit(limit))
    return [HealthEvent(r.source_id, r.kind, r.at, r.message) for r in rows]


_mine = item_versions.alias("mine")
#: the items the feeds leave out: each version of a removed source, none of a configured one
#: (uncorrelated, so run once; it reads the removed sources' versions only, by their key)
_UNCARRIED = select(_mine.c.item_id).where(
    _mine.c.source_id.in_(select(sources.c.id).where(sources.c.removed)),
    ~carried(_mine.c.item_id),
)


def daily_counts(conn: Connection, since: datetime, offset: int) -> dict[tuple[str, int], int]:
    """Items first seen after ``since`` per (category id, day): the day is the number of days
    since 1970-01-01 in the zone ``offset`` seconds east of UTC; those of removed sources
    only are left out, as the feeds leave them. Counted in the database.

    The items are found by their first_seen index and their categories by their key, so no
    item row is read (issue 19: reading each item's row, and its versions for ``CARRIED``,
    took 5-12 s at 10,000 sources); SQLite is told to take the items first.
    """
    seen = items.c.first_seen
    if conn.dialect.name == "sqlite":
        # whole seconds of the stored text (its first 19 characters), in integers: julianday's
        # float put an item first seen at local midnight on the day before
        seconds = cast(func.strftime("%s", func.substr(seen, 1, 19)), Integer)
        day = (seconds + offset) // 86400  # integer division: floor, for times after 1970
    else:
        day = cast(func.floor((func.extract("epoch", seen) + offset) / 86400), Integer)
    fresh = (
        select(items.c.id, day.label("day"))
        .where(seen > since, items.c.id.not_in(_UNCARRIED))
        .cte("fresh")
        .prefix_with("MATERIALIZED", dialect="sqlite")
    )
    ic = item_categories.c
    rows = conn.execute(
        select(ic.category_id, fresh.c.day, func.count().label("n"))
        .select_from(fresh.join(item_categories, ic.item_id == fresh.c.id))
        .group_by(ic.category_id, fresh.c.day)
    )
    return {(row.category_id, int(row.day)): int(row.n) for row in rows}


def conditions(conn: Connection) -> dict[str, tuple[str, HealthEvent | None]]:
    """Each source's last reported condition, and the event that reported it (None: never)."""
    e = source_events.c
    newest = select(e.source_id, func.max(e.id).label("id")).group_by(e.source_id).subquery()
    last = {
        row.source_id: HealthEvent(row.source_id, row.kind, row.at, row.message)
        for row in conn.execute(
            select(source_events).join(newest, newest.c.id == source_events.c.id)
        )
    }
    return {
        row.id: (row.health, last.get(row.id))
        for row in conn.execute(select(sources.c.id, sources.c.health))
    }
