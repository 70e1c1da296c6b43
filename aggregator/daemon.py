"""Process life of ``aggregator run``.

    start    open + migrate the store, start HTTP (listening), write, READY=1
    tick     every second: claim due sources (a lease each), hand them to the pool
    leases   renew the leases of polls still running, every third of a lease
    write    every second, on its own timer (rendering never delays a claim):
             rewrite the categories this or another instance changed
    watchdog WATCHDOG=1 at half of WATCHDOG_USEC, only while the database
             answers and the dispatcher is not stuck
    prune    at start, then hourly, when ``retention`` is set
    SIGHUP   RELOADING=1, validate every file, swap only if valid, READY=1
    SIGTERM  warm stop: STOPPING=1, no new polls, in-flight fetches are cut
             after FETCH_GRACE_SECONDS; a second SIGTERM/SIGINT: cold stop at once

The schedule lives in the database (``next_due_at`` and a lease per source),
so several instances can share one database; APScheduler is only the local
timer that runs the dispatcher, the writer, the watchdog and retention.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator import metrics
from aggregator.config import Config, SourceConfig, load_config
from aggregator.errors import ConfigError, StoreError
from aggregator.fetch import Fetcher
from aggregator.model import PollStatus, SourceState, UpdateResult
from aggregator.notify import Notifier, watchdog_interval
from aggregator.outputs import write_outputs
from aggregator.poll import _log_result, open_store, utcnow
from aggregator.retention import prune_expired
from aggregator.store import Store
from aggregator.update import UpdateContext, update_source

if TYPE_CHECKING:
    from aggregator.serve import ServerHandle

log = logging.getLogger("aggregator.daemon")

#: how long a warm stop waits for in-flight polls in all
WARM_STOP_SECONDS = 10.0
#: in-flight fetches are cut (their sockets shut) this long after a stop signal
FETCH_GRACE_SECONDS = 3.0
#: no finished dispatcher tick for this long means it hangs: the watchdog goes quiet
DISPATCH_STALL_SECONDS = 300.0
RETENTION_EVERY = timedelta(hours=1)
#: the dispatcher ticks every second and claims what falls due within half of one, so a
#: source is polled within +-0.5 s of its time rather than up to a whole tick late
TICK_SECONDS = 1.0
CLAIM_AHEAD = timedelta(seconds=TICK_SECONDS / 2)


class Daemon:
    def __init__(self, config_path: Path, config: Config, *, notifier: Notifier | None = None):
        self.config_path = config_path
        self.config = config
        self.notifier = notifier or Notifier()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store: Store | None = None
        self.server: ServerHandle | None = None
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self._signals = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[UpdateResult]] = {}
        self._changed: set[str] = set()
        self._rand = random.Random()
        self._workers = config.limits.workers
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="poll")
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._fetcher = Fetcher(config.limits)
        self._retired: list[Fetcher] = []  #: fetchers replaced by a reload, maybe still in use
        self._failing: set[str] = set()
        self._seen_counter: int | None = None  #: the store's change counter last written
        self._renewed_at = time.monotonic()
        self._last_tick = time.monotonic()
        #: shown in STATUS= until a reload succeeds, so `systemctl status` tells the admin
        self._refused: str | None = None

    # -------------------------------------------------------------- lifecycle

    def run(self) -> int:
        self._install_signals()
        try:
            self.store = open_store(self.config)
        except StoreError as exc:
            log.error("database unavailable: %s", exc)
            return 1
        try:
            self.server = self._start_server()
        except OSError as exc:
            log.error("cannot serve HTTP on %s: %s", self.config.server.listen, exc)
            self.store.close()
            return 1
        self._failing = self._failing_sources()
        try:
            # the counter first: a change committed during the full write is written
            # again at the first tick, never lost
            self._seen_counter = self.store.change_counter()
            write_outputs(self.config, self.store, None)
        except Exception:
            log.exception("initial write failed")
        self._schedule_jobs()
        self.notifier.send("READY=1", self._status_line())
        log.info("running as %s with %d sources", self.owner, len(self.config.sources))
        while not self.stop_requested.is_set():
            if self.reload_requested.wait(0.2):
                self.reload_requested.clear()
                if not self.stop_requested.is_set():
                    self.reload()
        return self._stop()

    def _schedule_jobs(self) -> None:
        once = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self._scheduler.add_job(self._tick, "interval", seconds=TICK_SECONDS, id="dispatch", **once)
        self._scheduler.add_job(self._renew_leases, "interval", seconds=1, id="leases", **once)
        self._scheduler.add_job(
            self._write_tick, "interval", seconds=TICK_SECONDS, id="write", **once
        )
        beat = watchdog_interval()
        if beat:
            self._scheduler.add_job(
                self._watchdog,
                "interval",
                seconds=beat,
                id="watchdog",
                next_run_time=datetime.now(UTC),
                **once,
            )
        self._scheduler.add_job(
            self._prune,
            "interval",
            id="retention",
            seconds=RETENTION_EVERY.total_seconds(),
            next_run_time=datetime.now(UTC),
            **once,
        )
        self._scheduler.start()

    def _stop(self) -> int:
        """Warm stop: no new polls; running fetches are cut after a short grace."""
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        log.info(
            "stopping: in-flight fetches get %.0fs, polls %.0fs in all",
            FETCH_GRACE_SECONDS,
            WARM_STOP_SECONDS,
        )
        self._scheduler.shutdown(wait=False)
        for fetcher in (self._fetcher, *self._retired):
            fetcher.abort_all(FETCH_GRACE_SECONDS)
        deadline = time.monotonic() + WARM_STOP_SECONDS
        while time.monotonic() < deadline and self._inflight_count():
            time.sleep(0.05)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.store:
            try:
                self._flush_writes()
            except Exception:
                log.exception("final write failed")
        if self.server is not None:
            self.server.stop()
        if self.store:
            self.store.close()
        left = self._inflight_count()
        if left:
            log.warning("%d polls still in flight at exit; their leases will expire", left)
            logging.shutdown()
            os._exit(0)
        log.info("stopped")
        return 0

    def _install_signals(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals >= 2:
                log.warning("second %s: cold stop", signal.Signals(signum).name)
                self.notifier.send("STOPPING=1")
                logging.shutdown()
                os._exit(1)
            log.info("%s: warm stop", signal.Signals(signum).name)
            self.stop_requested.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _start_server(self) -> ServerHandle:
        """Returns once the socket listens (start_server waits for uvicorn)."""
        from aggregator.serve import start_server

        return start_server(
            self.config,
            store_provider=lambda: self.store,
            health_provider=self._health,
            config_provider=lambda: self.config,
        )

    # ----------------------------------------------------------------- reload

    def reload(self) -> bool:
        """Validate every file; swap only when all are valid, else keep running as is."""
        self.notifier.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading"
        )
        try:
            ok = self._swap(load_config(self.config_path))
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config: %s", problem)
            ok = False
        except Exception:
            log.exception("reload failed, keeping the running config")
            ok = False
        with self._lock:
            self._refused = None if ok else f"reload refused at {utcnow():%H:%M:%SZ} (see log)"
        self.notifier.send("READY=1", self._status_line())
        return ok

    def _swap(self, new: Config) -> bool:
        assert self.store is not None
        old = self.config
        if new.aggregator.database != old.aggregator.database:
            log.warning("database change needs a restart; keeping %s", old.aggregator.database)
            new = new.model_copy(
                update={
                    "aggregator": new.aggregator.model_copy(
                        update={"database": old.aggregator.database}
                    )
                }
            )
        if new.server != old.server:
            log.warning("[server] changes take effect after a restart")
        if new.limits.workers != self._workers:
            log.warning("limits.workers changes take effect after a restart")
        categories = [c for c in (new.category(i) for i in new.categories) if c]
        try:
            self.store.sync_config(new.sources, categories, utcnow())
        except StoreError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return False
        with self._lock:
            self.config = new
            if new.limits != old.limits:
                self._retired.append(self._fetcher)
                self._fetcher = Fetcher(new.limits)
            self._changed |= set(new.categories)
        self._reschedule_changed(old, new)
        old_ids = {s.id for s in old.sources}
        new_ids = {s.id for s in new.sources}
        with self._lock:
            self._failing &= new_ids
        log.info(
            "reloaded %s: %d sources (+%d, -%d)",
            self.config_path,
            len(new.sources),
            len(new_ids - old_ids),
            len(old_ids - new_ids),
        )
        return True

    def _reschedule_changed(self, old: Config, new: Config) -> None:
        """A source whose URL changed is due now; a shorter interval counts from its last poll.

        Unchanged sources keep their ``next_due_at``: a reload never re-polls them early.
        """
        assert self.store is not None
        now = utcnow()
        with self._lock:
            busy = set(self._inflight)
        for source in new.sources:
            before = old.source(source.id)
            if before is None or source.id in busy:
                continue
            url_changed = before.url != source.url
            interval = new.interval(source)
            if not url_changed and interval >= old.interval(before):
                continue
            try:
                state = self.store.state(source.id)
            except (KeyError, StoreError):
                continue
            due = (
                now
                if url_changed
                else (max(state.last_poll_at + interval, now) if state.last_poll_at else now)
            )
            if state.next_due_at is not None and state.next_due_at <= due:
                continue
            try:
                self.store.save_state(replace(state, next_due_at=due))
            except StoreError as exc:
                log.error("%s: cannot reschedule after reload: %s", source.id, exc)
                continue
            log.info(
                "%s: %s, next poll %s",
                source.id,
                "URL changed" if url_changed else f"interval now {interval}",
                due.isoformat(timespec="seconds"),
            )

    # ---------------------------------------------------------------- polling

    def _context(self) -> UpdateContext:
        assert self.store is not None
        return UpdateContext(self.config, self.store, self._fetcher, utcnow, self._rand, self.owner)

    def _lease(self) -> timedelta:
        return self.config.limits.lease

    def _renew_leases(self) -> None:
        """Every third of a lease, extend the leases of polls still running: a slow poll
        keeps its source, a crashed instance's sources return within one lease."""
        lease = self._lease()
        if self.store is None or time.monotonic() - self._renewed_at < lease.total_seconds() / 3:
            return
        self._renewed_at = time.monotonic()
        with self._lock:
            ids = sorted(self._inflight)
        try:
            held = self.store.renew_leases(self.owner, ids, utcnow() + lease)
        except StoreError as exc:
            log.error("leases not renewed: %s", exc)
            return
        with self._lock:
            lost = sorted((set(ids) - held) & set(self._inflight))
        for source_id in lost:
            log.warning("%s: lease lost while polling; another instance may poll it", source_id)

    def _inflight_count(self) -> int:
        with self._lock:
            return len(self._inflight)

    def _tick(self) -> None:
        if self.stop_requested.is_set() or self.store is None:
            return
        try:
            self._claim_and_submit()
        except StoreError as exc:
            log.error("database error in dispatcher: %s", exc)
        except Exception:
            log.exception("dispatcher tick failed")
        self._last_tick = time.monotonic()

    def _write_tick(self) -> None:
        if self.stop_requested.is_set() or self.store is None:
            return
        try:
            self._flush_writes()
        except StoreError as exc:
            log.error("database error while writing feeds: %s", exc)
        except Exception:
            log.exception("writing feeds failed")

    def _claim_and_submit(self) -> None:
        assert self.store is not None
        with self._lock:
            config = self.config
            busy = set(self._inflight)
        free = min(config.limits.workers, self._workers) - len(busy)
        if free <= 0:
            return
        ids = [s.id for s in config.sources if s.enabled and s.id not in busy]
        if not ids:
            return
        claimed = self.store.claim_due(
            utcnow(), free, self.owner, self._lease(), ids, ahead=CLAIM_AHEAD
        )
        ctx = self._context()
        for state in claimed:
            source = config.source(state.source_id)
            if source is None or state.disabled_reason or self.stop_requested.is_set():
                self._release(state)
                continue
            with self._lock:
                self._inflight[source.id] = self._pool.submit(self._poll_one, ctx, source, state)

    def _release(self, state: SourceState) -> None:
        """Give back a lease taken by mistake (the source went away, or we are stopping)."""
        assert self.store is not None
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
            result = UpdateResult(
                source.id, PollStatus.FAILED, error_kind="internal", error_message=str(exc)
            )
        _log_result(result)
        with self._lock:
            self._changed |= result.changed_categories
            if result.status == PollStatus.FAILED:
                self._failing.add(source.id)
            else:
                self._failing.discard(source.id)
            self._inflight.pop(source.id, None)
            metrics.set_failing_sources(len(self._failing))
        return result

    def _flush_writes(self) -> None:
        """Rewrite what this instance or any other changed (the store's change counter);
        on failure keep it all for the next tick."""
        assert self.store is not None
        with self._lock:
            changed, self._changed = self._changed, set()
            config = self.config
        try:
            news = self.store.changed_since(self._seen_counter or 0)
            changed |= news.categories
            if changed:
                write_outputs(config, self.store, changed)
        except BaseException:
            with self._lock:
                self._changed |= changed
            raise
        self._seen_counter = news.counter

    def _prune(self) -> None:
        if self.stop_requested.is_set() or self.store is None:
            return
        try:
            changed = prune_expired(self.config, self.store, utcnow())
        except StoreError as exc:
            log.error("retention: database error: %s", exc)
            return
        with self._lock:
            self._changed |= changed

    # ------------------------------------------------------------ watchdog etc

    def _watchdog(self) -> None:
        """WATCHDOG=1 only while the database answers and the dispatcher ticks."""
        stalled = time.monotonic() - self._last_tick
        if stalled > DISPATCH_STALL_SECONDS:
            log.error("dispatcher stuck for %.0fs; withholding WATCHDOG=1", stalled)
            return
        try:
            assert self.store is not None
            self.store.ping()
        except Exception as exc:
            log.error("database does not answer; withholding WATCHDOG=1: %s", exc)
            return
        self.notifier.send("WATCHDOG=1", self._status_line())

    def _failing_sources(self) -> set[str]:
        assert self.store is not None
        ids = {s.id for s in self.config.sources}
        return {
            s.source_id
            for s in self.store.states()
            if s.status == PollStatus.FAILED and s.source_id in ids
        }

    def _status_line(self) -> str:
        with self._lock:
            enabled = len([s for s in self.config.sources if s.enabled])
            failing, polling = len(self._failing), len(self._inflight)
            refused = f"; {self._refused}" if self._refused else ""
        return f"STATUS={enabled} sources, {failing} failing, {polling} polling{refused}"

    def _health(self) -> bool:
        return self.store is not None and not self.stop_requested.is_set()


def run_daemon(config_path: Path, config: Config) -> int:
    return Daemon(config_path, config).run()
