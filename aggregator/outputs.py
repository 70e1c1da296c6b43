"""Which files to rewrite after a change, and rewriting them.

Only the categories that changed are rendered again; ``all.*`` when any
did; ``index.html`` and ``index.opml`` every time (cheap, and replaced only
when their bytes differ). A feed is read once and written in every format of
``[aggregator] formats`` plus its HTML page, all from that one read
(write/snapshot.py). ``health.*`` when a source's condition changed (the
reserved id ``health`` in ``changed``), ``status.html`` every time. Every
file is replaced atomically with a gzip twin for the HTTP server.
Each file is rendered on its own: one that cannot be (an entry that breaks
the renderer) is an error naming it, and every other file is still written;
the caller then knows the outputs are not complete (``WriteResult.failed``).
Each feed is read from the store, rendered and replaced under its own
lock (``Store.output_lock``), so instances sharing one output folder never
put an older rendering over a newer one (docs/scaling.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from aggregator import metrics
from aggregator.config import Config
from aggregator.config.schema import RESERVED_CATEGORY_IDS
from aggregator.errors import StoreError
from aggregator.model import Category
from aggregator.statuspage import status_page
from aggregator.store import Store
from aggregator.write import (
    ALL_FEED,
    feed_meta,
    render_index,
    render_opml,
    replace_with_gzip,
)
from aggregator.write.health import HEALTH_FEED, STATUS_PAGE, health_snapshot
from aggregator.write.page import render_page
from aggregator.write.snapshot import Snapshot, renderers, take_snapshot

log = logging.getLogger("aggregator.outputs")

#: the feed ``updated`` of a category with no entries yet: fixed, so the file is stable
EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    failed: tuple[str, ...] = ()  #: "<file>: <why>" of each file that could not be written


def write_outputs(
    config: Config, store: Store, changed: Iterable[str] | None, *, since: int | None = None
) -> WriteResult:
    """Rewrite the feeds of ``changed`` categories (None: every output).

    ``since``: the store's change counter the outputs were last complete at; the
    Jekyll posts of exactly the items changed after it are rewritten (None, or
    ``changed`` None: every post).
    """
    started = time.monotonic()
    settings = config.aggregator
    out = settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    infos = store.categories()
    categories = {c.id: Category(c.id, c.title, c.description) for c in infos}
    formats = settings.formats
    render_format = renderers()

    def files_of(stem: str) -> list[str]:
        return [*(f"{stem}.{f}" for f in formats), f"{stem}.html"]

    def missing(stem: str) -> bool:
        return not all((out / name).exists() for name in files_of(stem))

    changed = None if changed is None else set(changed)
    wanted = set(categories) if changed is None else changed & set(categories)
    wanted |= {cid for cid in categories if missing(cid)}
    all_missing = missing(ALL_FEED)
    written = unchanged = 0
    changed_feeds: list[str] = []
    failed: list[str] = []

    def put(name: str, render: Callable[[], bytes]) -> None:
        """Render and replace one file; one that cannot be rendered is named, the rest go on."""
        nonlocal written, unchanged
        try:
            data = render()
        except (StoreError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - this file only; the others are written
            failed.append(_failure(name, exc))
            return
        if replace_with_gzip(out / name, data):
            written += 1
            if not name.endswith(".html"):
                changed_feeds.append(settings.base_url + name)
        else:
            unchanged += 1

    limit = settings.entries_per_feed

    def put_feed(stem: str, read: Callable[[], Snapshot]) -> None:
        """Every format of one feed from one read, under the feed's one lock: never older
        over newer, and never one format ahead of another."""
        with store.output_lock(f"{stem}.atom"):
            snapshot = read()
            for fmt in formats:
                put(f"{stem}.{fmt}", partial(render_format[fmt], snapshot, settings))
            put(f"{stem}.html", partial(render_page, snapshot, settings, formats))

    def category_feed(category: Category | None) -> Callable[[], Snapshot]:
        def read() -> Snapshot:
            return take_snapshot(
                feed_meta(category, settings, EMPTY_FEED_UPDATED),
                store.entries(category.id if category else None, limit),
                categories,
                settings.base_url,
            )

        return read

    def health_feed() -> Snapshot:
        return health_snapshot(store.health_events(limit), settings, EMPTY_FEED_UPDATED)

    for cid in sorted(wanted):
        put_feed(cid, category_feed(categories[cid]))
    if changed is None or changed - {HEALTH_FEED} or all_missing:  # a deleted category too
        put_feed(ALL_FEED, category_feed(None))
    if changed is None or HEALTH_FEED in changed or missing(HEALTH_FEED):
        put_feed(HEALTH_FEED, health_feed)
    # every time: it shows each source's last poll and next one, which no counter tracks
    with store.output_lock(STATUS_PAGE):
        put(STATUS_PAGE, partial(status_page, config, store))
    # both indexes from one read of the counts (kept on the categories rows), the
    # two locks held together, in this order everywhere, so neither goes back in time
    with store.output_lock("index.html"), store.output_lock("index.opml"):
        rows = store.categories()
        for name, render_index_file in (("index.html", render_index), ("index.opml", render_opml)):
            try:
                data = render_index_file(rows, settings)
            except Exception as exc:  # noqa: BLE001 - this file only; the others are written
                failed.append(_failure(name, exc))
                continue
            if replace_with_gzip(out / name, data):
                written += 1
            else:
                unchanged += 1
    removed = _remove_stale(out, set(categories))
    if config.posts is not None:  # every time: archiving is due even when nothing changed
        from aggregator.posts import write_posts  # only sites with posts pay for its imports

        with store.output_lock("posts/"):
            posted = (
                store.entries(None, None)
                if changed is None or since is None
                else store.changed_entries(since)
            )
            result = write_posts(
                config.posts.dir,
                posted,
                categories,
                config.posts.site_url,
                settings.tz,
                config.posts.archive_after,
                datetime.now(UTC),
            )
        written += result.written
        unchanged += result.unchanged
        for name, why in result.failed:
            log.error("write %s failed: %s", config.posts.dir / name, why)
            failed.append(f"{config.posts.dir / name}: {why}")
    seconds = time.monotonic() - started
    if written or removed:
        log.info(
            "write files=%d unchanged=%d removed=%d duration=%.3f",
            written,
            unchanged,
            removed,
            seconds,
        )
    metrics.observe_write(seconds)
    if settings.websub_hub and changed_feeds:
        from aggregator.websub import ping_hub

        ping_hub(settings.websub_hub, changed_feeds)
    return WriteResult(written, unchanged, seconds, tuple(failed))


_FEED_FILE = re.compile(r"([a-z0-9_-]+)\.(?:atom|rss|json|html)(?:\.gz)?")


def _remove_stale(out: Path, categories: set[str]) -> int:
    """Delete the files of categories no longer in the store (gone from the config)."""
    removed = 0
    for path in out.iterdir():
        m = _FEED_FILE.fullmatch(path.name)
        if m and m.group(1) not in categories and m.group(1) not in RESERVED_CATEGORY_IDS:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _failure(name: str, exc: Exception) -> str:
    log.error("write %s failed: %s: %s", name, type(exc).__name__, exc)
    return f"{name}: {type(exc).__name__}: {exc}"
