"""``aggregator sources``: what every source is doing, as a table."""

from __future__ import annotations

import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from aggregator.config import Config
from aggregator.errors import SchemaMismatch
from aggregator.model import SourceHealth, SourceState


def _when(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def source_rows(config: Config, states: dict[str, SourceState]) -> list[tuple[str, ...]]:
    """One row per configured source: the columns of the contract (and its title), as text."""
    tz = config.aggregator.tz
    rows: list[tuple[str, ...]] = []
    for source in config.sources:
        state = states.get(source.id) or SourceState(source.id)
        cats = ",".join(source.categories) + (" +author" if source.category_from else "")
        disabled = state.health(enabled=source.enabled) == SourceHealth.DISABLED
        status = state.status.value
        if disabled:
            status = "disabled" if source.enabled else "disabled (config)"
        error = state.problem() or ""
        if state.error_kind and not state.disabled_reason and state.consecutive_failures > 1:
            error += f" (x{state.consecutive_failures})"
        next_poll = "-" if disabled else _when(state.next_due_at, tz)
        rows.append(
            (
                source.id,
                source.title or "",
                cats,
                _when(state.last_poll_at, tz),
                status,
                error,
                str(state.item_count),
                next_poll,
            )
        )
    return rows


def print_sources_table(config: Config, console: Console | None = None) -> None:
    """Reads only: the database is neither created nor migrated nor written.

    No database yet: every source as never polled, and a note on stderr. A schema
    not this version's raises SchemaMismatch (``poll`` or ``run`` upgrades it).
    """
    from aggregator.store import Store

    try:
        store = Store.open_readonly(config.aggregator.database)
    except SchemaMismatch as exc:
        if exc.found is not None:
            raise
        print(f"note: {exc}", file=sys.stderr)
        states: dict[str, SourceState] = {}
    else:
        try:
            states = {s.source_id: s for s in store.states()}
        finally:
            store.close()
    # Text cells, never markup: a stored error or a title may hold "[/x]" (issue 13)
    table = Table(title=Text(f"sources ({config.path})"), expand=False)
    for name in ("id", "title", "categories", "last poll", "status", "error", "items", "next poll"):
        table.add_column(name, overflow="fold")
    for row in source_rows(config, states):
        failing = row[4] in ("failed", "disabled")
        table.add_row(*(Text(cell) for cell in row), style="red" if failing else None)
    (console or Console(width=200 if not _tty() else None)).print(table)


def _tty() -> bool:
    return sys.stdout.isatty()
