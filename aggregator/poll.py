"""Poll a set of sources concurrently, then write what changed.

Shared by ``aggregator poll`` (every source once) and the daemon's dispatcher
(the sources that are due). Fetches run in a bounded thread pool; the
fetcher itself keeps the per-host limit.

A poll killed after storing items but before writing the feeds must not
leave them stale for good (the next poll may see only 304s): the store's
change counter the files were last complete at is kept beside them, in
``output_dir/.written``, and the next poll also rewrites every category
changed after it. A poll that changed nothing, with the files complete,
writes nothing: its saved states alone (``status`` on the counter) wait for
the next write to reach status.html.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING

from aggregator import metrics
from aggregator.config import Config, SourceConfig
from aggregator.errors import StoreError
from aggregator.fetch import Fetcher
from aggregator.logs import log_fields
from aggregator.model import ALL_FEED, FEED_FORMATS, PollStatus, SourceState, UpdateResult
from aggregator.retention import prune_expired
from aggregator.rules import RuleSet, config_rules
from aggregator.store import Store
from aggregator.store.health import STATUS
from aggregator.update import UpdateContext, update_source

if TYPE_CHECKING:
    from aggregator.fulltext import Refetched

log = logging.getLogger("aggregator.poll")

#: in output_dir: the store's change counter at which the files there were last complete
WRITTEN_STAMP = ".written"


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_store(config: Config) -> Store:
    """Open (and migrate) the database, and make it know the configured sources."""
    store = Store.open(config.aggregator.database)
    store.sync_config(
        config.sources,
        [c for c in (config.category(cid) for cid in config.categories) if c is not None],
        utcnow(),
    )
    return store


def reapply_rules(config: Config, store: Store, rules: RuleSet | None = None) -> RuleSet:
    """The config's rules, compiled and re-applied to the stored items if they changed.

    Once after an upgrade, the stories stored twice are merged too (store/rejoin.py).
    The categories whose feeds change are stamped in the store (its change counter),
    so the write that follows picks them up like any poll's changes.
    """
    rules = rules or config_rules(config)
    done = store.reapply_rules(rules, utcnow())
    merged = store.merge_duplicates(rules, utcnow())
    if merged.merged:
        log_fields(
            log,
            logging.INFO,
            "stories stored twice merged",
            items=merged.merged,
            categories=len(merged.categories),
        )
    if done.evaluated:
        log_fields(
            log,
            logging.INFO,
            "rules re-applied",
            items=done.evaluated,
            changed=done.changed,
            dropped=done.dropped,
            restored=done.restored,
            skipped=done.skipped,
        )
    return rules


def pollable(
    config: Config, states: dict[str, SourceState], ids: Iterable[str] | None
) -> list[SourceConfig]:
    """The named sources, else every enabled source not disabled by a 410."""
    if ids is not None:
        wanted = set(ids)
        return [s for s in config.sources if s.id in wanted]
    return [
        s
        for s in config.sources
        if s.enabled and not (states.get(s.id) and states[s.id].disabled_reason)
    ]


#: poll outcomes saved per transaction by ``poll_sources`` (one write lock per batch)
STATE_BATCH = 100


#: polls submitted to the pool at once, per worker: enough that no worker waits for the
#: next, few enough that 10,000 sources are not 10,000 futures held at once (~1.8 KB each)
IN_FLIGHT_PER_WORKER = 2


def poll_sources(
    ctx: UpdateContext,
    sources: Sequence[SourceConfig],
    states: dict[str, SourceState],
    on_result: Callable[[UpdateResult], None] | None = None,
) -> list[UpdateResult]:
    """Run update_source over ``sources`` in a bounded pool; results in the given order.

    The workers hand their new states to a sink (after their items are committed);
    this thread saves them ``STATE_BATCH`` at a time, so workers never queue for the
    write lock once per source. A crash loses at most unsaved states: those sources
    are polled again, their items already stored. Sources are submitted as polls
    finish, ``IN_FLIGHT_PER_WORKER`` per worker at a time (issue 19: memory).
    """
    results: dict[str, UpdateResult] = {}
    pending: list[SourceState] = []
    guard = threading.Lock()

    def sink(state: SourceState) -> None:
        with guard:
            pending.append(state)

    def flush() -> None:
        with guard:
            batch = pending[:]
            pending.clear()
        for failed in _save_states(ctx, batch):
            results[failed.source_id] = failed

    batched = replace(ctx, state_sink=sink)
    workers = max(1, min(ctx.config.limits.workers, len(sources)))
    finished: queue.SimpleQueue[tuple[SourceConfig, Future[UpdateResult]]] = queue.SimpleQueue()
    todo = iter(sources)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:

        def submit(source: SourceConfig) -> None:
            state = states.get(source.id) or SourceState(source.id)
            future = pool.submit(update_source, batched, source, state)
            future.add_done_callback(lambda f: finished.put((source, f)))

        running = 0
        for source in islice(todo, workers * IN_FLIGHT_PER_WORKER):
            submit(source)
            running += 1
        while running:
            source, future = finished.get()
            running -= 1
            following = next(todo, None)
            if following is not None:
                submit(following)
                running += 1
            try:
                result = future.result()
            except Exception as exc:  # a bug or a dead database: report, keep the others
                log.exception("%s: poll crashed", source.id)
                result = crashed(source.id, exc)
            log_result(result)
            results[source.id] = result
            if on_result:
                on_result(result)
            if len(pending) >= STATE_BATCH:
                flush()
    flush()
    return [results[s.id] for s in sources]


def _save_states(ctx: UpdateContext, batch: list[SourceState]) -> list[UpdateResult]:
    """Save ``batch`` in one transaction, else one by one; the polls whose state was lost."""
    if not batch:
        return []
    try:
        ctx.store.save_states(batch, release_lease_of=ctx.owner)
        return []
    except Exception:  # noqa: BLE001 - retried one by one below, each failure reported
        log.warning("saving %d source states at once failed; saving one by one", len(batch))
    lost: list[UpdateResult] = []
    for state in batch:
        try:
            ctx.store.save_state(state, release_lease_of=ctx.owner)
        except Exception as exc:
            log.exception("%s: saving its state failed", state.source_id)
            lost.append(crashed(state.source_id, exc))
    return lost


def crashed(source_id: str, exc: Exception) -> UpdateResult:
    """The result of a poll that raised: ``database`` when the store failed, else a bug."""
    if isinstance(exc, StoreError):
        return UpdateResult(
            source_id, PollStatus.FAILED, error_kind=exc.kind, error_message=str(exc)
        )
    return UpdateResult(
        source_id,
        PollStatus.FAILED,
        error_kind="internal",
        error_message=f"{type(exc).__name__}: {exc}",
    )


def log_result(r: UpdateResult) -> None:
    """One key=value line per poll per source (journald-friendly), and the poll metrics."""
    metrics.record_poll(r)
    level = logging.WARNING if r.status == PollStatus.FAILED else logging.INFO
    error = {"error": r.error_kind, "message": r.error_message or ""} if r.error_kind else {}
    log_fields(
        log,
        level,
        "poll",
        source=r.source_id,
        status=r.status.value,
        new=r.new,
        updated=r.updated,
        unchanged=r.unchanged,
        skipped=r.skipped,
        dropped=r.dropped,
        duration=float(r.duration),
        **error,
    )


def poll_once(
    config: Config,
    ids: Sequence[str] | None,
    *,
    progress: bool = False,
    fetcher: Fetcher | None = None,
) -> list[UpdateResult]:
    """``aggregator poll``: every (or the named) source once, then write the outputs.

    ``fetcher``: for tests (an injected resolver); by default one made from the limits.
    """
    store = open_store(config)
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(config.limits)
    try:
        rules = reapply_rules(config, store)
        states = {s.source_id: s for s in store.states()}
        sources = pollable(config, states, ids)
        ctx = UpdateContext(config, store, fetcher, utcnow, random.Random(), rules=rules)
        if progress and sources:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("polling", total=len(sources))
                results = poll_sources(ctx, sources, states, lambda _: bar.advance(task))
        else:
            results = poll_sources(ctx, sources, states)
        changed: set[str] = set()
        for r in results:
            changed |= r.changed_categories
        changed |= prune_expired(config, store, utcnow())
        counter, seen, unwritten = _unwritten(config, store)
        if (
            unwritten is None
            or changed
            or unwritten
            or config.posts is not None
            or _outputs_missing(config, store)
        ):
            _write(config, store, None if unwritten is None else changed | unwritten, seen, counter)
        return results
    finally:
        if own_fetcher:
            fetcher.close()
        store.close()


def refetch_once(
    config: Config, source: SourceConfig, *, fetcher: Fetcher | None = None
) -> Refetched:
    """``aggregator refetch``: every stored item's page of ``source`` read again, then the
    outputs its changes touched written."""
    from aggregator.fulltext import refetch

    store = open_store(config)
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(config.limits)
    try:
        timeout = config.limits.parse_timeout.total_seconds()
        rules = reapply_rules(config, store)
        done = refetch(fetcher, store, source, utcnow(), rules, timeout=timeout)
        counter, seen, unwritten = _unwritten(config, store)
        if unwritten is None or unwritten or done.changed_categories:
            changed = None if unwritten is None else unwritten | done.changed_categories
            _write(config, store, changed, seen, counter)
        return done
    finally:
        if own_fetcher:
            fetcher.close()
        store.close()


def _outputs_missing(config: Config, store: Store) -> bool:
    """A feed or index deleted since it was written, or a feed's file of a format taken out
    of ``formats`` still there: a poll that changed nothing remakes (or removes) it."""
    out = config.aggregator.output_dir
    formats = config.aggregator.formats
    stems = [ALL_FEED, "health", *(c.id for c in store.categories())]
    names = ["index.html", "index.opml", "status.html"]
    names += [f"{stem}.{ext}" for stem in stems for ext in (*formats, "html")]
    dropped = [f"{stem}.{ext}" for stem in stems for ext in FEED_FORMATS if ext not in formats]
    return not all((out / name).exists() for name in names) or any(
        (out / name).exists() for name in dropped
    )


def _write(
    config: Config, store: Store, changed: set[str] | None, seen: int | None, counter: int
) -> None:
    """The outputs, then the stamp saying they are complete up to ``counter``.

    ``seen``: the stamp before; the posts of the items changed after it are rewritten.
    """
    # imported here: a poll that changed nothing (every source 304) writes nothing
    # and never loads the writers (issue 8: warm poll time)
    from aggregator.outputs import write_outputs
    from aggregator.write import replace_file

    # a file not written: no stamp, so the next poll tries it again
    if not write_outputs(config, store, changed, since=seen).failed:
        replace_file(config.aggregator.output_dir / WRITTEN_STAMP, b"%d\n" % counter)


def _unwritten(config: Config, store: Store) -> tuple[int, int | None, set[str] | None]:
    """The change counter now, the one the files were last complete at, and the
    categories changed since.

    None: not known (no stamp, or one from another database): every output is rewritten.
    """
    counter = store.change_counter()
    try:
        seen = int((config.aggregator.output_dir / WRITTEN_STAMP).read_text("ascii"))
    except (OSError, ValueError):
        return counter, None, None
    if seen > counter:
        return counter, None, None
    return counter, seen, set(store.changed_since(seen).categories) - {STATUS}
