"""``status.html`` and ``GET /status``: the store read into rows for write/status.py.

The file is rendered from stored state alone: "as of" is the newest poll
stored and the charts end on that day, so every instance reading one store
writes the same bytes, and the same bytes again while nothing changed. Every
saved poll bumps the change counter (``status``), so every instance rewrites
it. The server renders the same page live at ``/status``, as of the moment
it is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from aggregator.config import Config
from aggregator.model import SourceState
from aggregator.write.status import CHART_DAYS, DailyCounts, StatusRow, render_status

if TYPE_CHECKING:
    from aggregator.store import Store


def configured_states(config: Config, store: Store) -> list[SourceState]:
    """The stored state of each configured source, in config order (never polled: empty)."""
    states = {s.source_id: s for s in store.states()}
    return [states.get(s.id) or SourceState(s.id) for s in config.sources]


def newest_poll(states: Sequence[SourceState]) -> datetime | None:
    """The moment the page is as of: the newest stored poll (None: none yet)."""
    return max((s.last_poll_at for s in states if s.last_poll_at is not None), default=None)


def status_rows(config: Config, store: Store, states: Sequence[SourceState]) -> list[StatusRow]:
    """One row per configured source (``states``, in config order)."""
    conditions = store.conditions()
    rows = []
    for source, state in zip(config.sources, states, strict=True):
        health, event = conditions.get(source.id, ("ok", None))
        if not source.enabled:
            health = "off"
        shown = event if event is not None and health != "ok" else None
        rows.append(
            StatusRow(
                id=source.id,
                health=health,
                since=event.at if event is not None and health != "off" else None,
                problem=shown.message if shown is not None else None,
                last_success=state.last_success_at,
                consecutive_errors=state.consecutive_failures,
                next_poll=None if health in ("off", "disabled") else state.next_due_at,
                items=state.item_count,
            )
        )
    return rows


def daily_charts(config: Config, store: Store, as_of: datetime) -> list[DailyCounts]:
    """New items per day of each category over the CHART_DAYS days (in the zone) that end
    on the day of ``as_of``."""
    zone_offset = as_of.astimezone(config.aggregator.tz).utcoffset() or timedelta()
    offset = int(zone_offset.total_seconds())
    today = (int(as_of.timestamp()) + offset) // 86400
    first = today - CHART_DAYS + 1
    since = datetime.fromtimestamp(first * 86400 - offset, UTC)
    counts = store.daily_new_items(since, offset)
    epoch = date(1970, 1, 1)
    return [
        DailyCounts(
            c.id,
            c.title,
            tuple(counts.get((c.id, day), 0) for day in range(first, today + 1)),
            epoch + timedelta(days=today),
        )
        for c in store.categories()
    ]


def status_page(config: Config, store: Store, now: datetime | None = None) -> bytes:
    """The page as of the newest stored poll (the file: no clock, no instance in it);
    ``now``: as of that moment instead (the live ``/status``)."""
    states = configured_states(config, store)
    rows = status_rows(config, store, states)
    as_of = now or newest_poll(states)
    charts = daily_charts(config, store, as_of) if as_of is not None else []
    return render_status(rows, charts, config.aggregator, as_of)
