"""Which files to rewrite after a change, and rewriting them.

Only the categories that changed are rendered again; ``all.atom`` when any
did; ``index.html`` and ``index.opml`` every time (cheap, and replaced only
when their bytes differ). Every file is replaced atomically with a gzip
twin for the HTTP server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aggregator.config import Config
from aggregator.model import Category
from aggregator.posts import write_posts
from aggregator.store import Store
from aggregator.write import (
    ALL_FEED,
    CategorySummary,
    feed_meta,
    render_atom,
    render_index,
    render_opml,
    replace_with_gzip,
)

log = logging.getLogger("aggregator.outputs")

#: the feed ``updated`` of a category with no entries yet: fixed, so the file is stable
EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int = 0
    unchanged: int = 0
    seconds: float = 0.0


def write_outputs(config: Config, store: Store, changed: Iterable[str] | None) -> WriteResult:
    """Rewrite the feeds of ``changed`` categories (None: every output)."""
    started = time.monotonic()
    settings = config.aggregator
    out = settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    infos = store.categories()
    categories = {c.id: Category(c.id, c.title, c.description) for c in infos}
    wanted = set(categories) if changed is None else set(changed) & set(categories)
    wanted |= {cid for cid in categories if not (out / f"{cid}.atom").exists()}
    all_missing = not (out / f"{ALL_FEED}.atom").exists()
    written = unchanged = 0

    def put(name: str, data: bytes) -> None:
        nonlocal written, unchanged
        if replace_with_gzip(out / name, data):
            written += 1
        else:
            unchanged += 1

    limit = settings.entries_per_feed
    for cid in sorted(wanted):
        entries = store.entries(cid, limit)
        meta = feed_meta(categories[cid], settings, EMPTY_FEED_UPDATED)
        put(f"{cid}.atom", render_atom(meta, entries, categories, settings))
    if wanted or all_missing or changed is None:
        entries = store.entries(None, limit)
        put(f"{ALL_FEED}.atom", render_atom(feed_meta(None, settings, EMPTY_FEED_UPDATED),
                                           entries, categories, settings))
    rows = [CategorySummary(c.id, c.title, c.description, c.entry_count, c.updated) for c in infos]
    put("index.html", render_index(rows, settings))
    put("index.opml", render_opml(rows, settings))
    if config.posts is not None and (wanted or changed is None):
        posted = []
        for cid in sorted(wanted):
            posted.extend(store.entries(cid, limit if changed is not None else None))
        result = write_posts(config.posts.dir, _unique(posted), categories, config.posts.site_url,
                             settings.tz, config.posts.archive_after, datetime.now(UTC))
        written += result.written
        unchanged += result.unchanged
    seconds = time.monotonic() - started
    if written:
        log.info("write files=%d unchanged=%d duration=%.3f", written, unchanged, seconds)
    return WriteResult(written, unchanged, seconds)


def _unique(entries: list) -> list:  # type: ignore[type-arg]
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out
