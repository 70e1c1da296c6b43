"""``status.html`` and ``GET /status``: the store read into rows for write/status.py.

The file is written with the other outputs; the server renders the same page
live at ``/status`` (last success and next poll move with every poll, which
rewrites no file).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from aggregator.config import Config
from aggregator.model import SourceState
from aggregator.write.status import CHART_DAYS, DailyCounts, StatusRow, render_status

if TYPE_CHECKING:
    from aggregator.store import Store


def status_rows(config: Config, store: Store) -> list[StatusRow]:
    """One row per configured source, in config order."""
    states = {s.source_id: s for s in store.states()}
    conditions = store.conditions()
    rows = []
    for source in config.sources:
        state = states.get(source.id) or SourceState(source.id)
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


def daily_charts(config: Config, store: Store, now: datetime) -> list[DailyCounts]:
    """New items per day of each category over the last CHART_DAYS days (in the zone)."""
    offset = int((now.astimezone(config.aggregator.tz).utcoffset() or timedelta()).total_seconds())
    today = (int(now.timestamp()) + offset) // 86400
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
    now = now or datetime.now(UTC)
    charts = daily_charts(config, store, now)
    return render_status(status_rows(config, store), charts, config.aggregator, now)
