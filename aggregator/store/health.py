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

from sqlalchemy import Connection, Integer, cast, func, insert, select, update

from aggregator.model import Condition, HealthEvent, PollStatus, SourceState
from aggregator.sourcewatch import ARRIVALS_KEPT, change, condition
from aggregator.store import categories as cats
from aggregator.store.bulk import chunks
from aggregator.store.feeds import CARRIED
from aggregator.store.schema import item_categories, item_versions, items, source_events, sources

#: the change-counter id under which health changes are announced (a reserved category id)
HEALTH = "health"
#: the change-counter id under which every saved poll outcome is announced (status.html)
STATUS = "status"


def arrivals(conn: Connection, source_ids: Sequence[str]) -> dict[str, list[datetime]]:
    """The newest ``ARRIVALS_KEPT`` distinct times each source's new items were first seen."""
    found: dict[str, list[datetime]] = defaultdict(list)
    v = item_versions.c
    for part in chunks(list(source_ids)):
        times = (
            select(v.source_id, v.first_seen)
            .where(v.source_id.in_(part))
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
        for row in conn.execute(
            select(ranked.c.source_id, ranked.c.first_seen).where(ranked.c.n <= ARRIVALS_KEPT)
        ):
            found[row.source_id].append(row.first_seen)
    return found


def record_changes(conn: Connection, states: Sequence[SourceState]) -> list[HealthEvent]:
    """Write an event for each source whose condition changed with ``states``, and announce
    the saved states (and the events, if any) on the change counter; the events."""
    ids = [s.source_id for s in states]
    previous: dict[str, str] = {}
    for part in chunks(ids):
        for row in conn.execute(
            select(sources.c.id, sources.c.health).where(sources.c.id.in_(part))
        ):
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


def daily_counts(conn: Connection, since: datetime, offset: int) -> dict[tuple[str, int], int]:
    """Items first seen after ``since`` per (category id, day): the day is the number of days
    since 1970-01-01 in the zone ``offset`` seconds east of UTC; those of removed sources
    only are left out, as the feeds leave them. Counted in the database."""
    ic = item_categories.c
    seen = items.c.first_seen
    if conn.dialect.name == "sqlite":
        seconds = (func.julianday(seen) - 2440587.5) * 86400
    else:
        seconds = func.extract("epoch", seen)
    days = (seconds + offset) / 86400
    # SQLite's cast truncates (floor, for times after 1970); PostgreSQL's would round
    day = cast(days if conn.dialect.name == "sqlite" else func.floor(days), Integer)
    rows = conn.execute(
        select(ic.category_id, day.label("day"), func.count().label("n"))
        .select_from(item_categories.join(items, items.c.id == ic.item_id))
        .where(seen > since, CARRIED)
        .group_by(ic.category_id, day)
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
