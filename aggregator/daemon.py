"""Process life of ``aggregator run``.

    start    open + migrate the store, start HTTP, start the dispatcher, READY=1
    tick     every second: claim due sources (a lease each), hand them to the
             pool, write the categories that changed since the last tick
    watchdog WATCHDOG=1 at half of WATCHDOG_USEC, only while the database answers
    SIGHUP   RELOADING=1, validate every file, swap only if valid, READY=1
    SIGTERM  warm stop: no new polls, in-flight ones get a short deadline;
             a second SIGTERM/SIGINT: cold stop at once

The schedule lives in the database (``next_due_at`` and a lease per source),
so several instances can share one database; APScheduler is only the local
timer that runs the dispatcher and the watchdog.
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
from datetime import timedelta
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator.config import Config, load_config
from aggregator.errors import ConfigError, StoreError
from aggregator.fetch import Fetcher
from aggregator.model import PollStatus, SourceState, UpdateResult
from aggregator.notify import Notifier, watchdog_interval
from aggregator.outputs import write_outputs
from aggregator.poll import open_store, utcnow
from aggregator.store import Store
from aggregator.update import UpdateContext, update_source

log = logging.getLogger("aggregator.daemon")

WARM_STOP_SECONDS = 10.0


class Daemon:
    def __init__(self, config_path: Path, config: Config, *, notifier: Notifier | None = None):
        self.config_path = config_path
        self.config = config
        self.notifier = notifier or Notifier()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store: Store | None = None
        self.server = None
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self._signals = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[UpdateResult]] = {}
        self._changed: set[str] = set()
        self._rand = random.Random()
        self._pool = ThreadPoolExecutor(max_workers=config.limits.workers, thread_name_prefix="poll")
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._fetcher = Fetcher(config.limits)
        self._failing: set[str] = set()
        self._seen_counter: int | None = None  #: the store's change counter last written
        self._renewed_at = time.monotonic()

    # -------------------------------------------------------------- lifecycle

    def run(self) -> int:
        self._install_signals()
        try:
            self.store = open_store(self.config)
        except StoreError as exc:
            log.error("database unavailable: %s", exc)
            return 1
        self.server = self._start_server()
        try:
            # the counter first: a change committed during the full write is written
            # again at the first tick, never lost
            self._seen_counter = self.store.change_counter()
            write_outputs(self.config, self.store, None)
        except Exception:
            log.exception("initial write failed")
        self._scheduler.add_job(self._tick, "interval", seconds=1, id="dispatch",
                                max_instances=1, coalesce=True, misfire_grace_time=None)
        self._scheduler.add_job(self._renew_leases, "interval", seconds=1, id="leases",
                                max_instances=1, coalesce=True, misfire_grace_time=None)
        beat = watchdog_interval()
        if beat:
            self._scheduler.add_job(self._watchdog, "interval", seconds=beat, id="watchdog",
                                    max_instances=1, coalesce=True, misfire_grace_time=None)
        self._scheduler.start()
        self.notifier.send("READY=1", self._status_line())
        if beat:
            self._watchdog()
        log.info("running as %s with %d sources", self.owner, len(self.config.sources))
        while not self.stop_requested.is_set():
            if self.reload_requested.wait(0.2):
                self.reload_requested.clear()
                self.reload()
        return self._stop()

    def _stop(self) -> int:
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        log.info("stopping: waiting up to %.0fs for in-flight polls", WARM_STOP_SECONDS)
        self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + WARM_STOP_SECONDS
        while time.monotonic() < deadline and self._inflight_count() and self._signals < 2:
            time.sleep(0.1)
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

    def _start_server(self):  # type: ignore[no-untyped-def]
        from aggregator.serve import start_server

        return start_server(self.config, store_provider=lambda: self.store,
                            health_provider=self._health)

    # ----------------------------------------------------------------- reload

    def reload(self) -> bool:
        """Validate every file; swap only when all are valid, else keep running as is."""
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config: %s", problem)
            self.notifier.send("READY=1", "STATUS=reload refused: config invalid; " + self._status_line()[7:])
            return False
        assert self.store is not None
        store_changed = new.aggregator.database != self.config.aggregator.database
        if store_changed:
            log.warning("database change needs a restart; keeping %s", self.config.aggregator.database)
            new = new.model_copy(update={"aggregator": new.aggregator.model_copy(
                update={"database": self.config.aggregator.database})})
        if new.server != self.config.server:
            log.warning("[server] changes take effect after a restart")
        old_ids = {s.id for s in self.config.sources}
        new_ids = {s.id for s in new.sources}
        from aggregator.poll import utcnow as now

        self.store.sync_config(new.sources, [c for c in (new.category(i) for i in new.categories) if c],
                               now())
        with self._lock:
            self.config = new
            self._fetcher = Fetcher(new.limits)
        log.info("reloaded %s: %d sources (+%d, -%d)", self.config_path, len(new.sources),
                 len(new_ids - old_ids), len(old_ids - new_ids))
        with self._lock:
            self._changed |= set(new.categories)
        self.notifier.send("READY=1", self._status_line())
        return True

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
            self._flush_writes()
        except StoreError as exc:
            log.error("database error in dispatcher: %s", exc)
        except Exception:
            log.exception("dispatcher tick failed")

    def _claim_and_submit(self) -> None:
        assert self.store is not None
        config = self.config
        free = config.limits.workers - self._inflight_count()
        if free <= 0:
            return
        with self._lock:
            busy = set(self._inflight)
        ids = [s.id for s in config.sources if s.enabled and s.id not in busy]
        if not ids:
            return
        claimed = self.store.claim_due(utcnow(), free, self.owner, self._lease(), ids)
        ctx = self._context()
        for state in claimed:
            if state.disabled_reason:
                continue
            source = config.source(state.source_id)
            if source is None:
                continue
            future = self._pool.submit(self._poll_one, ctx, source, state)
            with self._lock:
                self._inflight[source.id] = future

    def _poll_one(self, ctx: UpdateContext, source, state: SourceState) -> UpdateResult:  # type: ignore[no-untyped-def]
        from aggregator.poll import _log_result

        try:
            result = update_source(ctx, source, state)
        except Exception as exc:
            log.exception("%s: poll crashed", source.id)
            result = UpdateResult(source.id, PollStatus.FAILED, error_kind="internal",
                                  error_message=str(exc))
        finally:
            with self._lock:
                self._inflight.pop(source.id, None)
        _log_result(result)
        with self._lock:
            self._changed |= result.changed_categories
            if result.status == PollStatus.FAILED:
                self._failing.add(source.id)
            else:
                self._failing.discard(source.id)
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

    # ------------------------------------------------------------ watchdog etc

    def _watchdog(self) -> None:
        try:
            assert self.store is not None
            self.store.ping()
        except Exception as exc:
            log.error("database does not answer; withholding WATCHDOG=1: %s", exc)
            return
        self.notifier.send("WATCHDOG=1", self._status_line())

    def _status_line(self) -> str:
        n = len([s for s in self.config.sources if s.enabled])
        return f"STATUS={n} sources, {len(self._failing)} failing, {self._inflight_count()} polling"

    def _health(self) -> bool:
        return self.store is not None


def run_daemon(config_path: Path, config: Config) -> int:
    return Daemon(config_path, config).run()
