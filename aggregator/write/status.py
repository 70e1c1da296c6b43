"""Source rows and new-item counts -> ``status.html``: every source's health, at a glance.

A table of sources (condition and since when, the last reported problem,
last success, consecutive errors, next poll, items) and a small inline SVG
bar chart per category of the new items of each of the last 30 days:
pictures where people would rather look than read. Same page rules as the
feed pages: no script, a strict CSP, light and dark, a viewport.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from aggregator.config import AggregatorSettings
from aggregator.write.atom import in_zone
from aggregator.write.page import FEED_TYPES, FORMAT_NAMES, e, head

CHART_DAYS = 30
_BAR, _GAP, _HEIGHT = 8, 2, 48


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One source as the status page shows it."""

    id: str
    health: str  #: ok | failing | disabled | silent | off (disabled in the config)
    since: datetime | None  #: when the health feed reported that condition
    problem: str | None  #: the reported message (error kind and message, 410, silence)
    last_success: datetime | None
    consecutive_errors: int
    next_poll: datetime | None
    items: int


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """New items of one category per day, oldest first, ending on ``last_day``."""

    category_id: str
    title: str
    counts: tuple[int, ...]
    last_day: date


def _when(moment: datetime | None, settings: AggregatorSettings) -> str:
    if moment is None:
        return "—"
    local = in_zone(moment, settings.tz)
    return f'<time datetime="{local.isoformat()}">{local:%Y-%m-%d %H:%M}</time>'


def chart(daily: DailyCounts) -> str:
    """An inline SVG bar chart, one bar a day, each with its date and count as its title."""
    top = max(daily.counts, default=0) or 1
    width = len(daily.counts) * (_BAR + _GAP)
    total = sum(daily.counts)
    label = f"{e(daily.title)}: {total} new items in {len(daily.counts)} days"
    bars = []
    first = daily.last_day.toordinal() - len(daily.counts) + 1
    for n, count in enumerate(daily.counts):
        height = round(count * _HEIGHT / top) if count else 0
        day = date.fromordinal(first + n)
        bars.append(
            f'<rect x="{n * (_BAR + _GAP)}" y="{_HEIGHT - height}" width="{_BAR}"'
            f' height="{max(height, 1) if count else 0}"><title>{day} {count}</title></rect>'
        )
    return (
        f'<svg role="img" aria-label="{label}" width="{width}" height="{_HEIGHT}"'
        f' viewBox="0 0 {width} {_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{label}</title>{''.join(bars)}</svg>"
    )


def render_status(
    rows: Sequence[StatusRow],
    charts: Sequence[DailyCounts],
    settings: AggregatorSettings,
    as_of: datetime | None,
) -> bytes:
    """The whole page; ``as_of``: the moment it shows the sources at (None: never polled)."""
    formats = settings.formats
    title = f"{e(settings.title)}: status"
    links = [
        f'<link rel="alternate" type="{FEED_TYPES[f]}" title="{e(settings.title)}: source'
        f' health ({FORMAT_NAMES[f]})" href="health.{f}">'
        for f in formats
    ]
    health_feeds = " · ".join(f'<a href="health.{f}">{FORMAT_NAMES[f]}</a>' for f in formats)
    counts = {h: sum(1 for r in rows if r.health == h) for h in ("failing", "silent", "disabled")}
    summary = ", ".join(f"{n} {h}" for h, n in counts.items() if n) or "all well"
    when = f"as of {_when(as_of, settings)}" if as_of is not None else "no poll yet"
    lines = head(title, settings, links)
    lines += [
        "<header>",
        f"<h1>{title}</h1>",
        f'<p class="d">{len(rows)} sources: {e(summary)} · {when}</p>',
        f'<nav><a href="./">{e(settings.title)}</a> · source health feed: {health_feeds}</nav>',
        "</header>",
        "<main>",
        "<h2>Sources</h2>",
        "<table>",
        "<thead><tr><th>Source</th><th>Health</th><th>Last success</th><th>Errors</th>"
        "<th>Next poll</th><th>Items</th></tr></thead>",
        "<tbody>",
    ]
    for row in rows:
        since = f'<div class="d">since {_when(row.since, settings)}</div>' if row.since else ""
        problem = f'<div class="d">{e(row.problem)}</div>' if row.problem else ""
        lines.append(
            f'<tr id="source-{e(row.id)}"><td>{e(row.id)}</td>'
            f'<td><span class="{e(row.health)}">{e(row.health)}</span>{since}{problem}</td>'
            f"<td>{_when(row.last_success, settings)}</td>"
            f'<td class="n">{int(row.consecutive_errors)}</td>'
            f"<td>{_when(row.next_poll, settings)}</td>"
            f'<td class="n">{int(row.items)}</td></tr>'
        )
    lines += ["</tbody>", "</table>", f"<h2>New items per day, last {CHART_DAYS} days</h2>"]
    for daily in charts:
        lines += [
            f'<section id="chart-{e(daily.category_id)}">',
            f'<h3><a href="{e(daily.category_id)}.html">{e(daily.title)}</a>'
            f' <span class="d">{sum(daily.counts)}</span></h3>',
            chart(daily),
            "</section>",
        ]
    lines += ["</main>", "</body>", "</html>", ""]
    return "\n".join(lines).encode("utf-8")
