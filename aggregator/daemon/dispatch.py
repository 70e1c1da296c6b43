"""Dispatching polls: claim due sources (a lease each), poll them in a pool, keep the leases.

The schedule lives in the database (``next_due_at`` and a lease per source),
so several instances can share one; this part only asks it, every tick, for
what falls due, and hands each poll's result to ``on_result``.

A claim takes at most as many sources as there are free workers (a lease is
a promise to poll soon). When it filled them all, more may be due: each poll
that finishes then claims again, so the polls per second are bounded by the
workers' pace, not by ``workers`` per tick (issue 19: 10,000 sources at 15
minutes are 11 a second, more than 8 workers a tick could ever start).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

from aggregator.config import Config, Limits, SourceConfig
from aggregator.errors import StoreError
from aggregator.fetch import Fetcher
from aggregator.model import SourceState, UpdateResult
from aggregator.poll import crashed, log_result, utcnow
from aggregator.rules import NO_RULES, RuleSet
from aggregator.store import Store
from aggregator.update import UpdateContext, update_source

log = logging.getLogger("aggregator.daemon")

#: the dispatcher ticks every second and claims what falls due within half of one, so a
#: source is polled within +-0.5 s of its time rather than up to a whole tick late
TICK_SECONDS = 1.0
CLAIM_AHEAD = timedelta(seconds=TICK_SECONDS / 2)


class Dispatcher:
    """Claims due sources and polls them; ``tick`` and ``renew_leases`` run on timers."""

    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        *,
        owner: str,
        on_result: Callable[[UpdateResult], None],
        stopping: threading.Event,
        rules: Callable[[], RuleSet] = lambda: NO_RULES,
    ) -> None:
        self.store = store
        self._rules = rules  #: the running rules (a reload swaps them)
        self.owner = owner
        self._config = config
        self._on_result = on_result
        self._stopping = stopping
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[UpdateResult]] = {}
        self._rand = random.Random()
        limits = config().limits
        self.workers = limits.workers  #: the pool's size: fixed until a restart
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="poll")
        self._fetcher = Fetcher(limits)
        self._retired: list[Fetcher] = []  #: fetchers a reload replaced, maybe still in use
        self._renewed_at = time.monotonic()
        self._claiming = threading.Lock()  #: one claim at a time: the tick's or a poll's
        self._more_due = False  #: the last claim filled every free worker: more may be due
        self._index: tuple[Config, dict[str, SourceConfig]] | None = None
        self.last_tick = time.monotonic()  #: when the last tick finished (the watchdog reads it)

    def busy(self) -> set[str]:
        """The sources being polled now."""
        with self._lock:
            return set(self._inflight)

    def tick(self) -> None:
        """Claim what is due and submit it; a failure is logged, the next tick tries again."""
        self._claim()
        self.last_tick = time.monotonic()

    def _claim(self) -> None:
        """Claim and submit, unless stopping or another claim runs now (it covers this one)."""
        if self._stopping.is_set() or not self._claiming.acquire(blocking=False):
            return
        try:
            self._claim_and_submit()
        except StoreError as exc:
            log.error("database error in dispatcher: %s", exc)
        except Exception:
            log.exception("dispatcher tick failed")
        finally:
            self._claiming.release()

    def use_limits(self, limits: Limits) -> None:
        """New limits (a reload): later polls use a new fetcher; running ones keep theirs."""
        with self._lock:
            self._retired.append(self._fetcher)
            self._fetcher = Fetcher(limits)

    def renew_leases(self) -> None:
        """Every third of a lease, extend the leases of polls still running: a slow poll
        keeps its source, a crashed instance's sources return within one lease."""
        lease = self._config().limits.lease
        if time.monotonic() - self._renewed_at < lease.total_seconds() / 3:
            return
        self._renewed_at = time.monotonic()
        ids = sorted(self.busy())
        try:
            held = self.store.renew_leases(self.owner, ids, utcnow() + lease)
        except StoreError as exc:
            log.error("leases not renewed: %s", exc)
            return
        for source_id in sorted((set(ids) - held) & self.busy()):
            log.warning("%s: lease lost while polling; another instance may poll it", source_id)

    def stop(self, grace: float, wait: float) -> int:
        """Cut fetches after ``grace`` s, wait up to ``wait`` s for polls; how many still run."""
        with self._lock:
            fetchers = (self._fetcher, *self._retired)
        for fetcher in fetchers:
            fetcher.abort_all(grace)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.busy():
            time.sleep(0.05)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return len(self.busy())

    def _claim_and_submit(self) -> None:
        config = self._config()
        free = min(config.limits.workers, self.workers) - len(self.busy())
        if free <= 0:
            self._more_due = True  # not asked: the next poll to finish asks
            return
        # every enabled source the store has and the config names (sync_config marks the
        # others removed); the ones polled now are leased to us, so they are not due
        claimed = self.store.claim_due(
            utcnow(), free, self.owner, config.limits.lease, None, ahead=CLAIM_AHEAD
        )
        self._more_due = len(claimed) >= free
        sources = self._sources(config)
        with self._lock:
            ctx = UpdateContext(
                config,
                self.store,
                self._fetcher,
                utcnow,
                self._rand,
                self.owner,
                rules=self._rules(),
            )
        for state in claimed:
            source = sources.get(state.source_id)
            if source is None or state.disabled_reason or self._stopping.is_set():
                self._release(state)
                continue
            with self._lock:
                self._inflight[source.id] = self._pool.submit(self._poll_one, ctx, source, state)

    def _sources(self, config: Config) -> dict[str, SourceConfig]:
        """The config's sources by id, made again only when a reload swapped the config."""
        if self._index is None or self._index[0] is not config:
            self._index = (config, {s.id: s for s in config.sources if s.enabled})
        return self._index[1]

    def _release(self, state: SourceState) -> None:
        """Give back a lease taken by mistake (the source went away, or we are stopping)."""
        try:
            self.store.save_state(state, release_lease_of=self.owner)
        except StoreError as exc:
            log.warning("%s: lease not released (it expires): %s", state.source_id, exc)

    def _poll_one(
        self, ctx: UpdateContext, source: SourceConfig, state: SourceState
    ) -> UpdateResult:
        try:
            result = update_source(ctx, source, state)
        except Exception as exc:
            log.exception("%s: poll crashed", source.id)
            result = crashed(source.id, exc)
        log_result(result)
        try:
            self._on_result(result)
        finally:
            with self._lock:
                self._inflight.pop(source.id, None)
        if self._more_due:
            self._claim()  # this worker is free and more may be due: no wait for the tick
        return result
