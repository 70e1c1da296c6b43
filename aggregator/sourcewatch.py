"""Source health as events: which condition a source is in, and which change is news (pure).

    SourceState (+ when its items arrived) ──condition()──▶ ok | failing | disabled | silent
    previous condition, current one ──change()──▶ a HealthEvent, or None when nothing changed

An event is made when the condition changes, never per poll: a source that
fails ten times in a row is one "failing" entry, its first good poll one
"recovered". Silence is a source polled fine that brought no new item for
``SILENCE_FACTOR`` times its usual gap between arrivals (rawdog's wish, lemon24
#68): a feed that died without an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from aggregator.model import Condition, HealthEvent, SourceHealth, SourceState

#: silent after this many usual gaps without a new item
SILENCE_FACTOR = 3
#: arrivals (polls that brought new items) needed before a usual gap exists
MIN_ARRIVALS = 4
#: the newest arrivals the usual gap is the mean of
ARRIVALS_KEPT = 10


def usual_gap(arrivals: Sequence[datetime]) -> timedelta | None:
    """Mean time between the distinct arrival times given (any order); None with too few."""
    if len(arrivals) < MIN_ARRIVALS:
        return None
    newest, oldest = max(arrivals), min(arrivals)
    gap = (newest - oldest) / (len(arrivals) - 1)
    return gap if gap > timedelta(0) else None


def condition(state: SourceState, arrivals: Sequence[datetime], now: datetime) -> Condition:
    """The source's condition after the poll that left ``state``: its health
    (``SourceState.health``), or silent when that is ok but nothing new came for long."""
    health = state.health()
    if health == SourceHealth.DISABLED:
        return Condition.DISABLED
    if health == SourceHealth.FAILING:
        return Condition.FAILING
    gap = usual_gap(arrivals)
    if gap is not None and now - max(arrivals) > SILENCE_FACTOR * gap:
        return Condition.SILENT
    return Condition.OK


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds}s"


def change(
    previous: Condition,
    current: Condition,
    state: SourceState,
    arrivals: Sequence[datetime],
    now: datetime,
) -> HealthEvent | None:
    """The event of going from ``previous`` to ``current``; None when they are the same."""
    if current == previous:
        return None
    source = state.source_id
    if current == Condition.FAILING:
        return HealthEvent(source, "failing", now, state.problem() or "error")
    if current == Condition.DISABLED:
        return HealthEvent(source, "disabled", now, state.problem() or "disabled")
    if current == Condition.SILENT:
        gap = usual_gap(arrivals)
        quiet = now - max(arrivals)
        usual = f" (usually one every {_span(gap)})" if gap else ""
        return HealthEvent(source, "silent", now, f"no new item for {_span(quiet)}{usual}")
    return HealthEvent(source, "recovered", now, f"ok again after being {previous.value}")
