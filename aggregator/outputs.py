"""Which files to rewrite after a change, and rewriting them.

Only the categories that changed are rendered again; ``all.*`` when any
did; ``index.html`` and ``index.opml`` every time (cheap, and replaced only
when their bytes differ). A feed is read once and written in every format of
``[aggregator] formats`` plus its HTML page, all from that one read
(write/snapshot.py). ``health.*`` when a source's condition changed (the
reserved id ``health`` in ``changed``), ``status.html`` unless the caller
spaces it out (``status=False``; a saved poll alone announces itself as
``status``: no feed is written for it). Every
file is replaced atomically with a gzip twin for the HTTP server.
Each file is rendered on its own: one that cannot be (an entry that breaks
the renderer) is an error naming it, and every other file is still written;
the caller then knows the outputs are not complete (``WriteResult.failed``)
and what to write again (``WriteResult.retry``).
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
from aggregator.errors import StoreError
from aggregator.model import RESERVED_CATEGORY_IDS, Category
from aggregator.statuspage import status_page
from aggregator.store import Store
from aggregator.store.health import STATUS
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
    status_seconds: float | None = None  #: what status.html took (None: not written)
    #: the ids to write again for the files that failed: a category's, ``all``, ``health``,
    #: ``status`` (status.html), ``posts/`` (a Jekyll post)
    retry: frozenset[str] = frozenset()


#: ``WriteResult.retry``'s id of the Jekyll posts (no category id has a slash)
POSTS = "posts/"


def write_outputs(
    config: Config,
    store: Store,
    changed: Iterable[str] | None,
    *,
    since: int | None = None,
    status: bool = True,
) -> WriteResult:
    """Rewrite the feeds of ``changed`` categories (None: every output).

    ``since``: the store's change counter the outputs were last complete at; the
    Jekyll posts of exactly the items changed after it are rewritten (None, or
    ``changed`` None: every post). ``status``: False leaves status.html for a later
    write (the daemon spaces it out: it reads every source's row).
    """
    run = _Run(config, store)
    changed = None if changed is None else set(changed)
    for category in run.feeds_to_write(changed):
        run.write_feed(category.id if category else ALL_FEED, run.category_feed(category))
    if changed is None or HEALTH_FEED in changed or run.missing(HEALTH_FEED):
        run.write_feed(HEALTH_FEED, run.health_feed)
    if status or run.missing_file(STATUS_PAGE):
        run.write_status_page()
    run.write_indexes()
    run.removed = _remove_stale(run.out, set(run.categories), run.settings.formats)
    if config.posts is not None:  # every time: archiving is due even when nothing changed
        run.write_posts(changed, since)
    return run.finish()


class _Run:
    """One ``write_outputs``: what it reads once, and what it wrote, left or failed."""

    def __init__(self, config: Config, store: Store) -> None:
        self.started = time.monotonic()
        self.config = config
        self.settings = config.aggregator
        self.store = store
        self.out = self.settings.output_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.categories = {c.id: Category(c.id, c.title, c.description) for c in store.categories()}
        self.renderers = renderers()
        self.written = self.unchanged = self.removed = 0
        self.changed_feeds: list[str] = []  #: URLs of feeds whose bytes changed (WebSub)
        self.failed: list[str] = []
        self.retry: set[str] = set()
        self.status_seconds: float | None = None

    def missing(self, stem: str) -> bool:
        """A file of this feed is not there (deleted, or a format added since)."""
        names = [*(f"{stem}.{f}" for f in self.settings.formats), f"{stem}.html"]
        return any(self.missing_file(name) for name in names)

    def missing_file(self, name: str) -> bool:
        return not (self.out / name).exists()

    def feeds_to_write(self, changed: set[str] | None) -> list[Category | None]:
        """The changed categories' feeds and any with a file missing; then ``all`` (None)
        when any category changed (a deleted one too), its own file is missing, or
        everything is to be written."""
        ids = set(self.categories) if changed is None else changed & set(self.categories)
        ids |= {cid for cid in self.categories if self.missing(cid)}
        feeds: list[Category | None] = [self.categories[cid] for cid in sorted(ids)]
        if changed is None or changed - {HEALTH_FEED, STATUS} or self.missing(ALL_FEED):
            feeds.append(None)
        return feeds

    def category_feed(self, category: Category | None) -> Callable[[], Snapshot]:
        """The read of one category's feed (``all``: None), made under its lock."""

        def read() -> Snapshot:
            return take_snapshot(
                feed_meta(category, self.settings, EMPTY_FEED_UPDATED),
                self.store.entries(
                    category.id if category else None, self.settings.entries_per_feed
                ),
                self.categories,
                self.settings.base_url,
            )

        return read

    def health_feed(self) -> Snapshot:
        events = self.store.health_events(self.settings.entries_per_feed)
        return health_snapshot(events, self.settings, EMPTY_FEED_UPDATED)

    def write_feed(self, stem: str, read: Callable[[], Snapshot]) -> None:
        """Every format of one feed from one read, under the feed's one lock: never older
        over newer, and never one format ahead of another."""
        settings = self.settings
        with self.store.output_lock(f"{stem}.atom"):
            snapshot = read()
            for fmt in settings.formats:
                render = partial(self.renderers[fmt], snapshot, settings)
                self._put(f"{stem}.{fmt}", render, retry=stem)
            page = partial(render_page, snapshot, settings, settings.formats)
            self._put(f"{stem}.html", page, retry=stem)

    def write_status_page(self) -> None:
        """Any change (a saved poll is one) may show on it; rendered from the store alone,
        so its bytes stay put while nothing changed. Timed: the daemon spaces it by it."""
        started = time.monotonic()
        with self.store.output_lock(STATUS_PAGE):
            self._put(STATUS_PAGE, partial(status_page, self.config, self.store), retry=STATUS)
        self.status_seconds = time.monotonic() - started

    def write_indexes(self) -> None:
        """Both indexes from one read of the counts (kept on the categories rows), the two
        locks held together, in this order everywhere, so neither goes back in time."""
        with self.store.output_lock("index.html"), self.store.output_lock("index.opml"):
            rows = self.store.categories()
            self._put("index.html", partial(render_index, rows, self.settings), feed=False)
            self._put("index.opml", partial(render_opml, rows, self.settings), feed=False)

    def write_posts(self, changed: set[str] | None, since: int | None) -> None:
        """The Jekyll posts of the items changed after ``since`` (every post: None)."""
        from aggregator.posts import write_posts  # only sites with posts pay for its imports

        posts = self.config.posts
        assert posts is not None
        with self.store.output_lock("posts/"):
            if changed is None or since is None:
                entries, merged = self.store.entries(None, None), self.store.merged_away(None)
                dropped = self.store.dropped_items(0)
            else:
                entries, merged = self.store.changed_entries(since), self.store.merged_away(since)
                dropped = self.store.dropped_items(since)
            # an item merged away never had an infoCode (an infoCode key is never merged away)
            gone = [(key, None) for key in merged] + dropped
            result = write_posts(
                posts.dir,
                entries,
                self.categories,
                posts.site_url,
                self.settings.tz,
                posts.archive_after,
                datetime.now(UTC),
                gone=gone,
            )
        self.written += result.written
        self.unchanged += result.unchanged
        for name, why in result.failed:
            log.error("write %s failed: %s", posts.dir / name, why)
            self.failed.append(f"{posts.dir / name}: {why}")
            self.retry.add(POSTS)

    def finish(self) -> WriteResult:
        """Log and time the run; tell the WebSub hub which feeds changed."""
        seconds = time.monotonic() - self.started
        if self.written or self.removed:
            log.info(
                "write files=%d unchanged=%d removed=%d duration=%.3f",
                self.written,
                self.unchanged,
                self.removed,
                seconds,
            )
        metrics.observe_write(seconds)
        if self.settings.websub_hub and self.changed_feeds:
            from aggregator.websub import ping_hub

            ping_hub(self.settings.websub_hub, self.changed_feeds)
        return WriteResult(
            self.written,
            self.unchanged,
            seconds,
            tuple(self.failed),
            self.status_seconds,
            frozenset(self.retry),
        )

    def _put(
        self,
        name: str,
        render: Callable[[], bytes],
        *,
        feed: bool = True,
        retry: str | None = None,
    ) -> None:
        """Render and replace one file; one that cannot be rendered is named, the rest go on.

        ``feed``: a changed file that is not a page is announced to the WebSub hub.
        ``retry``: the id that writes it again, when it failed (None: written every time).
        """
        try:
            data = render()
        except (StoreError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - this file only; the others are written
            self.failed.append(_failure(name, exc))
            if retry is not None:
                self.retry.add(retry)
            return
        if replace_with_gzip(self.out / name, data):
            self.written += 1
            if feed and not name.endswith(".html"):
                self.changed_feeds.append(self.settings.base_url + name)
        else:
            self.unchanged += 1


_FEED_FILE = re.compile(r"([a-z0-9_-]+)\.(atom|rss|json|html)(?:\.gz)?")


def _remove_stale(out: Path, categories: set[str], formats: Iterable[str]) -> int:
    """Delete the files of categories no longer in the store (gone from the config), and
    every feed's files of a format taken out of ``formats``: a file no longer written would
    otherwise be served frozen, and its readers never learn that it stopped."""
    kept = {*formats, "html"}
    removed = 0
    for path in out.iterdir():
        m = _FEED_FILE.fullmatch(path.name)
        if m is None:
            continue
        stem, extension = m.groups()
        if (stem not in categories and stem not in RESERVED_CATEGORY_IDS) or extension not in kept:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _failure(name: str, exc: Exception) -> str:
    log.error("write %s failed: %s: %s", name, type(exc).__name__, exc)
    return f"{name}: {type(exc).__name__}: {exc}"
