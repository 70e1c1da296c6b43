"""``GET /healthz``: is the database answering, and how is each source doing.

200 while the database answers, whatever the sources do (a failing source is
the source's problem, not the daemon's); 503 when it does not, when there is
no store, or when the daemon says it is not healthy. Blocking: run it off the
event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aggregator import metrics
from aggregator.config import Config
from aggregator.model import SourceHealth, SourceState

if TYPE_CHECKING:
    from aggregator.store import Store

log = logging.getLogger("aggregator.serve")

StoreProvider = Callable[[], "Store | None"]
HealthProvider = Callable[[], bool]
ConfigProvider = Callable[[], Config]


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def source_health(config: Config, states: Sequence[SourceState]) -> list[dict[str, Any]]:
    """One row per configured source, in config order: ok, failing or disabled."""
    by_id = {s.source_id: s for s in states}
    rows = []
    for source in config.sources:
        state = by_id.get(source.id) or SourceState(source.id)
        health = state.health(enabled=source.enabled)
        row: dict[str, Any] = {
            "id": source.id,
            "health": health.value,
            "last_success": _when(state.last_success_at),
            "consecutive_errors": state.consecutive_failures,
            "next_poll": None if health == SourceHealth.DISABLED else _when(state.next_due_at),
        }
        problem = state.problem()
        if problem and (health == SourceHealth.FAILING or state.disabled_reason):
            row["error"] = problem
        rows.append(row)
    return rows


def check_health(
    config: Config, store_provider: StoreProvider, health_provider: HealthProvider
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON document) of /healthz."""
    try:
        store = store_provider()
        if store is None:
            raise LookupError("the database is not open")
        store.ping()
        states = store.states()
    except Exception as exc:  # any way the database fails is a 503, with its reason
        if not isinstance(exc, LookupError):
            metrics.record_database_error("health")
        log.warning("health: database does not answer: %s", exc)
        return 503, {
            "status": "unavailable",
            "database": "unavailable",
            "error": str(exc),
            "sources": [],
        }
    sources = source_health(config, states)
    if not health_provider():
        return 503, {"status": "unavailable", "database": "ok", "sources": sources}
    failing = any(s["health"] == SourceHealth.FAILING for s in sources)
    return 200, {"status": "degraded" if failing else "ok", "database": "ok", "sources": sources}
